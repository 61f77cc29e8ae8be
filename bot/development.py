"""Developmental coaching, led by the agent: their prep answers before the conversation, and development
goals that span several conversations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching
from bot.errors import CaseMovedOn, InvalidInput
from storage import queries
from storage.models import Case, DevelopmentGoal, DevelopmentPrep, Person
from storage.outbox import audit, enqueue

QUESTIONS = {
    "in_12_months": "Where do you want to be in 12 months?",
    "work_on_next": "What do you want to work on next?",
    "would_help": "What would help you get there?",
}
MAX_ANSWER = 1500
OPEN, DONE = "open", "done"


@dataclass(frozen=True)
class PrepAnswers:
    in_12_months: str | None = None
    work_on_next: str | None = None
    would_help: str | None = None


def prep_key(case_id: int) -> str:
    return f"case:{case_id}:agent_prep"


def ask_prep(session: Session, case: Case, now: datetime) -> bool:
    """Ask the agent to prepare, once per case, before the conversation. True when asked now."""
    if case.state != queries.AWAITING or session.get(DevelopmentPrep, case.id) is not None:
        return False
    session.add(DevelopmentPrep(case_id=case.id, asked_at=now))
    enqueue(session, prep_key(case.id), "agent_prep", now=now, case_id=case.id, person_id=case.agent_id)
    audit(session, now, "coachloop", "prep_asked", case_id=case.id)
    return True


def prep_of(session: Session, case_id: int) -> DevelopmentPrep | None:
    prep = session.get(DevelopmentPrep, case_id)
    return prep if prep is not None and prep.answered_at is not None else None


def answer_prep(
    session: Session, case_id: int, actor: Person | None, answers: PrepAnswers, now: datetime
) -> DevelopmentPrep:
    case = coaching.load_case(session, case_id, lock=True)
    coaching.check_is_agent(actor, case)
    assert actor is not None
    if case.state != queries.AWAITING:
        raise CaseMovedOn("Your conversation has already been held; your answers were not changed.")
    values = {k: (getattr(answers, k) or "").strip() for k in QUESTIONS}
    errors = {k: f"Keep it under {MAX_ANSWER} characters." for k, v in values.items() if len(v) > MAX_ANSWER}
    if not any(values.values()):
        errors["work_on_next"] = "Answer at least one question: it is your conversation."
    if errors:
        raise InvalidInput(errors)
    prep = session.get(DevelopmentPrep, case.id) or DevelopmentPrep(case_id=case.id, asked_at=now)
    session.add(prep)
    for k, v in values.items():
        setattr(prep, k, v or None)
    prep.answered_at = now
    audit(session, now, coaching.actor_label(actor), "prep_answered", case_id=case.id)
    enqueue(
        session,
        f"case:{case.id}:prep_answered:{now:%Y%m%dT%H%M%S}",
        "leader_prep_answered",
        now=now,
        case_id=case.id,
        person_id=case.leader_id,
    )
    coaching.refresh_leader_dm(session, case, now, "prep")
    return prep


def goal_wording(prep: DevelopmentPrep | None, goal: DevelopmentGoal | None) -> str:
    """What the development goal says before the leader edits it: the goal carried over, else the agent's
    own words."""
    if goal is not None:
        return goal.wording
    if prep is None:
        return ""
    parts = [prep.work_on_next, prep.in_12_months and f"towards: {prep.in_12_months}"]
    return "; ".join(p for p in parts if p)


def goal_of(session: Session, case: Case) -> DevelopmentGoal | None:
    return session.get(DevelopmentGoal, case.development_goal_id) if case.development_goal_id else None


def on_agreed(session: Session, case: Case, wording: str | None, now: datetime) -> None:
    """An agreed development goal: continue the case's goal, or open one in the agreed words."""
    text = (wording or "").strip() or (case.action or "")
    goal = goal_of(session, case)
    if goal is None:
        goal = DevelopmentGoal(agent_id=case.agent_id, wording=text, status=OPEN, opened_at=now)
        session.add(goal)
        session.flush()
        case.development_goal_id = goal.id
    elif text:
        goal.wording = text


def on_reviewed(session: Session, case: Case, keep_open: bool, now: datetime) -> None:
    goal = goal_of(session, case)
    if goal is not None and not keep_open:
        goal.status, goal.closed_at = DONE, now


def goals_of(session: Session, agent_id: int) -> list[tuple[DevelopmentGoal, list[Case]]]:
    """The agent's development goals, newest first, each with the conversations it spanned."""
    goals = session.scalars(
        select(DevelopmentGoal)
        .where(DevelopmentGoal.agent_id == agent_id)
        .order_by(DevelopmentGoal.id.desc())
    )
    return [
        (
            g,
            list(session.scalars(select(Case).where(Case.development_goal_id == g.id).order_by(Case.id))),
        )
        for g in goals
    ]
