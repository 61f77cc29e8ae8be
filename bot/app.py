"""The app factory: one place that wires settings, database, clock, Slack clients and listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.clock import Clock
from bot.config import Settings
from storage.db import Database

log = logging.getLogger("coachloop")


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


def build_services(settings: Settings, clock: Clock) -> Services:
    db = Database(settings.database_url)
    db.create_schema()
    services = Services(
        settings=settings, db=db, clock=clock, slack=slack_client(settings, interactive=False)
    )
    db.on_commit(services.wake)
    return services


def create_bolt_app(services: Services, *, verify_token: bool = True) -> App:
    from handlers import register_all

    app = App(
        signing_secret=services.settings.slack_signing_secret,
        client=slack_client(services.settings, interactive=True),
        token_verification_enabled=verify_token,
        listener_executor=ThreadPoolExecutor(max_workers=16, thread_name_prefix="listener"),
        logger=logging.getLogger("coachloop.bolt"),
    )
    register_all(app, services)
    return app
