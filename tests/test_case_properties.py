"""Random sequences of scores, corrections, reorganisations, plans, acknowledgements, reviews, waivers
and hand-overs, through the real intake and transition code; the invariants are checked after every step.

Each example gets an org of its own (names carry a fresh number), so examples share one database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching, handover, review
from bot.case_state import CaseState
from bot.clock import FixedClock
from bot.errors import CoachingError
from bot.evaluation_input import parse_evaluation
from bot.org import apply_org, parse_org
from bot.slack import messages, summary
from bot.slack.home import home_view
from scheduler.timer_sweep import TimerSweep
from storage.db import Database
from storage.models import Case, Evaluation, Person, Team, Timer
from tests.payloads import evaluation

SECRET_REASON, SECRET_NOTE = "SECRET-REASON", "SECRET-NOTE"
START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
AGENTS = 4  # the last one is not in the org file at first
_examples = itertools.count(1)

# What each state needs, written out here (independently of bot.case_state): the timer kinds that may
# be pending, and the timers that must exist (pending, or done once fired).
ALLOWED = {
    CaseState.AWAITING: {"remind_day3", "remind_last_day", "escalate"},
    CaseState.AGREED: {"ack_reminder", "ack_overdue", "review_due", "review_chase", "review_escalate"},
    CaseState.DISCUSSION_REQUESTED: {"review_due", "review_chase", "review_escalate"},
    CaseState.ACKNOWLEDGED: {"review_due", "review_chase", "review_escalate"},
    CaseState.CLOSED: set(),
    CaseState.WAIVED: set(),
}
REVIEW_KEYS = ["review:due", "review:chase", "review:escalate"]
REQUIRED = {
    CaseState.AWAITING: ["remind:last_day", "escalate:1", "escalate:2"],
    CaseState.AGREED: ["ack:remind", "ack:overdue", *REVIEW_KEYS],
    CaseState.DISCUSSION_REQUESTED: REVIEW_KEYS,
    CaseState.ACKNOWLEDGED: REVIEW_KEYS,
    CaseState.CLOSED: [],
    CaseState.WAIVED: [],
}


@dataclass
class World:
    """One example's org (as the org file says it) and the versions of its scores."""

    n: int
    db: Database
    clock: FixedClock
    agent_team: list[int | None] = field(default_factory=lambda: [0, 0, 1, None])
    first_leader: bool = True
    versions: dict[int, datetime] = field(default_factory=dict)

    def email(self, role: str, i: int = 0) -> str:
        return f"{role}{i}.x{self.n}@example.com"

    def slack(self, role: str, i: int = 0) -> str:
        return f"U{role.upper()}{i}X{self.n}"

    def person(self, role: str, i: int = 0) -> str:
        return f"{{email: {self.email(role, i)}, slack_id: {self.slack(role, i)}, name: {role}{i}}}"

    def org(self) -> str:
        teams = []
        for t in (0, 1):
            leader = self.person("lead", t if (t or self.first_leader) else 2)
            agents = ", ".join(self.person("agent", i) for i in range(AGENTS) if self.agent_team[i] == t)
            teams.append(
                f"  - name: Team{t}-x{self.n}\n    team_leader: {leader}\n"
                f"    escalate_to: [{self.person('esc', t)}]\n    agents: [{agents}]\n"
            )
        return "defaults: {timezone: Europe/London, holidays: {country: GB}}\nteams:\n" + "".join(teams)

    def import_org(self) -> None:
        with self.db.unit_of_work() as session:
            apply_org(session, parse_org(self.org()), {}, self.clock.now())


# --- operations -----------------------------------------------------------------------------------


def _case(session: Session, world: World, pick: int, states: tuple[CaseState, ...]) -> Case | None:
    """One of this example's cases in these states (the `pick`-th, round the list), or None."""
    emails = [world.email("agent", i) for i in range(AGENTS)]
    found = list(
        session.scalars(
            select(Case)
            .join(Person, Case.agent_id == Person.id)
            .where(Person.email.in_(emails), Case.state.in_(states))
            .order_by(Case.id)
        )
    )
    return found[pick % len(found)] if found else None


def op_score(world: World, agent: int, ev: int, hours_ago: int, missed: bool, version: int) -> None:
    """A new score, a correction (newer version) or a stale resend (older version) of score `ev`."""
    now = world.clock.now()
    landed = now - timedelta(hours=hours_ago)
    payload = evaluation(
        id=f"ev-{world.n}-{ev}", landed_at=landed.isoformat(), score=60.0 if missed else 100.0
    )
    payload["agent"] = {"email": world.email("agent", agent)}
    payload["items"][0]["score"] = 0 if missed else 5
    previous = world.versions.get(ev)
    updated = now if previous is None else previous + timedelta(minutes=version)
    payload["updated_at"] = updated.isoformat()
    with world.db.unit_of_work() as session:
        result = coaching.intake(session, parse_evaluation(payload), now, "property")
    assert result.created == (previous is None)
    if previous is None or updated > previous:
        world.versions[ev] = updated


def op_reorganise(world: World, agent: int, team: int | None, swap_leader: bool) -> None:
    world.agent_team[agent] = team
    if swap_leader:
        world.first_leader = not world.first_leader
    world.import_org()


def op_leave(world: World, pick: int) -> None:
    """The agent of a case under way leaves the org file."""
    with world.db.unit_of_work() as session:
        case = _case(
            session, world, pick, (CaseState.AGREED, CaseState.ACKNOWLEDGED, CaseState.DISCUSSION_REQUESTED)
        )
        if case is None:
            return
        leaver = [world.email("agent", i) for i in range(AGENTS)].index(case.agent.email)
    op_reorganise(world, leaver, None, False)


def op_plan(world: World, agent: int, note: bool) -> None:
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        case = _case(session, world, agent, (CaseState.AWAITING,))
        if case is None:
            return
        draft = coaching.draft_plan(session, case, now)
        form = coaching.PlanForm(
            kind=draft.kind,
            behaviour_key=draft.behaviour_key,
            example=draft.example or "An example.",
            action=draft.action,
            by_when=draft.by_when.isoformat(),
            review_method=draft.review_method,
            agent_proposed=False,
            notes=f"{SECRET_NOTE} about the agent" if note else "",
        )
        coaching.agree_plan(session, case.id, case.leader, form, now)


def op_answer(world: World, agent: int, acknowledge: bool) -> None:
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        case = _case(session, world, agent, (CaseState.AGREED, CaseState.DISCUSSION_REQUESTED))
        if case is None:
            return
        act = coaching.acknowledge if acknowledge else coaching.request_discussion
        act(session, case.id, case.agent, now)


def op_review(world: World, agent: int, next_step: str) -> None:
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        case = _case(
            session, world, agent, (CaseState.AGREED, CaseState.ACKNOWLEDGED, CaseState.DISCUSSION_REQUESTED)
        )
        if case is None:
            return
        form = review.ReviewForm(happened="partly", worked="Some calls better.", next_step=next_step)
        review.record_review(session, case.id, case.leader, form, now)


def op_waive(world: World, agent: int, by_leadership: bool) -> None:
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        case = _case(session, world, agent, (CaseState.AWAITING,))
        if case is None:
            return
        actor = case.team.escalation_people[0] if by_leadership else case.leader
        review.waive(session, case.id, actor, f"{SECRET_REASON}: personal matter", now)


def op_hand_over(world: World, agent: int) -> None:
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        case = _case(session, world, agent, (CaseState.AWAITING, CaseState.AGREED, CaseState.ACKNOWLEDGED))
        if case is None:
            return
        other = session.scalar(
            select(Team).where(Team.name.like(f"%-x{world.n}"), Team.id != case.team_id).limit(1)
        )
        assert other is not None
        handover.hand_over_case(session, case.id, case.team.escalation_people[0], other.leader, now)


def op_cover(world: World, days: int) -> None:
    """Holiday cover: team 1's leader holds team 0's leader's queue for a few days."""
    now = world.clock.now()
    with world.db.unit_of_work() as session:
        teams = {t.name: t for t in session.scalars(select(Team).where(Team.name.like(f"%-x{world.n}")))}
        first, second = teams[f"Team0-x{world.n}"], teams[f"Team1-x{world.n}"]
        until = (now + timedelta(days=days)).date()
        handover.cover_queue(session, first.escalation_people[0], first.leader, second.leader, until, now)


def op_wait(world: World, hours: int) -> None:
    world.clock.advance(timedelta(hours=hours))
    TimerSweep(world.db, world.clock).run_once()


agents = st.integers(0, AGENTS - 1)
SCORES = st.tuples(
    st.just(op_score), agents, st.integers(0, 5), st.integers(0, 200), st.booleans(), st.integers(-2, 3)
)
OPERATIONS = st.one_of(
    SCORES,
    SCORES,  # scores and corrections twice as often as the rest
    st.tuples(st.just(op_reorganise), agents, st.sampled_from([0, 1, None]), st.booleans()),
    st.tuples(st.just(op_leave), agents),
    st.tuples(st.just(op_plan), agents, st.booleans()),
    st.tuples(st.just(op_answer), agents, st.booleans()),
    st.tuples(st.just(op_review), agents, st.sampled_from(["close", "recoach", "next"])),
    st.tuples(st.just(op_waive), agents, st.booleans()),
    st.tuples(st.just(op_hand_over), agents),
    st.tuples(st.just(op_cover), st.integers(0, 6)),
    st.tuples(st.just(op_wait), st.integers(1, 80)),
)


# --- invariants -----------------------------------------------------------------------------------


def check_invariants(world: World) -> None:
    now = world.clock.now()
    emails = [world.email("agent", i) for i in range(AGENTS)]
    with world.db.unit_of_work() as session:
        people = {p.email: p for p in session.scalars(select(Person).where(Person.email.in_(emails)))}
        ids = [p.id for p in people.values()]
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.agent_id.in_(ids)))}
        for agent_id in ids:
            awaiting = [
                c.id for c in cases.values() if c.agent_id == agent_id and c.state == CaseState.AWAITING
            ]
            assert len(awaiting) <= 1, f"agent {agent_id} has {len(awaiting)} awaiting cases: {awaiting}"
        timers: dict[int, dict[str, Timer]] = {case_id: {} for case_id in cases}
        for t in session.scalars(select(Timer).where(Timer.case_id.in_(list(cases)))):
            timers[t.case_id or 0][t.dedupe_key] = t
        for case in cases.values():
            state, found = CaseState(case.state), timers[case.id]
            pending = {t.kind for t in found.values() if t.status == "pending"}
            assert pending <= ALLOWED[state], (case.id, state, pending)
            for suffix in REQUIRED[state]:
                timer = found.get(f"case:{case.id}:{suffix}")
                assert timer is not None and timer.status in ("pending", "done"), (case.id, state, suffix)
        for ev in session.scalars(select(Evaluation).where(Evaluation.agent_email.in_(emails))):
            if ev.case_id is None:
                continue
            owner = people.get(ev.agent_email)
            case = cases.get(ev.case_id)
            assert owner is not None and case is not None and case.agent_id == ev.agent_id == owner.id, (
                f"evaluation {ev.id} sits on another agent's case"
            )
        # Waive reasons (the leaders' and the system's) and leader notes never reach an agent's surfaces.
        private = {text for c in cases.values() for text in (c.waived_reason, c.notes) if text}
        for person in people.values():
            if not private or not any(c.agent_id == person.id for c in cases.values()):
                continue  # nothing private exists yet, or nothing of this agent's to show
            shown = json.dumps(_agent_surfaces(session, person, now), ensure_ascii=False)
            leaked = [text for text in private if text in shown]
            assert not leaked, (person.email, leaked)


def _agent_surfaces(session: Session, agent: Person, now: datetime) -> list[Any]:
    """Everything the agent can open: their Home (which `/coach` alone repeats for an agent), `/coach`
    about themself, and their DMs."""
    seen: list[Any] = [home_view(session, agent, now)]
    try:
        seen.append(summary.answer(session, agent, f"<@{agent.slack_id}>", now))
    except CoachingError as refused:
        seen.append(str(refused))
    for case in session.scalars(select(Case).where(Case.agent_id == agent.id)):
        if case.agreed_at is not None:
            seen += [messages.agent_agreement(case, now).blocks, messages.agent_ack_reminder(case).blocks]
    return seen


# Examples per run: enough to walk every operation into every state, few enough for `make test`.
EXAMPLES = {"sqlite": 25, "postgresql": 15}


def test_invariants_hold_after_every_step(db: Database) -> None:
    @settings(max_examples=EXAMPLES[db.engine.dialect.name], deadline=None, database=None)
    @given(steps=st.lists(OPERATIONS, min_size=3, max_size=20))
    def run(steps: list[tuple[Any, ...]]) -> None:
        world = World(next(_examples), db, FixedClock(START))
        world.import_org()
        opening = [(op_score, agent, agent, 1, agent != 1, 0) for agent in range(AGENTS)]
        for op, *args in opening + steps:
            world.clock.advance(timedelta(minutes=10))
            # A refusal (e.g. a hand-over to the leader who holds the case) changes nothing; checked below.
            with contextlib.suppress(CoachingError):
                op(world, *args)
            check_invariants(world)

    run()
