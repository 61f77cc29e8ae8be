"""Follow-through in Slack: the review modal, waiving a conversation, nudging a leader from an escalation."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching, review
from bot.app.services import Services
from bot.slack.views import (
    REVIEW_CALLBACK,
    WAIVE_CALLBACK,
    read_review_form,
    read_waive_reason,
    review_modal,
    waive_modal,
)
from handlers.context import case_button, form_values, keeps_ack, open_case_modal, submit_case_modal
from storage.models import Case


def register(app: App, services: Services) -> None:
    @app.action("open_review")
    @keeps_ack
    def open_review(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def build(session: Session, case: Case) -> dict[str, Any]:
            review.check_reviewable(case)
            return review_modal(review.draft_review(session, case))

        open_case_modal(services, body, client, context["person"], build)

    @app.view(REVIEW_CALLBACK)
    @keeps_ack
    def submit_review(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        form = read_review_form(form_values(view))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                review.record_review(session, case_id, context["person"], form, services.clock.now())

        submit_case_modal(ack, view, "Review not saved", record)

    @app.action("waive_case")
    @keeps_ack
    def open_waive(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def build(session: Session, case: Case) -> dict[str, Any]:
            coaching.check_awaiting(case)
            return waive_modal(case.id, case.agent.display)

        open_case_modal(services, body, client, context["person"], build, review.check_may_waive)

    @app.view(WAIVE_CALLBACK)
    @keeps_ack
    def submit_waive(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        reason = read_waive_reason(form_values(view))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                review.waive(session, case_id, context["person"], reason, services.clock.now())

        submit_case_modal(ack, view, "Not waived", record)

    @app.action("remind_leader")
    @keeps_ack
    def remind_leader(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def act(session: Session, case_id: int) -> str:
            queued = review.remind_leader(session, case_id, context["person"], services.clock.now())
            leader = coaching.load_case(session, case_id).leader.display
            return f"Reminder sent to {leader}." if queued else f"{leader} was already reminded today."

        case_button(services, body, client, act)
