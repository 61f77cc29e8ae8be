"""The agent answers the agreement: acknowledge it, or ask to discuss it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching
from bot.app.services import Services
from handlers.context import case_button, keeps_ack
from storage.models import Case, Person

Transition = Callable[[Session, int, Person | None, datetime], Case]


def _answer(services: Services, transition: Transition) -> Callable[..., None]:
    def listener(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def act(session: Session, case_id: int) -> None:
            transition(session, case_id, context["person"], services.clock.now())

        case_button(services, body, client, act)

    return listener


def register(app: App, services: Services) -> None:
    app.action("ack_agreement")(keeps_ack(_answer(services, coaching.acknowledge)))
    app.action("discuss_agreement")(keeps_ack(_answer(services, coaching.request_discussion)))
