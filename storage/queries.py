"""Reads the domain needs, in one place."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from storage.models import Case, Evaluation, LeaderCover, Person, Team, TeamAgent

AWAITING = "awaiting_conversation"
UNREVIEWED = ("agreed", "acknowledged", "discussion_requested")


def person_by_email(session: Session, email: str) -> Person | None:
    return session.scalar(select(Person).where(Person.email == email.strip().lower()))


def person_by_slack_id(session: Session, slack_id: str) -> Person | None:
    return session.scalar(select(Person).where(Person.slack_id == slack_id))


def agent_with_team(session: Session, email: str) -> tuple[Person | None, Team | None]:
    """The person with this email and the team they are an agent of, in one query."""
    row = session.execute(
        select(Person, Team)
        .outerjoin(TeamAgent, TeamAgent.person_id == Person.id)
        .outerjoin(Team, Team.id == TeamAgent.team_id)
        .where(Person.email == email.strip().lower())
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def team_of_agent(session: Session, person_id: int) -> Team | None:
    return session.scalar(select(Team).join(TeamAgent).where(TeamAgent.person_id == person_id))


def team_by_name(session: Session, name: str) -> Team | None:
    return session.scalar(select(Team).where(Team.name == name))


def case_for_update(session: Session, case_id: int) -> Case | None:
    """The case, locked against concurrent transitions on PostgreSQL (SQLite is serialised already)."""
    query = select(Case).where(Case.id == case_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Case)
    return session.scalar(query)


def lock_people(session: Session, person_ids: list[int]) -> None:
    """Hold these people's rows until the transaction ends (PostgreSQL; SQLite is serialised already):
    intake, follow-ons and corrections for one agent then happen one after another."""
    if session.get_bind().dialect.name == "postgresql" and person_ids:
        session.execute(
            select(Person.id)
            .where(Person.id.in_(sorted(set(person_ids))))
            .order_by(Person.id)
            # FOR NO KEY UPDATE: waits for another intake's lock, not for rows that merely reference the
            # person (an evaluation being inserted holds a key-share lock on it).
            .with_for_update(key_share=True)
        )


def open_cases_held_by(session: Session, leader_id: int, team_ids: list[int] | None = None) -> list[Case]:
    query = select(Case).where(Case.leader_id == leader_id, Case.state.in_((AWAITING, *UNREVIEWED)))
    if team_ids is not None:
        query = query.where(Case.team_id.in_(team_ids))
    return list(session.scalars(query.order_by(Case.id)))


def open_cases_of_agent(session: Session, agent_id: int) -> list[Case]:
    return list(
        session.scalars(
            select(Case)
            .where(Case.agent_id == agent_id, Case.state.in_((AWAITING, *UNREVIEWED)))
            .order_by(Case.id)
        )
    )


def awaiting_case(session: Session, agent_id: int, *, with_evidence: bool = True) -> Case | None:
    """The agent's case awaiting a conversation; `with_evidence=False` leaves its evaluations and
    hand-overs unloaded (read only if touched), so the cost does not grow with the case."""
    query = select(Case).where(Case.agent_id == agent_id, Case.state == AWAITING).order_by(Case.id).limit(1)
    if not with_evidence:
        query = query.options(lazyload(Case.evaluations), lazyload(Case.handovers))
    return session.scalar(query)


def recent_evaluations(session: Session, agent_id: int, limit: int = 8) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .where(Evaluation.agent_id == agent_id)
            .order_by(Evaluation.landed_at.desc(), Evaluation.id.desc())
            .limit(limit)
        )
    )


def agent_cases(session: Session, agent_id: int, *, with_evidence: bool = True) -> list[Case]:
    """Every case of the agent; `with_evidence=False` leaves their evaluations unloaded (read only if
    touched), so ranking costs the same however many scores the agent's closed cases hold."""
    query = select(Case).where(Case.agent_id == agent_id).order_by(Case.id)
    if not with_evidence:
        query = query.options(lazyload(Case.evaluations), lazyload(Case.handovers))
    return list(session.scalars(query))


def unassigned_evaluations(session: Session, email: str) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .where(Evaluation.agent_email == email, Evaluation.agent_id.is_(None))
            .order_by(Evaluation.landed_at, Evaluation.id)
        )
    )


def active_cover(session: Session, leader_id: int) -> LeaderCover | None:
    """The cover holding this leader's queue now, if any."""
    return session.scalar(
        select(LeaderCover)
        .where(LeaderCover.leader_id == leader_id, LeaderCover.ended_at.is_(None))
        .order_by(LeaderCover.id.desc())
        .limit(1)
    )
