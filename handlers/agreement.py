"""The agent answers the agreement: acknowledge it, or ask to discuss it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching
from bot.app import Services
from bot.errors import CoachingError, NotFound
from handlers.context import action_case_id, tell
from storage.models import Case, Person

Transition = Callable[[Session, int, Person | None, datetime], Case]


def _answer(services: Services, transition: Transition) -> Callable[..., None]:
    def listener(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        case_id = action_case_id(body)
        try:
            if case_id is None:
                raise NotFound("That button does not name a coaching agreement.")
            with services.db.unit_of_work() as session:
                transition(session, case_id, context["person"], services.clock.now())
        except CoachingError as exc:
            tell(client, body, exc)

    return listener


def register(app: App, services: Services) -> None:
    app.action("ack_agreement")(_answer(services, coaching.acknowledge))
    app.action("discuss_agreement")(_answer(services, coaching.request_discussion))
