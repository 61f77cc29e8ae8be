"""Scores stored in bulk leave exactly what storing them one at a time leaves.

Random batches of scores (new ones, repeats, corrections, stale resends, unknown agents, scores that move
a deadline earlier, scores from the future) go through the intake writer's bulk path on one database and
through `coaching.intake`, one score at a time, on another; after every batch both databases hold the same
evaluations, cases, timers, queued messages, audit entries and preparation requests, and each score got
the same answer.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from bot import coaching
from bot.app.services import Services
from bot.clock import FixedClock
from bot.evaluation_input import EvaluationInput, PayloadErrors, parse_evaluation
from bot.org import apply_org, parse_org
from handlers.intake_writer import IntakeWriter, _Pending
from storage.db import Database
from storage.models import AuditEntry, Case, DevelopmentPrep, Evaluation, OutboxMessage, Person, Timer
from tests.conftest import make_database
from tests.payloads import evaluation

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
AGENTS = 4  # the last one is not in the org file
_examples = itertools.count(1)


def org(n: int) -> str:
    def person(role: str, i: int) -> str:
        return f"{{email: {role}{i}.b{n}@example.com, slack_id: U{role.upper()}{i}B{n}, name: {role}{i}}}"

    agents = [", ".join(person("agent", i) for i in (0, 1)), person("agent", 2)]
    teams = "".join(
        f"  - name: Team{t}-b{n}\n    team_leader: {person('lead', t)}\n"
        f"    escalate_to: [{person('esc', t)}]\n    agents: [{agents[t]}]\n"
        for t in (0, 1)
    )
    return "defaults: {timezone: Europe/London, holidays: {country: GB}}\nteams:\n" + teams


score_ops = st.tuples(
    st.integers(0, AGENTS - 1),  # agent
    st.integers(0, 5),  # which score
    st.sampled_from([1, 30, 200, -2]),  # hours since it landed (negative: from the future)
    st.booleans(),  # missed a criterion
    st.integers(-5, 5),  # minutes added to the score's last version (a correction, or a stale resend)
)


def payload(n: int, versions: dict[int, datetime], now: datetime, op: tuple[Any, ...]) -> dict[str, Any]:
    agent, ev, hours_ago, missed, minutes = op
    body = evaluation(
        id=f"ev-{n}-{ev}", landed_at=(now - timedelta(hours=hours_ago)).isoformat(),
        score=60.0 if missed else 100.0,
    )  # fmt: skip
    body["agent"] = {"email": f"agent{agent}.b{n}@example.com"}
    body["items"][0]["score"] = 0 if missed else 5
    previous = versions.get(ev)
    updated = now if previous is None else previous + timedelta(minutes=minutes)
    body["updated_at"] = updated.isoformat()
    versions[ev] = max(updated, previous or updated)
    return body


def one_by_one(db: Database, batch: list[EvaluationInput], now: datetime) -> list[Any]:
    answers: list[Any] = []
    for data in batch:
        try:
            with db.unit_of_work() as session:
                answers.append(coaching.intake(session, data, now, f"webhook:{data.source}"))
        except PayloadErrors as exc:
            answers.append(exc.errors)
    return answers


def in_bulk(writer: IntakeWriter, batch: list[EvaluationInput]) -> list[Any]:
    pending = [_Pending(data) for data in batch]
    writer._write(pending)
    answers: list[Any] = []
    for p in pending:
        error = p.future.exception()
        answers.append(error.errors if isinstance(error, PayloadErrors) else p.future.result())
    return answers


# --- what a database holds, with ids replaced by what they stand for ------------------------------


class Picture:
    def __init__(self, db: Database, n: int) -> None:
        self.tag = f".b{n}@"
        with db.read() as session:
            self.emails = {p.id: p.email for p in session.scalars(select(Person)) if self.tag in p.email}
            self.evs = {
                e.id: e for e in session.scalars(select(Evaluation)) if self.tag in e.agent_email
            }
            cases = [c for c in session.scalars(select(Case).order_by(Case.id)) if c.agent_id in self.emails]
            rank: Counter[int] = Counter()
            self.cases: dict[int, str] = {}
            for c in cases:
                rank[c.agent_id] += 1
                self.cases[c.id] = f"{self.emails[c.agent_id]}#{rank[c.agent_id]}"
            self.tables = {
                "cases": sorted(self.case_row(c) for c in cases),
                "evaluations": sorted(self.evaluation_row(e) for e in self.evs.values()),
                "timers": sorted(
                    (self.key(t.dedupe_key), t.kind, t.due_at, t.status)
                    for t in session.scalars(select(Timer)) if t.case_id in self.cases
                ),  # fmt: skip
                "outbox": Counter(
                    (o.kind, self.key(o.dedupe_key), self.key(o.updates_key or ""),
                     self.cases.get(o.case_id or 0), self.emails.get(o.person_id or 0), o.status,
                     str(o.payload), o.due_at)
                    for o in session.scalars(select(OutboxMessage))
                    if o.case_id in self.cases or o.person_id in self.emails
                ),  # fmt: skip
                "audit": Counter(
                    (a.action, a.actor, self.cases.get(a.case_id or 0), self.detail(a.detail))
                    for a in session.scalars(select(AuditEntry))
                    if a.case_id in self.cases or a.detail.get("evaluation_id") in self.evs
                ),  # fmt: skip
                "prep": sorted(
                    (self.cases[p.case_id], p.asked_at)
                    for p in session.scalars(select(DevelopmentPrep)) if p.case_id in self.cases
                ),  # fmt: skip
            }

    def case_row(self, c: Case) -> tuple[Any, ...]:
        evs = sorted(e.external_id for e in self.evs.values() if e.case_id == c.id)
        return (self.cases[c.id], c.state, c.kind, c.due_at, c.opened_at, self.emails.get(c.leader_id),
                c.suggested_key, c.waived_reason, c.leader_dm_version, tuple(evs))  # fmt: skip

    def evaluation_row(self, e: Evaluation) -> tuple[Any, ...]:
        items = tuple((i.position, i.key, i.score, i.max_score, i.weight, i.critical) for i in e.items)
        return (e.external_id, e.agent_email, self.emails.get(e.agent_id or 0),
                self.cases.get(e.case_id or 0), e.intake_status, e.revision, e.score, e.landed_at,
                e.window_from, e.content_hash, e.source_updated_at, e.received_at, items,
                str(sorted(e.raw.items())))  # fmt: skip

    def label(self, ev_id: int) -> str:
        return self.evs[ev_id].external_id if ev_id in self.evs else "?"

    def key(self, key: str) -> str:
        key = re.sub(r"case:(\d+)", lambda m: f"case:{self.cases.get(int(m[1]))}", key)
        key = re.sub(r"(joined|revised|moved)-(\d+)", lambda m: f"{m[1]}-{self.label(int(m[2]))}", key)
        key = re.sub(r"home:(\d+)", lambda m: f"home:{self.emails.get(int(m[1]))}", key)
        return re.sub(r":[0-9a-f]{17,32}$", "", key)  # a one-off key's token

    def detail(self, detail: dict[str, Any]) -> str:
        named = {}
        for name, value in detail.items():
            if name == "evaluation_id":
                value = self.label(value)
            elif name in ("from_case", "to_case"):
                value = self.cases.get(value or 0)
            named[name] = value
        return str(sorted(named.items()))

    def answer(self, answer: Any) -> Any:
        if isinstance(answer, coaching.IntakeResult):
            return (self.label(answer.evaluation_id), self.cases.get(answer.case_id or 0), answer.status,
                    answer.created)  # fmt: skip
        return answer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    (tmp_path / "bulk").mkdir()
    (tmp_path / "single").mkdir()
    dbs = (make_database(request.param, tmp_path / "bulk", request),
           make_database(request.param, tmp_path / "single", request))  # fmt: skip
    yield dbs
    for db in dbs:
        db.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(score_ops, min_size=1, max_size=8), min_size=1, max_size=4))
# A developmental case opened and joined with a shortfall in one batch; a case joined by a score that
# moves its deadline earlier, then by one that does not; a repeat and a correction beside new scores.
@example(batches=[[(0, 0, 1, False, 0), (0, 1, 1, True, 0)]])
@example(batches=[[(1, 0, 1, True, 0)], [(1, 1, 200, True, 0), (1, 2, 1, False, 0)]])
@example(batches=[[(0, 0, 1, True, 0), (2, 1, 1, False, 0)], [(0, 0, 1, True, -3), (2, 1, 30, True, 2)]])
@example(batches=[[(0, 0, 1, False, -3), (1, 1, 30, False, -2), (2, 3, -2, True, 3), (0, 3, 200, True, -5),
                   (2, 1, 200, True, 1), (3, 1, -2, True, -5)],
                  [(1, 4, 30, True, 1), (1, 1, 200, True, 1), (2, 3, -2, True, 3), (3, 3, 200, True, -2),
                   (0, 2, 1, True, 2)],
                  [(0, 5, -2, False, -5)],
                  [(2, 1, 1, False, -5), (2, 1, 200, True, 5), (3, 3, 30, True, 2), (0, 1, 30, False, 0),
                   (3, 1, -2, False, 5), (2, 2, -2, False, 1), (1, 0, -2, False, 0), (3, 3, 1, True, 4)]])
@example(batches=[[(0, 0, -2, False, -3), (0, 1, 1, False, -2), (0, 0, -2, True, 3), (0, 3, 1, True, -5),
                   (2, 1, 1, True, 1), (0, 0, -2, True, -5)],
                  [(1, 0, 1, True, 1), (1, 0, 1, True, 1), (2, 3, -2, True, 3), (3, 3, 1, True, -2),
                   (0, 2, 1, True, 2)]])
def test_bulk_intake_leaves_what_one_by_one_intake_leaves(
    two_databases: tuple[Database, Database], batches: list[list[tuple[Any, ...]]]
) -> None:
    bulk_db, single_db = two_databases
    n = next(_examples)
    clock = FixedClock(START)
    for db in (bulk_db, single_db):
        with db.unit_of_work() as session:
            apply_org(session, parse_org(org(n)), {}, clock.now())
    writer = IntakeWriter(cast(Services, SimpleNamespace(db=bulk_db, clock=clock)))
    versions: dict[int, datetime] = {}
    for step, ops in enumerate(batches):
        clock.set(START + timedelta(hours=step))
        now = clock.now()
        batch = [parse_evaluation(payload(n, versions, now, op)) for op in ops]
        bulk_answers = in_bulk(writer, batch)
        single_answers = one_by_one(single_db, batch, now)
        bulk, single = Picture(bulk_db, n), Picture(single_db, n)
        assert [bulk.answer(a) for a in bulk_answers] == [single.answer(a) for a in single_answers]
        for table in bulk.tables:
            assert bulk.tables[table] == single.tables[table], table


@pytest.mark.parametrize("gather", [0.0, 0.5])
def test_a_score_sent_moments_after_another_joins_its_transaction(tmp_path: Path, gather: float) -> None:
    """The writer waits `gather` seconds after a batch's first score for others: one sent 0.1 s later
    goes in the same transaction (one commit); with no wait it takes a transaction of its own."""
    db = Database(f"sqlite:///{tmp_path / 'gather.db'}")
    db.create_schema()
    clock = FixedClock(START)
    with db.unit_of_work() as session:
        apply_org(session, parse_org(org(0)), {}, clock.now())
    commits = Counter[str]()
    event.listen(db.engine, "commit", lambda _conn: commits.update(["commit"]))
    writer = IntakeWriter(cast(Services, SimpleNamespace(db=db, clock=clock)), gather=gather)
    first = writer.submit(parse_evaluation(payload(0, {}, START, (0, 0, 1, True, 0))))
    time.sleep(0.1)
    second = writer.submit(parse_evaluation(payload(0, {}, START, (1, 1, 1, True, 0))))
    answers = [first.result(timeout=10), second.result(timeout=10)]
    assert [a.status for a in answers] == ["case_opened", "case_opened"]
    assert commits["commit"] == (1 if gather else 2)
    db.dispose()
