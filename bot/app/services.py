"""What every listener, route and sweep receives: settings, database, clock and the Slack client.

Handlers and sweeps import this module, never the app factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.app.config import Settings
from bot.clock import Clock
from storage.db import Database


@dataclass
class Services:
    """What every listener, route and sweep needs, passed explicitly (no globals)."""

    settings: Settings
    db: Database
    clock: Clock
    slack: WebClient
    wake_sweeps: Callable[[], None] = field(default=lambda: None)

    def wake(self) -> None:
        self.wake_sweeps()


def slack_client(settings: Settings, *, interactive: bool) -> WebClient:
    """Listeners may wait once on a 429; the outbox sweep handles 429 itself by rescheduling."""
    handlers: list[RetryHandler] = [ConnectionErrorRetryHandler(max_retry_count=2)]
    if interactive:
        handlers += [
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1),
        ]
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        timeout=10,
        retry_handlers=handlers,
    )
