"""Who someone is to coachloop: team leader, agent, leadership (escalation contact) — or several."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.case_state import OPEN, UNREVIEWED, CaseState
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


def leader_queue(session: Session, leader_id: int) -> tuple[list[Case], list[Case], list[Case]]:
    """Cases awaiting a conversation (by deadline), agreements under way, and those not yet acknowledged."""
    cases = list(
        session.scalars(
            select(Case)
            .where(
                Case.leader_id == leader_id, Case.state.in_(OPEN)
            )
            .order_by(Case.due_at, Case.id)
        )
    )
    awaiting = [c for c in cases if c.state == CaseState.AWAITING]
    under_way = sorted(
        (c for c in cases if c.state in UNREVIEWED), key=lambda c: (c.action_date, c.id)
    )
    unacknowledged = [c for c in under_way if c.state == CaseState.AGREED]
    return awaiting, under_way, unacknowledged
