"""The app factory: one place that wires settings, database, clock, Slack clients and listeners."""

from __future__ import annotations

import logging

from slack_bolt import App

from bot.app.config import Settings
from bot.app.logs import ContextExecutor
from bot.app.services import Services, slack_client
from bot.clock import Clock
from storage.db import Database

log = logging.getLogger("coachloop")


def build_services(settings: Settings, clock: Clock, *, migrate: bool = False) -> Services:
    """Services on the settings' database, which must be at the code's schema revision
    (`storage.schema.SchemaError` otherwise); `migrate` brings it there first (the demo's own database)."""
    db = Database(settings.database_url)
    if migrate:
        db.create_schema()
    else:
        db.require_current_schema()
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
        listener_executor=ContextExecutor(max_workers=16, thread_name_prefix="listener"),
        logger=logging.getLogger("coachloop.bolt"),
    )
    register_all(app, services)
    return app
