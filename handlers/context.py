"""Middleware that loads the acting person, and the one place domain errors become Slack replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient

from bot.app import Services
from bot.errors import CoachingError
from bot.views import notice_modal
from storage.queries import person_by_slack_id

log = logging.getLogger("coachloop.handlers")


def register(app: App, services: Services) -> None:
    @app.middleware
    def load_person(context: BoltContext, next: Callable[[], Any]) -> Any:
        context["person"] = None
        if context.user_id:
            with services.db.unit_of_work() as session:
                context["person"] = person_by_slack_id(session, context.user_id)
        return next()

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # Payloads hold evaluation comments: log the type of request and the error only.
        log.error("listener failed for %s: %s", body.get("type"), type(error).__name__, exc_info=error)


def tell(
    client: WebClient, body: dict[str, Any], error: CoachingError | str, *, title: str = "coachloop"
) -> None:
    """Show a refusal to the person who acted: ephemerally where they clicked, else in a small modal."""
    text = str(error)
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = (body.get("user") or {}).get("id")
    if channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    elif body.get("trigger_id"):
        client.views_open(trigger_id=body["trigger_id"], view=notice_modal(title, text))
    else:
        log.warning("could not show a refusal: no channel and no trigger")


def action_case_id(body: dict[str, Any]) -> int | None:
    """The case id a button carries (re-checked against the database by the caller)."""
    actions = body.get("actions") or []
    value = actions[0].get("value") if actions else None
    return int(value) if isinstance(value, str) and value.isdigit() else None
