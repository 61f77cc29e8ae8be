"""Loads the facts the measures need from the database, for a team, a leader or the whole organisation."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from bot import measures
from bot.calendar import WorkCalendar
from bot.case_state import CaseState
from bot.team_calendar import calendar_for
from storage.models import Case, Evaluation, EvaluationItem, Person, Team, TeamAgent

# Periods up to now end just after it, so what happened at this very moment counts (periods are [start, end)).
INCLUDE_NOW = timedelta(microseconds=1)
LOOKBACK = timedelta(days=120)  # evaluations before a period that "before the conversation" may use
TEAMS_AT_ONCE = 40  # one scan of the period's scores for all of them; a cap on the cases held
# Teams' figures hold every case of up to TEAMS_AT_ONCE teams while they are computed. One computation
# at a time per process keeps that to one copy when several leadership views are asked for at once.
_ONE_COMPUTATION = threading.Lock()


@dataclass(frozen=True)
class Scope:
    """What the figures cover: some teams, one leader's cases, or everything (both None)."""

    team_ids: tuple[int, ...] | None = None
    leader_id: int | None = None
    label: str = "the organisation"


def parse_period(text: str, now: datetime) -> measures.Period:
    """'last-N-weeks' (the N weeks up to now), 'last-week' and 'this-week' (weeks start on Monday, UTC),
    'this-month', 'last-month'."""
    today = now.astimezone(UTC).date()
    end = now + INCLUDE_NOW
    monday = today - timedelta(days=today.weekday())
    start_of = lambda d: datetime.combine(d, time(0), tzinfo=UTC)  # noqa: E731
    if m := re.fullmatch(r"last-(\d{1,2})-weeks?", text):
        return measures.Period(now - timedelta(weeks=int(m.group(1))), end)
    if text == "last-week":
        return measures.Period(start_of(monday - timedelta(weeks=1)), start_of(monday))
    if text == "this-week":
        return measures.Period(start_of(monday), end)
    first = today.replace(day=1)
    if text == "this-month":
        return measures.Period(start_of(first), end)
    if text == "last-month":
        previous = (first - timedelta(days=1)).replace(day=1)
        return measures.Period(start_of(previous), start_of(first))
    raise ValueError(
        f"unknown period {text!r}: use last-N-weeks (e.g. last-4-weeks), last-week, this-week, "
        "this-month or last-month"
    )


def facts(
    session: Session, scope: Scope, period: measures.Period, now: datetime | None = None
) -> tuple[list[measures.CaseFacts], list[measures.ScoreFacts], dict[str, WorkCalendar]]:
    team_query = select(Team)
    if scope.team_ids is not None:
        team_query = team_query.where(Team.id.in_(scope.team_ids))
    teams = list(session.scalars(team_query))
    calendars = {t.name: calendar_for(t) for t in teams}
    names = {t.id: t.name for t in teams}
    # Cases that can touch the period (or the mix window before `now`): opened before its end, and
    # still awaiting a conversation or with a step on or after the earliest day any measure looks at.
    # What lies wholly before is history the figures never count, however much of it there is.
    since = min(period.start, (now or period.end) - timedelta(weeks=measures.MIX_WEEKS))
    touching = [
        Case.team_id.in_(names),
        Case.opened_at < period.end,
        or_(
            Case.state == CaseState.AWAITING,
            Case.opened_at >= since,
            Case.due_at >= since,
            Case.agreed_at >= since,
            Case.waived_at >= since,
            Case.reviewed_at >= since,
            Case.action_date >= since.date(),
        ),
    ]
    if scope.leader_id is not None:
        touching.append(Case.leader_id == scope.leader_id)
    leader, agent = aliased(Person), aliased(Person)
    # Plain rows, not ORM objects: leadership reads thousands of cases and keeps none of them.
    query = (
        select(
            Case.id,
            Case.team_id,
            leader.name,
            leader.email,
            agent.email,
            *(getattr(Case, name) for name in _CASE_FIELDS),
        )
        .join(leader, leader.id == Case.leader_id)
        .join(agent, agent.id == Case.agent_id)
        .where(*touching)
    )
    # Streamed into slotted records, with repeated words shared: the organisation's report reads
    # every awaiting case (100,000 in a large one) and must stay small while it does.
    cases: list[measures.CaseFacts] = []
    words: dict[str, str] = {}
    rows = session.execute(query.execution_options(yield_per=1000))
    for case_id, team_id, leader_name, leader_email, agent_email, *fields in rows:
        values = dict(zip(_CASE_FIELDS, fields, strict=True))
        for name in _WORD_FIELDS:
            if values[name] is not None:
                values[name] = words.setdefault(values[name], values[name])
        leader_name = leader_name or leader_email
        cases.append(
            measures.CaseFacts(
                id=case_id,
                team=names[team_id],
                leader=words.setdefault(leader_name, leader_name),
                agent=words.setdefault(agent_email, agent_email),
                landed_at=values["opened_at"],
                **values,
            )
        )
    # Time to coach counts from the first score of a case: read for the cases agreed in the period.
    agreed = select(Case.id).where(*touching, Case.agreed_at >= period.start, Case.agreed_at < period.end)
    windows = _window_starts(session, agreed)
    cases = [replace(c, landed_at=windows[c.id]) if c.id in windows else c for c in cases]
    # The agents whose scores count: those of the cases read, and (for teams) every member, named
    # by a subquery, since an organisation's list would be a statement of 100,000 parameters. (The
    # subquery leaves out the joins to people, which never filter a case.)
    case_agents = select(Case.agent_id).where(*touching)
    agents: Select[Any] | CompoundSelect = case_agents
    if scope.leader_id is None:
        agents = case_agents.union(select(TeamAgent.person_id).where(TeamAgent.team_id.in_(names)))
    coached = {(c.agent, c.behaviour_key) for c in cases if c.agreed_at in period and c.behaviour_key}
    return cases, _landed(session, agents, period) + _criterion_scores(session, coached, period), calendars


_CASE_FIELDS = (
    "kind",
    "state",
    "opened_at",
    "due_at",
    "agreed_at",
    "acknowledged_at",
    "discussion_requested_at",
    "action_date",
    "reviewed_at",
    "review_happened",
    "waived_at",
    "waived_reason",
    "agent_proposed",
    "behaviour_key",
)
_WORD_FIELDS = ("kind", "state", "review_happened", "behaviour_key")


def _window_starts(session: Session, case_ids: Select[Any]) -> dict[int, datetime]:
    """When each case's first score landed (time to coach counts from it), by aggregate."""
    rows = session.execute(
        select(Evaluation.case_id, func.min(Evaluation.landed_at))
        .where(Evaluation.case_id.in_(case_ids))
        .group_by(Evaluation.case_id)
    )
    return {case_id: landed for case_id, landed in rows if case_id is not None}


def _landed(
    session: Session, agents: Select[Any] | CompoundSelect, period: measures.Period
) -> list[measures.ScoreFacts]:
    """The evaluations that landed in the period (bare: no criterion), counted per agent by the database."""
    rows = session.execute(
        select(Person.email, func.min(Evaluation.landed_at), func.count())
        .join(Evaluation, Evaluation.agent_id == Person.id)
        .where(Person.id.in_(agents), Evaluation.landed_at >= period.start, Evaluation.landed_at < period.end)
        .group_by(Person.email)
    )
    return [measures.ScoreFacts(email, landed, count=count) for email, landed, count in rows]


def _criterion_scores(
    session: Session, coached: set[tuple[str, str]], period: measures.Period
) -> list[measures.ScoreFacts]:
    """How each coached criterion scored for its agent, from before the period to now (behaviour change)."""
    out: list[measures.ScoreFacts] = []
    since = period.start - LOOKBACK
    for email, key in sorted(coached, key=str):
        rows = session.execute(
            select(Evaluation.landed_at, EvaluationItem.score, EvaluationItem.max_score)
            .join(EvaluationItem, EvaluationItem.evaluation_id == Evaluation.id)
            .join(Person, Evaluation.agent_id == Person.id)
            .where(Person.email == email, EvaluationItem.key == key, Evaluation.landed_at >= since)
        )
        out += [
            measures.ScoreFacts(email, landed, key, score >= max_score) for landed, score, max_score in rows
        ]
    return out


def compute(session: Session, scope: Scope, period: measures.Period, now: datetime) -> measures.Measures:
    cases, scores, calendars = facts(session, scope, period, now)
    return measures.compute(cases, scores, calendars, period, now)


def compute_by_team(
    session: Session, teams: list[Team], period: measures.Period, now: datetime
) -> dict[int, measures.Measures]:
    """Each team's figures (as `compute` per team), reading the facts for TEAMS_AT_ONCE teams at a
    time: a few statements for many teams, and at most that many teams' cases in memory."""
    with _ONE_COMPUTATION:
        out: dict[int, measures.Measures] = {}
        for start in range(0, len(teams), TEAMS_AT_ONCE):
            out |= _teams_together(session, teams[start : start + TEAMS_AT_ONCE], period, now)
        return out


def _teams_together(
    session: Session, teams: list[Team], period: measures.Period, now: datetime
) -> dict[int, measures.Measures]:
    cases, scores, calendars = facts(session, Scope(team_ids=tuple(t.id for t in teams)), period, now)
    members = session.execute(
        select(TeamAgent.team_id, Person.email)
        .join(Person, Person.id == TeamAgent.person_id)
        .where(TeamAgent.team_id.in_([t.id for t in teams]))
    ).all()
    out = {}
    for team in teams:
        own = [c for c in cases if c.team == team.name]
        agents = {c.agent for c in own} | {email for team_id, email in members if team_id == team.id}
        out[team.id] = measures.compute(
            own, [f for f in scores if f.agent in agents], {team.name: calendars[team.name]}, period, now
        )
    return out
