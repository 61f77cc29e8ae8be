"""Domain-level helpers: import an org, land scores, plan, review, through the real core functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching, review
from bot.evaluation_input import parse_evaluation
from bot.org import apply_org, parse_org
from storage.db import Database
from storage.models import Case, Evaluation, OutboxMessage, Person, Timer
from tests.conftest import sample_org
from tests.payloads import evaluation

ANA, TOM, LENA = "ana.ruiz@example.com", "tom.hale@example.com", "lena.ito@example.com"
PRIYA, DANA, MARCUS = "priya.shah@example.com", "dana.okafor@example.com", "marcus.bell@example.com"


def import_org(db: Database, now: datetime, text: str | None = None) -> list[str]:
    with db.unit_of_work() as session:
        return apply_org(session, parse_org(text or sample_org()), {}, now).lines()


def score(db: Database, now: datetime, **changes: Any) -> coaching.IntakeResult:
    agent = changes.pop("agent_email", None)
    payload = evaluation(**changes)
    if agent:
        payload["agent"] = {"email": agent}
    with db.unit_of_work() as session:
        return coaching.intake(session, parse_evaluation(payload), now, "test")


def person(session: Session, email: str) -> Person:
    found = session.scalar(select(Person).where(Person.email == email))
    assert found is not None, email
    return found


def plan(db: Database, case_id: int, leader: str, now: datetime, **form: Any) -> None:
    with db.unit_of_work() as session:
        case = coaching.load_case(session, case_id)
        draft = coaching.draft_plan(session, case, now)
        values = {
            "kind": draft.kind,
            "behaviour_key": draft.behaviour_key,
            "example": draft.example,
            "action": draft.action,
            "by_when": draft.by_when.isoformat(),
            "review_method": draft.review_method,
            "agent_proposed": False,
            "notes": "",
            **form,
        }
        coaching.agree_plan(session, case_id, person(session, leader), coaching.PlanForm(**values), now)


def do_review(db: Database, case_id: int, leader: str, now: datetime, next_step: str = "close") -> None:
    with db.unit_of_work() as session:
        form = review.ReviewForm(happened="yes", worked="It worked on the calls.", next_step=next_step)
        review.record_review(session, case_id, person(session, leader), form, now)


def cases_of(db: Database, email: str) -> list[Case]:
    with db.unit_of_work() as session:
        return list(
            session.scalars(
                select(Case).join(Person, Case.agent_id == Person.id).where(Person.email == email)
            )
        )


def get_case(db: Database, case_id: int) -> Case:
    with db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def get_evaluation(db: Database, source: str, external_id: str) -> Evaluation:
    with db.unit_of_work() as session:
        ev = session.scalar(
            select(Evaluation).where(Evaluation.source == source, Evaluation.external_id == external_id)
        )
        assert ev is not None
        return ev


def timers_of(db: Database, case_id: int) -> dict[str, tuple[str, datetime]]:
    with db.unit_of_work() as session:
        return {
            t.dedupe_key: (t.status, t.due_at)
            for t in session.scalars(select(Timer).where(Timer.case_id == case_id))
        }


def outbox(db: Database, kind: str | None = None) -> list[OutboxMessage]:
    with db.unit_of_work() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.scalars(query))
