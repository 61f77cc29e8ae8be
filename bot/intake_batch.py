"""Many scores in one transaction, in a fixed number of statements however many there are.

The common scores (a repeat of a stored one; a new score for a known agent that opens the agent's case or
joins the case awaiting a conversation) are decided in memory and written in bulk: the rows are exactly
those `coaching.intake` writes one score at a time. Every other score (a correction, an unknown agent, a
landing time in the future, one that moves a deadline earlier) is left to `coaching.intake`, after these
and in the order given, together with every later score of the same agent, so that each agent's scores
still take effect in the order they arrived."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, literal_column, select, update
from sqlalchemy import case as case_when
from sqlalchemy.orm import Session, lazyload

from bot import development, timers
from bot.coaching import DEVELOPMENTAL, FUTURE_TOLERANCE, PERFORMANCE, IntakeResult, leader_dm_key_of
from bot.evaluation_input import EvaluationInput
from bot.team_calendar import calendar_for
from storage import queries
from storage.bulk import insert_items, item_rows
from storage.models import (
    Base,
    Case,
    DevelopmentPrep,
    Evaluation,
    LeaderCover,
    Person,
    Team,
    TeamAgent,
)
from storage.outbox import audit_all, enqueue_all, home_rows, outbox_row, refresh_rows, schedule_timers
from storage.planner import filter_only

CASES = Base.metadata.tables[Case.__tablename__]
EVALUATIONS = Base.metadata.tables[Evaluation.__tablename__]


@dataclass(frozen=True)
class Incoming:
    """A score to store, who sent it (the audit actor) and the request it came with (for the logs)."""

    data: EvaluationInput
    actor: str
    request_id: str | None = None


@dataclass
class _NewCase:
    agent_id: int
    team: Team
    leader_id: int
    kind: str  # as it opened (what its audit entry says, and whether the agent is asked to prepare)
    due_at: datetime
    first: int  # the position of the score that opens it
    id: int = 0
    later_shortfall: bool = False  # a later score of the batch joins it with a shortfall

    @property
    def final_kind(self) -> str:
        return PERFORMANCE if self.later_shortfall else self.kind


@dataclass
class _Join:
    case_id: int
    team: Team
    leader_id: int
    agent_id: int
    leader_dm_version: int
    due_at: datetime
    new: _NewCase | None = None  # a case this batch opens
    positions: list[int] = field(default_factory=list)


def intake_many(session: Session, scores: Sequence[Incoming], now: datetime) -> list[IntakeResult | None]:
    """Store what can be stored in bulk; None where the caller must call `coaching.intake` itself
    (after this returns, in the order given)."""
    results: list[IntakeResult | None] = [None] * len(scores)
    session.flush()  # its lookups run on the connection: write out what the transaction changed first
    stored = _stored(session, [score.data for score in scores])
    slow_emails: set[str] = set()  # agents (by the score's email, and by the stored score's agent) whose
    slow_agents: set[int] = set()  # scores in this batch all go one at a time
    times = Counter((score.data.source, score.data.external_id) for score in scores)
    new: list[int] = []
    for i, score in enumerate(scores):
        d = score.data
        key = (d.source, d.external_id)
        found = stored.get(key)
        if d.landed_at > now + FUTURE_TOLERANCE or times[key] > 1 or (
            found is not None and found.content_hash != d.content_hash  # a correction, or a stale version
        ):
            slow_emails.add(d.agent_email)
            if found is not None and found.agent_id is not None:
                slow_agents.add(found.agent_id)
        elif found is not None:  # a repeat
            results[i] = IntakeResult(found.id, found.case_id, found.intake_status, created=False)
        else:
            new.append(i)

    agents = _agents(session, {scores[i].data.agent_email for i in new})
    for i in new:
        if scores[i].data.agent_email not in agents:
            slow_emails.add(scores[i].data.agent_email)
    fast = [
        i for i in new
        if (email := scores[i].data.agent_email) not in slow_emails and agents[email][0] not in slow_agents
    ]  # fmt: skip
    if fast:
        _store(session, scores, fast, agents, now, results)
    return results


@dataclass(frozen=True)
class _Stored:
    id: int
    case_id: int | None
    intake_status: str
    content_hash: str
    agent_id: int | None


_EV = EVALUATIONS.c
_STORED = select(
    _EV.external_id, _EV.id, _EV.case_id, _EV.intake_status, _EV.content_hash, _EV.agent_id
).where(_EV.source == bindparam("source"), _EV.external_id.in_(bindparam("ids", expanding=True)))


def _stored(session: Session, batch: list[EvaluationInput]) -> dict[tuple[str, str], _Stored]:
    found: dict[tuple[str, str], _Stored] = {}
    conn = session.connection()
    for source in {d.source for d in batch}:
        ids = [d.external_id for d in batch if d.source == source]
        for ext, ev_id, case_id, status, content_hash, agent_id in conn.execute(
            _STORED, {"source": source, "ids": ids}
        ):
            found[(source, ext)] = _Stored(ev_id, case_id, status, content_hash, agent_id)
    return found


_AGENTS = (
    select(Person.email, Person.id, TeamAgent.team_id)
    .join(TeamAgent, TeamAgent.person_id == Person.id)
    .where(Person.email.in_(bindparam("emails", expanding=True)))
)


def _agents(session: Session, emails: set[str]) -> dict[str, tuple[int, int]]:
    """email -> (person id, team id) for the agents of a team among `emails`."""
    if not emails:
        return {}
    rows = session.connection().execute(_AGENTS, {"emails": sorted(emails)})
    return {email: (person_id, team_id) for email, person_id, team_id in rows}


def _shortfall(d: EvaluationInput) -> bool:
    return d.score < d.max_score or any(item.score < item.max_score for item in d.items)


_TEAMS = select(Team).where(Team.id.in_(bindparam("ids", expanding=True))).options(lazyload(Team.leader))
_C = CASES.c
_AWAITING = select(_C.id, _C.agent_id, _C.team_id, _C.leader_id, _C.leader_dm_version, _C.due_at).where(
    # written out, not bound, so that a generic plan on PostgreSQL can use the partial index too
    filter_only(_C.state == literal_column(f"'{queries.AWAITING}'")),
    _C.agent_id.in_(bindparam("agents", expanding=True)),
)


_INSERT_CASES = insert(CASES).returning(_C.agent_id, _C.id)
_INSERT_EVALUATIONS = insert(EVALUATIONS).returning(_EV.source, _EV.external_id, _EV.id)


def _store(
    session: Session,
    scores: Sequence[Incoming],
    fast: list[int],
    agents: dict[str, tuple[int, int]],
    now: datetime,
    results: list[IntakeResult | None],
) -> None:
    agent_ids = sorted({agents[scores[i].data.agent_email][0] for i in fast})
    queries.lock_people(session, agent_ids)
    team_ids = {agents[scores[i].data.agent_email][1] for i in fast}
    teams = {t.id: t for t in session.scalars(_TEAMS, {"ids": list(team_ids)})}
    awaiting = {
        agent_id: _Join(case_id, teams.get(team_id) or session.get_one(Team, team_id), leader_id, agent_id,
                        version or 0, due_at)  # fmt: skip
        for case_id, agent_id, team_id, leader_id, version, due_at in session.connection().execute(
            _AWAITING, {"agents": agent_ids}
        )
    }
    holders = _holders(session, [t.leader_id for t in teams.values()])

    opened: list[_NewCase] = []
    joins: dict[int, _Join] = {}  # by agent
    stopped: set[int] = set()  # agents whose later scores go one at a time
    kept: list[tuple[int, _Join]] = []  # (position, the case it opens or joins), in order
    for i in fast:
        d = scores[i].data
        agent_id, team_id = agents[d.agent_email]
        if agent_id in stopped:
            continue
        team = teams[team_id]
        deadline = calendar_for(team).deadline(d.landed_at, team.window_days)
        join = joins.get(agent_id) or awaiting.get(agent_id)
        if join is None:
            leader_id = holders.get(team.leader_id, team.leader_id)
            kind = PERFORMANCE if _shortfall(d) else DEVELOPMENTAL
            case = _NewCase(agent_id, team, leader_id, kind, deadline, i)
            opened.append(case)
            joins[agent_id] = _Join(0, team, leader_id, agent_id, 0, deadline, new=case)
            kept.append((i, joins[agent_id]))
        elif deadline < join.due_at:  # an earlier window: the deadline is counted again, one at a time
            stopped.add(agent_id)
        else:
            joins[agent_id] = join
            join.positions.append(i)
            if join.new is not None and _shortfall(d):
                join.new.later_shortfall = True
            kept.append((i, join))

    if not kept:
        return
    if opened:
        # RETURNING names each new row by its key (an agent has one awaiting case), so that the rows can
        # go in one statement: ordered RETURNING would cost a statement per row on SQLite.
        new_ids: dict[int, int] = {
            agent_id: case_id
            for agent_id, case_id in session.connection().execute(
                _INSERT_CASES,
                [
                    dict(agent_id=c.agent_id, team_id=c.team.id, leader_id=c.leader_id, kind=c.final_kind,
                         state=queries.AWAITING, opened_at=now, due_at=c.due_at, leader_dm_version=0)
                    for c in opened
                ],  # fmt: skip
            )
        }
        for case in opened:
            case.id = new_ids[case.agent_id]
        for join in joins.values():
            if join.new is not None:
                join.case_id = join.new.id

    statuses = {i: "case_opened" if join.new and join.new.first == i else "joined_case" for i, join in kept}
    case_of = {i: join.case_id for i, join in kept}
    order = [i for i, _ in kept]
    conn = session.connection()  # Core statements: the rows are plain values, no ORM objects
    stored_ids = {
        (source, ext): ev_id
        for source, ext, ev_id in conn.execute(
            _INSERT_EVALUATIONS,
            [_evaluation_row(scores[i].data, agents[scores[i].data.agent_email][0], case_of[i], statuses[i],
                             now) for i in order],
        )
    }  # fmt: skip
    ev_of = {i: stored_ids[(scores[i].data.source, scores[i].data.external_id)] for i in order}
    insert_items(conn, [row for i in order for row in item_rows(ev_of[i], scores[i].data.items)])
    for i in order:
        results[i] = IntakeResult(ev_of[i], case_of[i], statuses[i], created=True)
    messages = _follow_ons(session, scores, opened, list(joins.values()), ev_of, now)
    # As `coaching.homes_changed`: the agent's Home too when their case opens, not when one joins it.
    people = {p for j in joins.values() for p in (j.leader_id, j.team.leader_id)}
    people |= {case.agent_id for case in opened}
    messages += home_rows(session, people, now, team_ids={j.team.id for j in joins.values()},
                          request_id=scores[fast[0]].request_id)  # fmt: skip
    enqueue_all(session, messages)  # new cases' messages, then refreshes, then Homes: one statement


def _follow_ons(
    session: Session,
    scores: Sequence[Incoming],
    opened: list[_NewCase],
    joins: list[_Join],
    ev_of: dict[int, int],
    now: datetime,
) -> list[dict[str, Any]]:
    """What opening and joining cases queue, as `coaching.attach_to_case` does: audit entries, the new
    cases' DMs, timers and preparation requests, the joined cases' DM refreshes and changed kinds. The
    messages are returned, to go out in one insert with the Home re-publishes."""
    audits: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    new_timers: list[tuple[str, str, int | None, datetime]] = []
    preps: list[dict[str, Any]] = []
    for case in opened:
        score = scores[case.first]
        ev_id = ev_of[case.first]
        audits.append(_audit(now, score.actor, "case_opened", case.id, evaluation_id=ev_id, kind=case.kind))
        key = leader_dm_key_of(case.id, 0)
        messages.append(outbox_row(key, "leader_case", now=now, case_id=case.id, person_id=case.leader_id,
                                   request_id=score.request_id))  # fmt: skip
        cal = calendar_for(case.team)
        wanted, _ = timers.conversation_timers(case.id, case.due_at, score.data.landed_at, cal)
        new_timers += [(key_, kind, case.id, due) for key_, kind, due in wanted]
        if case.kind == DEVELOPMENTAL:
            preps.append(dict(case_id=case.id, asked_at=now))
            messages.append(outbox_row(development.prep_key(case.id), "agent_prep", now=now, case_id=case.id,
                                       person_id=case.agent_id, request_id=score.request_id))  # fmt: skip
            audits.append(_audit(now, "coachloop", "prep_asked", case.id))
    schedule_timers(session, new_timers)
    if preps:
        session.connection().execute(_INSERT_PREP, preps)

    refreshes: dict[str, tuple[int, str, str | None]] = {}
    joined = {j.case_id: j for j in joins if j.positions}
    for join in joined.values():
        for i in join.positions:
            actor, request_id = scores[i].actor, scores[i].request_id
            audits.append(_audit(now, actor, "evaluation_joined", join.case_id, evaluation_id=ev_of[i]))
            if join.new is None:  # a DM this batch queues shows its joined scores when it goes out
                dm = leader_dm_key_of(join.case_id, join.leader_dm_version)
                refreshes.setdefault(dm, (join.case_id, f"joined-{ev_of[i]}", request_id))
    existing = [j.case_id for j in joined.values() if j.new is None]
    if existing:
        shortfall = [
            j.case_id for j in joined.values()
            if j.new is None and any(_shortfall(scores[i].data) for i in j.positions)
        ]  # fmt: skip
        session.connection().execute(_JOINED, {"cases": existing, "shortfall": shortfall})
    audit_all(session, audits)
    return messages + refresh_rows(session, refreshes, now)


_INSERT_PREP = insert(Base.metadata.tables[DevelopmentPrep.__tablename__])
# A joined case forgets its suggested behaviour (re-ranked when next shown); one joined by a shortfall
# becomes a performance conversation.
_JOINED = (
    update(CASES)
    .where(CASES.c.id.in_(bindparam("cases", expanding=True)))
    .values(
        suggested_key=None,
        kind=case_when(
            (CASES.c.id.in_(bindparam("shortfall", expanding=True)), PERFORMANCE), else_=CASES.c.kind
        ),
    )
)


_HOLDERS = (
    select(LeaderCover.leader_id, LeaderCover.cover_id)
    .where(LeaderCover.leader_id.in_(bindparam("leaders", expanding=True)), LeaderCover.ended_at.is_(None))
    .order_by(LeaderCover.id)
)


def _holders(session: Session, leader_ids: list[int]) -> dict[int, int]:
    """leader id -> the leader covering their queue now, where one does."""
    covers: dict[int, int] = {}
    for leader_id, cover_id in session.connection().execute(_HOLDERS, {"leaders": leader_ids}):
        covers[leader_id] = cover_id  # the latest cover wins, as `queries.active_cover` reads it
    return covers


def _audit(now: datetime, actor: str, action: str, case_id: int, **detail: Any) -> dict[str, Any]:
    return dict(at=now, actor=actor, case_id=case_id, action=action, detail=detail)


def _evaluation_row(
    d: EvaluationInput, agent_id: int, case_id: int, status: str, now: datetime
) -> dict[str, Any]:
    return dict(
        source=d.source, external_id=d.external_id, agent_email=d.agent_email, agent_id=agent_id,
        evaluator_email=d.evaluator_email, evaluator_name=d.evaluator_name, scorecard_id=d.scorecard_id,
        scorecard_name=d.scorecard_name, score=d.score, max_score=d.max_score, landed_at=d.landed_at,
        contact_id=d.contact_id, contact_channel=d.contact_channel, contact_started_at=d.contact_started_at,
        contact_url=d.contact_url, raw=d.raw_json, content_hash=d.content_hash, revision=1,
        source_updated_at=d.updated_at, intake_status=status, received_at=now, case_id=case_id,
    )  # fmt: skip
