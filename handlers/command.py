"""/coach: acknowledged at once; the answer follows on the command's response_url, only for the caller."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond

from bot.app.services import Services
from bot.errors import CoachingError
from bot.slack import summary
from handlers.context import keeps_ack


def register(app: App, services: Services) -> None:
    @app.command("/coach")
    @keeps_ack
    def coach(ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext) -> None:
        ack()
        person = context["person"]
        try:
            text = command.get("text", "")
            # Summaries read without the write lock; a hand-over or cover is a unit of work.
            unit = services.db.unit_of_work if summary.changes_something(text) else services.db.read
            with unit() as session:
                viewer = session.merge(person, load=False) if person is not None else None
                blocks = summary.answer(session, viewer, text, services.clock.now())
        except CoachingError as exc:
            respond(text=str(exc), response_type="ephemeral")
            return
        respond(text="Your coachloop summary", blocks=blocks, response_type="ephemeral")
