"""Glue for the practice around the conversation: coaching blocks, QA-lead advice (button and message
shortcut), calibration ratings and the agent's development prep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from bot import advice, calibration, coaching, coaching_blocks, development
from bot.app.services import Services
from bot.errors import CoachingError, InvalidInput, NotAllowed, NotFound
from bot.slack import practice
from bot.slack.views import case_id_from_metadata, notice_modal
from handlers.context import action_case_id, keeps_ack, open_case_modal, submit_case_modal, tell
from storage.models import Case, Person


def submit_modal(ack: Ack, title: str, record: Callable[[], object]) -> None:
    """Run a modal's change: field errors stay in the modal, refusals replace it."""
    try:
        record()
    except InvalidInput as exc:
        ack(response_action="errors", errors=exc.errors)
        return
    except CoachingError as exc:
        ack(response_action="update", view=notice_modal(title, str(exc)))
        return
    ack()


def _no_check(person: Person | None, case: Case) -> None:
    """The modal's builder checks (it needs the session)."""


def message_link(body: dict[str, Any]) -> str:
    """The permalink of the message a shortcut was used on, built from its team, channel and ts."""
    domain = (body.get("team") or {}).get("domain") or "app"
    channel = (body.get("channel") or {}).get("id") or ""
    ts = str((body.get("message") or {}).get("ts") or "").replace(".", "")
    return f"https://{domain}.slack.com/archives/{channel}/p{ts}" if channel and ts else ""


def register(app: App, services: Services) -> None:
    # --- coaching blocks ------------------------------------------------------------------------

    @app.action("block_ics")
    @keeps_ack
    def calendar_file(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        try:
            with services.db.unit_of_work() as session:
                said = coaching_blocks.request_calendar_file(session, context["person"], services.clock.now())
        except CoachingError as exc:
            tell(client, body, exc)
            return
        tell(client, body, said)

    @app.action("edit_blocks")
    @keeps_ack
    def edit_blocks(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        person = context["person"]
        with services.db.unit_of_work() as session:
            team = coaching_blocks.led_team(session, person) if person is not None else None
            if person is None or team is None:
                view = notice_modal("Coaching blocks", "Only a team leader has coaching blocks.")
            else:
                view = practice.blocks_modal(coaching_blocks.blocks_of(session, person, team), team)
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(practice.BLOCKS_CALLBACK)
    @keeps_ack
    def save_blocks(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        text = practice.read_blocks(view.get("state", {}).get("values", {}))

        def record() -> None:
            person = context["person"]
            if person is None:
                raise NotAllowed("Only a team leader has coaching blocks.")
            with services.db.unit_of_work() as session:
                leader = session.merge(person, load=False)
                coaching_blocks.save_home_blocks(session, leader, text, services.clock.now())

        submit_modal(ack, "Blocks not saved", record)

    # --- QA-lead advice ---------------------------------------------------------------------------

    @app.action("open_advice")
    @keeps_ack
    def open_advice(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        person = context["person"]

        def build(session: Session, case: Case) -> dict[str, Any]:
            advice.check_may_advise(session, person, case)
            return practice.advice_modal(session, [case], case_id=case.id)

        open_case_modal(services, body, client, person, build, may_act=_no_check)

    @app.shortcut(practice.SHORTCUT)
    @keeps_ack
    def add_to_case(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        person = context["person"]
        text = str((body.get("message") or {}).get("text") or "")
        with services.db.unit_of_work() as session:
            cases = advice.open_cases(session, person) if person is not None else []
            if not cases:
                view = notice_modal(
                    "Add to coaching case",
                    "Only a QA lead can add evidence, and only to an open case of their teams: "
                    "none is open now.",
                )
            else:
                view = practice.advice_modal(session, cases, evidence=text, link=message_link(body))
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(practice.ADVICE_CALLBACK)
    @keeps_ack
    def submit_advice(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        values = view.get("state", {}).get("values", {})
        from_shortcut = case_id_from_metadata(view.get("private_metadata")) is None

        def record() -> None:
            now = services.clock.now()
            with services.db.unit_of_work() as session:
                case_id = case_id_from_metadata(view.get("private_metadata"))
                chosen, _ = practice.read_advice(values, [])
                case_id = chosen if from_shortcut else case_id
                if case_id is None:
                    raise InvalidInput({"case": "Choose the coaching case this belongs to."})
                case = coaching.load_case(session, case_id)
                keys = [p.key for p in coaching.ranked_picks(session, case)]
                _, form = practice.read_advice(values, keys)
                source = "shortcut" if from_shortcut else "button"
                advice.add_advice(session, case_id, context["person"], form, now, source=source)

        submit_modal(ack, "Advice not saved", record)

    # --- calibration ----------------------------------------------------------------------------

    @app.action("rate_plan")
    @keeps_ack
    def rate_plan(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()
        person = context["person"]
        sample_id = action_case_id(body)  # the button carries the sample's id
        try:
            with services.db.unit_of_work() as session:
                if sample_id is None:
                    raise NotFound("That button does not name a plan to rate.")
                row = calibration.load_sample(session, sample_id)
                calibration.check_may_rate(session, person, row)
                assert person is not None
                view = practice.rating_modal(row, calibration.rating_by(row, person))
        except CoachingError as exc:
            tell(client, body, exc)
            return
        client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(practice.RATING_CALLBACK)
    @keeps_ack
    def submit_rating(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        form = practice.read_rating(view.get("state", {}).get("values", {}))

        def record() -> None:
            sample_id = practice.sample_id_from_metadata(view.get("private_metadata"))
            if sample_id is None:
                raise NotFound("This form has lost its plan; close it and start again.")
            with services.db.unit_of_work() as session:
                calibration.rate(session, sample_id, context["person"], form, services.clock.now())

        submit_modal(ack, "Rating not saved", record)

    # --- development prep -----------------------------------------------------------------------

    @app.action("answer_prep")
    @keeps_ack
    def answer_prep(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
        ack()

        def build(session: Session, case: Case) -> dict[str, Any]:
            if case.state != "awaiting_conversation":
                return notice_modal("Prepare", "Your conversation has already been held.")
            prep = development.prep_of(session, case.id)
            answers = {k: getattr(prep, k) or "" for k in development.QUESTIONS} if prep else {}
            return practice.prep_modal(case, answers)

        open_case_modal(services, body, client, context["person"], build, may_act=coaching.check_is_agent)

    @app.view(practice.PREP_CALLBACK)
    @keeps_ack
    def submit_prep(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
        answers = practice.read_prep(view.get("state", {}).get("values", {}))

        def record(case_id: int) -> None:
            with services.db.unit_of_work() as session:
                development.answer_prep(session, case_id, context["person"], answers, services.clock.now())

        submit_case_modal(ack, view, "Answers not saved", record)
