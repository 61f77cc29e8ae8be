"""The coaching plan: open the modal from the leader's DM, refresh it, record the agreement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import coaching, development
from bot.app.services import Services
from bot.case_state import CaseState
from bot.errors import CoachingError, NotFound
from bot.slack.views import (
    BEHAVIOUR_ACTION,
    PLAN_CALLBACK,
    behaviour_key,
    notice_modal,
    plan_errors,
    plan_modal,
    read_plan_form,
    untouched_from,
)
from handlers.context import form_values, keeps_ack, modal_case_id, open_case_modal, submit_case_modal
from storage.models import Case


def submitted_plan(
    session: Session, case_id: int, values: dict[str, Any], now: datetime
) -> tuple[coaching.PlanForm, coaching.PlanDraft]:
    """The plan as submitted: the option value turned back into its criterion, and inputs Slack
    returns as null (untouched since views.update) filled from the draft for the chosen behaviour. With
    it, the draft it is checked against, drawn once the case is locked."""
    case = coaching.load_case(session, case_id, lock=True)
    draft = coaching.draft_plan(session, case, now)
    form = read_plan_form(values, draft.picks)
    chosen = draft
    if form.behaviour_key and form.behaviour_key != draft.behaviour_key:
        chosen = coaching.draft_plan(session, case, now, behaviour_key=form.behaviour_key)
    return untouched_from(form, chosen), draft


def register(app: App, services: Services) -> None:
    @app.action("open_plan")
    @keeps_ack
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
    @keeps_ack
    def change_behaviour(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        view: dict[str, Any] = body["view"] if isinstance(body.get("view"), dict) else {}
        case_id = modal_case_id(view)
        action = (body.get("actions") or [{}])[0]
        option = action.get("selected_option") if isinstance(action, dict) else None
        chosen = option.get("value") if isinstance(option, dict) else None
        values = form_values(view)
        try:
            with services.db.read() as session:
                if case_id is None:
                    raise NotFound("This form has lost its coaching case; close it and start again.")
                case = coaching.load_case(session, case_id)
                coaching.check_may_plan(context["person"], case)
                coaching.check_awaiting(case)
                now = services.clock.now()
                picks = coaching.ranked_picks(session, case)
                key = behaviour_key(chosen, picks)
                draft = coaching.draft_plan(session, case, now, behaviour_key=key)
            draft = draft.keeping(read_plan_form(values, draft.picks))
            if key == coaching.DEVELOPMENT_GOAL:  # the agent leads: ask them to prepare
                with services.db.unit_of_work() as session:
                    development.ask_prep(session, coaching.load_case(session, case.id), now)
        except CoachingError as exc:
            if isinstance(view.get("id"), str):
                client.views_update(view_id=view["id"], view=notice_modal("Coaching plan", str(exc)))
            return
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=plan_modal(draft))

    @app.view(PLAN_CALLBACK)
    @keeps_ack
    def submit_plan(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        values = form_values(view)

        def record(case_id: int) -> None:
            now = services.clock.now()
            with services.db.unit_of_work() as session:
                form, draft = submitted_plan(session, case_id, values, now)
                coaching.agree_plan(session, case_id, context["person"], form, now, draft=draft)

        submit_case_modal(ack, view, "Plan not saved", record, errors_at=lambda e: plan_errors(e, values))
