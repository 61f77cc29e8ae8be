"""Follow-through in Slack: the review modal, waiving a conversation, nudging a leader from an escalation."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import coaching, review
from bot.app import Services
from bot.errors import CoachingError, InvalidInput, NotFound
from bot.views import (
    REVIEW_CALLBACK,
    WAIVE_CALLBACK,
    case_id_from_metadata,
    notice_modal,
    read_review_form,
    read_waive_reason,
    review_modal,
    waive_modal,
)
from handlers.context import action_case_id, tell


def _submit(ack: Ack, view: dict[str, Any], title: str, record: Any) -> None:
    """Run a modal's transition: field errors stay in the modal, refusals replace it."""
    case_id = case_id_from_metadata(view.get("private_metadata"))
    try:
        if case_id is None:
            raise NotFound("This form has lost its coaching case; close it and start again.")
        record(case_id)
    except InvalidInput as exc:
        ack(response_action="errors", errors=exc.errors)
        return
    except CoachingError as exc:
        ack(response_action="update", view=notice_modal(title, str(exc)))
        return
    ack()


def register(app: App, services: Services) -> None:
    @app.action("open_review")
    def open_review(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        case_id = action_case_id(body)
        try:
            with services.db.unit_of_work() as session:
                if case_id is None:
                    raise NotFound("That button does not name a coaching case.")
                case = coaching.load_case(session, case_id)
                coaching.check_may_plan(context["person"], case)
                review.check_reviewable(case)
                view = review_modal(review.draft_review(session, case))
        except CoachingError as exc:
            tell(client, body, exc)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(REVIEW_CALLBACK)
    def submit_review(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        form = read_review_form(view.get("state", {}).get("values", {}))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                review.record_review(session, case_id, context["person"], form, services.clock.now())

        _submit(ack, view, "Review not saved", record)

    @app.action("waive_case")
    def open_waive(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        case_id = action_case_id(body)
        try:
            with services.db.unit_of_work() as session:
                if case_id is None:
                    raise NotFound("That button does not name a coaching case.")
                case = coaching.load_case(session, case_id)
                coaching.check_may_plan(context["person"], case)
                coaching.check_awaiting(case)
                view = waive_modal(case.id, case.agent.display)
        except CoachingError as exc:
            tell(client, body, exc)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(WAIVE_CALLBACK)
    def submit_waive(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        reason = read_waive_reason(view.get("state", {}).get("values", {}))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                review.waive(session, case_id, context["person"], reason, services.clock.now())

        _submit(ack, view, "Not waived", record)

    @app.action("remind_leader")
    def remind_leader(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        case_id = action_case_id(body)
        try:
            if case_id is None:
                raise NotFound("That button does not name a coaching case.")
            with services.db.unit_of_work() as session:
                queued = review.remind_leader(session, case_id, context["person"], services.clock.now())
                leader = coaching.load_case(session, case_id).leader.display
        except CoachingError as exc:
            tell(client, body, exc)
            return
        tell(
            client, body, f"Reminder sent to {leader}." if queued else f"{leader} was already reminded today."
        )
