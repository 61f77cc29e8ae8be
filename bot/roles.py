"""Who someone is to coachloop: team leader, agent, leadership (escalation contact) — or several."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, lazyload

from bot.case_state import UNREVIEWED, CaseState
from storage import queries
from storage.models import Case, Person, Team, TeamEscalation


@dataclass(frozen=True)
class Roles:
    leads: list[Team]
    agent_of: Team | None
    oversees: list[Team]

    @property
    def none(self) -> bool:
        return not (self.leads or self.agent_of or self.oversees)


def roles_of(session: Session, person: Person) -> Roles:
    leads = list(session.scalars(select(Team).where(Team.leader_id == person.id).order_by(Team.name)))
    oversees = list(
        session.scalars(
            select(Team).join(TeamEscalation).where(TeamEscalation.person_id == person.id).order_by(Team.name)
        )
    )
    return Roles(leads=leads, agent_of=queries.team_of_agent(session, person.id), oversees=oversees)


def may_see_agent(session: Session, viewer: Person, agent: Person) -> bool:
    """The agent themself, their team leader, one of their team's escalation contacts, or a leader
    holding one of the agent's open cases (a cover)."""
    if viewer.id == agent.id:
        return True
    if any(c.leader_id == viewer.id for c in queries.open_cases_of_agent(session, agent.id)):
        return True
    team = queries.team_of_agent(session, agent.id)
    if team is None:
        return False
    return viewer.id == team.leader_id or any(p.id == viewer.id for p in team.escalation_people)


@dataclass(frozen=True)
class LeaderQueue:
    """A leader's open cases: the first awaiting a conversation (by deadline) with how many there
    are in all, and the agreements under way (by action date) with those not yet acknowledged.
    A leader may hold thousands of awaiting cases; only the ones shown are loaded."""

    awaiting: list[Case]
    awaiting_total: int
    awaiting_late: int
    under_way: list[Case]

    @property
    def unacknowledged(self) -> list[Case]:
        return [c for c in self.under_way if c.state == CaseState.AGREED]


def leader_queue(session: Session, leader_id: int, now: datetime, *, shown: int) -> LeaderQueue:
    awaiting = (Case.leader_id == leader_id, Case.state == CaseState.AWAITING)
    total, late = session.execute(
        select(func.count(), func.count().filter(Case.due_at < now)).where(*awaiting)
    ).one()
    # The queue shows a case's people and plan, never its evidence or hand-overs: leave them unloaded.
    light = (lazyload(Case.evaluations), lazyload(Case.handovers))
    first: list[Case] = []
    if shown:
        query = select(Case).options(*light).where(*awaiting).order_by(Case.due_at, Case.id)
        first = list(session.scalars(query.limit(shown)))
    under_way = session.scalars(
        select(Case)
        .options(*light)
        .where(Case.leader_id == leader_id, Case.state.in_(UNREVIEWED))
        .order_by(Case.action_date, Case.id)
    )
    return LeaderQueue(first, total, late, list(under_way))
