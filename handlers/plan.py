"""The coaching plan: open the modal from the leader's DM, refresh it, record the agreement."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching
from bot.app.services import Services
from bot.case_state import CaseState
from bot.errors import CoachingError, NotFound
from bot.slack.views import (
    BEHAVIOUR_ACTION,
    PLAN_CALLBACK,
    notice_modal,
    plan_modal,
    read_plan_form,
)
from handlers.context import form_values, modal_case_id, open_case_modal, submit_case_modal
from storage.models import Case


def register(app: App, services: Services) -> None:
    @app.action("open_plan")
    def open_plan(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def build(session: Session, case: Case) -> dict[str, Any]:
            if case.state != CaseState.AWAITING:
                state = CaseState(case.state).words
                return notice_modal(
                    "Already coached", f"{case.agent.display}'s conversation is already logged ({state})."
                )
            return plan_modal(coaching.draft_plan(session, case, services.clock.now()))

        open_case_modal(services, body, client, context["person"], build)

    @app.action(BEHAVIOUR_ACTION)
    def change_behaviour(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        view: dict[str, Any] = body["view"] if isinstance(body.get("view"), dict) else {}
        case_id = modal_case_id(view)
        action = (body.get("actions") or [{}])[0]
        option = action.get("selected_option") if isinstance(action, dict) else None
        chosen = option.get("value") if isinstance(option, dict) else None
        try:
            with services.db.read() as session:
                if case_id is None:
                    raise NotFound("This form has lost its coaching case; close it and start again.")
                case = coaching.load_case(session, case_id)
                coaching.check_may_plan(context["person"], case)
                coaching.check_awaiting(case)
                draft = coaching.draft_plan(session, case, services.clock.now(), behaviour_key=chosen)
            draft = draft.keeping(read_plan_form(form_values(view)))
        except CoachingError as exc:
            if isinstance(view.get("id"), str):
                client.views_update(view_id=view["id"], view=notice_modal("Coaching plan", str(exc)))
            return
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=plan_modal(draft))

    @app.view(PLAN_CALLBACK)
    def submit_plan(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        form = read_plan_form(form_values(view))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                coaching.agree_plan(session, case_id, context["person"], form, services.clock.now())

        submit_case_modal(ack, view, "Plan not saved", record)
