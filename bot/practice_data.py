"""Loads the facts of the leaders' coaching practice (blocks, calibration, ownership) from the database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures
from storage.models import CalibrationRating, CalibrationSample, Case, CoachingBlockRun, Person, Team


def leader_practice(
    session: Session, team_ids: list[int], period: measures.Period
) -> dict[str, measures.LeaderPractice]:
    """Per leader of these teams (by name): squeezed-out blocks, calibration and agent-proposed share."""
    teams = list(session.scalars(select(Team).where(Team.id.in_(team_ids))))
    leader_ids = {t.leader_id for t in teams}
    names = {p.id: p.display for p in session.scalars(select(Person).where(Person.id.in_(leader_ids)))}
    blocks = [
        measures.BlockFacts(names[r.leader_id], r.ends_at, r.status)
        for r in session.scalars(
            select(CoachingBlockRun).where(
                CoachingBlockRun.leader_id.in_(leader_ids),
                CoachingBlockRun.ends_at >= period.start,
                CoachingBlockRun.ends_at < period.end,
            )
        )
    ]
    cases = [
        measures.CaseFacts(
            id=c.id,
            team=c.team.name,
            leader=c.leader.display,
            agent=c.agent.display,
            kind=c.kind,
            state=c.state,
            opened_at=c.opened_at,
            landed_at=c.opened_at,
            due_at=c.due_at,
            agreed_at=c.agreed_at,
            agent_proposed=c.agent_proposed,
        )
        for c in session.scalars(
            select(Case).where(
                Case.team_id.in_(team_ids), Case.agreed_at >= period.start, Case.agreed_at < period.end
            )
        )
    ]
    ratings = []
    rows = session.execute(
        select(CalibrationRating, Case, Person)
        .join(CalibrationSample, CalibrationRating.sample_id == CalibrationSample.id)
        .join(Case, CalibrationSample.case_id == Case.id)
        .join(Person, CalibrationRating.rater_id == Person.id)
        .where(Case.team_id.in_(team_ids), Case.agreed_at >= period.start, Case.agreed_at < period.end)
    )
    for rating, case, rater in rows:
        assert case.agreed_at is not None
        met = frozenset(part for part in measures.STRUCTURE if getattr(rating, part))
        ratings.append(measures.RatingFacts(case.id, case.leader.display, case.agreed_at, rater.email, met))
    return measures.leader_practice(cases, blocks, ratings, period)
