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


SLACK_TIMEOUT = 10  # seconds per Web API call; the outbox lease must outlast one call


def slack_client(settings: Settings, *, interactive: bool) -> WebClient:
    """Listeners may retry a dropped connection and wait once on a 429 or 5xx.

    The outbox's client (`interactive=False`) retries nothing by itself: a call whose answer was
    lost may have been carried out, so every retry of a send goes through the outbox, which first
    looks for the message's dedupe key in the conversation."""
    handlers: list[RetryHandler] = []
    if interactive:
        handlers += [
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetryHandler(max_retry_count=1),
        ]
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        timeout=SLACK_TIMEOUT,
        retry_handlers=handlers,
    )
