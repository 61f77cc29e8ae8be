"""App Home: published when someone opens it, and re-published (through the outbox) when their cases move."""

from __future__ import annotations

from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.app.services import Services
from bot.slack.home import home_view


def register(app: App, services: Services) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        if event.get("tab") != "home":
            return
        person = context["person"]
        with services.db.read() as session:
            viewer = session.merge(person, load=False) if person is not None else None
            view = home_view(session, viewer, services.clock.now())
        client.views_publish(user_id=event["user"], view=view)
