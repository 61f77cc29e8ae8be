"""What one score costs: a constant number of statements, however long the agent's history, and the
refreshes it queues coalesce (one pending per message and per person's Home) without losing any."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, update

from bot.evaluation_input import parse_evaluation
from bot.intake_batch import Incoming, intake_many
from storage.db import Database
from storage.models import Case, Evaluation, EvaluationItem, OutboxMessage, Team, TeamAgent
from storage.outbox import claim_outbox, enqueue_all, enqueue_homes, enqueue_refreshes, outbox_row
from tests.conftest import MONDAY_AFTERNOON, Stack, make_database
from tests.payloads import evaluation, perfect
from tests.scenario import ANA, LENA, PRIYA, TOM, import_org, person, plan, score

NOW = MONDAY_AFTERNOON
MOST_STATEMENTS = 18  # what a score may cost at most, new case or joined, on any database


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def give_history(db: Database, email: str, evaluations: int) -> None:
    """A long past for the agent: closed cases holding many scored evaluations (inserted in bulk)."""
    with db.unit_of_work() as session:
        agent = person(session, email)
        team = session.scalar(select(Team).join(TeamAgent).where(TeamAgent.person_id == agent.id))
        assert team is not None
        case_ids = []
        for n in range(10):
            opened = NOW - timedelta(days=200 - n * 10)
            case = Case(
                agent_id=agent.id, team_id=team.id, leader_id=team.leader_id, kind="performance",
                state="closed", opened_at=opened, due_at=opened + timedelta(days=7), agreed_at=opened,
                behaviour_key="acknowledge", closed_at=opened + timedelta(days=9), review_next="close",
            )
            session.add(case)
            session.flush()
            case_ids.append(case.id)
        first = (session.scalar(select(func.max(Evaluation.id))) or 0) + 1
        session.execute(
            insert(Evaluation),
            [
                dict(id=first + i, source="history", external_id=f"h-{email}-{i}", agent_email=email,
                     agent_id=agent.id, score=70.0, max_score=100.0, received_at=NOW,
                     landed_at=NOW - timedelta(days=200 - i * 190 / evaluations), raw={}, content_hash="",
                     revision=1, intake_status="joined_case", case_id=case_ids[i % len(case_ids)])
                for i in range(evaluations)
            ],
        )
        session.execute(
            insert(EvaluationItem),
            [
                dict(evaluation_id=first + i, position=0, key="acknowledge", name="Acknowledges", score=0,
                     max_score=5.0, weight=2.0, critical=False)
                for i in range(evaluations)
            ],
        )
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('evaluations', 'id'), "
                "(SELECT max(id) FROM evaluations))"
            )


def cost(db: Database, **changes: Any) -> int:
    with statements(db) as seen:
        score(db, NOW, **changes)
    return len(seen)


def test_one_score_costs_the_same_statements_whatever_the_history(db: Database) -> None:
    import_org(db, NOW)
    with db.unit_of_work() as session:
        person(session, ANA).slack_id = "U0ANA"  # like Tom, so both have a Home to refresh
    give_history(db, TOM, 300)
    # A new case: Ana has no past; Tom has 300 scored evaluations in 10 closed cases.
    fresh = cost(db, id="a-1")
    veteran = cost(db, id="t-1", agent={"email": TOM})
    # A score joining the case each of them now has open.
    fresh_join = cost(db, id="a-2")
    veteran_join = cost(db, id="t-2", agent={"email": TOM})
    assert fresh == veteran <= MOST_STATEMENTS, (fresh, veteran)
    assert fresh_join == veteran_join <= MOST_STATEMENTS, (fresh_join, veteran_join)


def batch_cost(db: Database, payloads: list[dict[str, Any]]) -> tuple[int, list[Any]]:
    """The statements one bulk intake of these scores costs (inside the writer's transaction)."""
    scores = [Incoming(parse_evaluation(p), "test") for p in payloads]
    with db.unit_of_work() as session:  # as after a sweep: no refresh is pending, each batch queues its own
        session.execute(update(OutboxMessage).values(status="sent"))
    with db.unit_of_work() as session, statements(db) as seen:
        results = intake_many(session, scores, NOW)
    return len([s for s in seen if not s.startswith("BEGIN")]), results


def test_a_batch_of_scores_costs_the_same_statements_whatever_its_size(db: Database) -> None:
    """Opening cases, joining them and answering repeats in bulk: 1 score or 40, the same round trips."""
    import_org(db, NOW)
    with db.unit_of_work() as session:
        person(session, ANA).slack_id = "U0ANA"  # like Tom, so each batch has a Home to refresh
    give_history(db, TOM, 300)
    agents = [ANA, TOM]
    opens_one, _ = batch_cost(db, [evaluation(id="o-1")])
    two = [evaluation(id="o-2", agent={"email": TOM}), evaluation(id="o-3", agent={"email": LENA})]
    opens_two, results = batch_cost(db, two)
    assert [r.status if r else None for r in results] == ["case_opened", "case_opened"]
    joins_one, _ = batch_cost(db, [evaluation(id="j-1")])
    joins_many, results = batch_cost(
        db, [evaluation(id=f"j-{n}", agent={"email": agents[n % 2]}) for n in range(2, 42)]
    )
    assert all(r is not None and r.status == "joined_case" for r in results)
    again = [evaluation(id=f"j-{n}", agent={"email": agents[n % 2]}) for n in range(2, 42)]
    repeats, results = batch_cost(db, again)
    assert all(r is not None and not r.created for r in results)
    assert opens_one == opens_two <= MOST_STATEMENTS, (opens_one, opens_two)
    assert joins_one == joins_many <= MOST_STATEMENTS, (joins_one, joins_many)
    assert repeats == 1  # one lookup answers every repeat


def test_a_batch_queues_its_messages_in_one_insert_and_updates_joined_cases_in_one(db: Database) -> None:
    """A batch that opens one case and joins two: the new case's DM, the joined DMs' refreshes and the
    Homes go out in one INSERT; in one UPDATE both joined cases are re-ranked, and only the one joined
    by a shortfall becomes a performance conversation."""
    import_org(db, NOW)
    opened = batch_cost(db, [perfect("p-1", email=TOM), perfect("p-0", email=LENA)])[1]
    tom_case, lena_case = (result.case_id for result in opened)
    with db.unit_of_work() as session:
        person(session, PRIYA).slack_id = "U0PRIYA"  # the leader, whose Home shows the queue
        for case_id in (tom_case, lena_case):
            case = session.get_one(Case, case_id)
            assert case.kind == "developmental"
            case.suggested_key = "acknowledge"  # as when its DM was shown
        session.execute(update(OutboxMessage).values(status="sent"))
    # Ana's case opens; Tom's is joined by a shortfall, Lena's by a perfect score.
    payloads = [evaluation(id="p-2"), evaluation(id="p-3", agent={"email": TOM}), perfect("p-4", email=LENA)]
    scores = [Incoming(parse_evaluation(p), "test") for p in payloads]
    with db.unit_of_work() as session, statements(db) as seen:
        results = intake_many(session, scores, NOW)
    assert [r.status if r else None for r in results] == ["case_opened", "joined_case", "joined_case"]
    assert len([s for s in seen if s.startswith("INSERT INTO outbox")]) == 1, seen
    assert len([s for s in seen if s.startswith("UPDATE cases")]) == 1, seen
    with db.read() as session:
        joined = session.get_one(Case, tom_case)
        assert (joined.kind, joined.suggested_key) == ("performance", None)
        joined = session.get_one(Case, lena_case)
        assert (joined.kind, joined.suggested_key) == ("developmental", None)
        queued = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")).all()
    kinds = {(row.kind, row.case_id) for row in queued if row.kind != "home"}
    assert {("leader_case", results[0].case_id), ("refresh", tom_case), ("refresh", lena_case)} <= kinds
    assert [row.person_id for row in queued if row.kind == "home"] == [priya_id(db)]


GROWING = ("cases", "outbox", "evaluations", "evaluation_items", "audit_log", "timers")


def team_of(agents: int) -> str:
    """An org file: one team of `agents` agents, everyone in Slack."""
    people = ", ".join(f"{{email: agent{i}@example.com, slack_id: U0AGENT{i}}}" for i in range(agents))
    return (
        "defaults: {timezone: Europe/London, holidays: {country: GB}}\nteams:\n"
        f"  - name: Billing\n    team_leader: {{email: {PRIYA}, slack_id: U0PRIYA}}\n    agents: [{people}]\n"
    )


@pytest.mark.parametrize("joined", [1, 12])
def test_a_batch_reads_the_growing_tables_only_through_indexes_on_its_own_rows(
    tmp_path: Path, joined: int
) -> None:
    """Open cases by the hundred thousand and a backlog of messages queued behind Slack's rate limits
    must not slow an intake down: every lookup of a batch (its scores already stored? its agents' awaiting
    cases? this DM's update, this person's Home re-publish, already queued?) is, in SQLite's plan, an
    index search on the batch's own keys, never a scan, nor a search of every awaiting case or every
    pending message: for a batch joining one case, and one joining many."""
    db = Database(f"sqlite:///{tmp_path / 'plans.db'}")
    try:
        db.create_schema()
        import_org(db, NOW, team_of(joined + 1))
        agents = [f"agent{i}@example.com" for i in range(joined + 1)]
        # The cases the next batch joins (their DMs, each waiting to go, are what it looks up)
        batch_cost(db, [evaluation(id=f"i-{n}", agent={"email": e}) for n, e in enumerate(agents[:-1])])
        seen: list[tuple[str, Any]] = []

        def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            seen.append((statement, parameters))

        payloads = [evaluation(id=f"j-{n}", agent={"email": email}) for n, email in enumerate(agents)]
        with db.unit_of_work() as session:
            event.listen(db.engine, "before_cursor_execute", keep)
            try:
                results = intake_many(session, [Incoming(parse_evaluation(p), "test") for p in payloads], NOW)
            finally:
                event.remove(db.engine, "before_cursor_execute", keep)
            assert [r.status if r else None for r in results] == ["joined_case"] * joined + ["case_opened"]
            conn = session.connection()
            plans = {
                sql: [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
                for sql, params in seen
                if sql.lstrip().startswith("SELECT")
            }
    finally:
        db.dispose()
    steps = [step for plan in plans.values() for step in plan]
    assert any("uq_cases_one_awaiting_per_agent (agent_id=?)" in step for step in steps), plans
    assert any("ix_outbox_updates (updates_key=? AND status=?)" in step for step in steps), plans
    assert any("ix_outbox_pending_homes (person_id=?)" in step for step in steps), plans
    for sql, found in plans.items():
        for step in found:
            assert not any(step.startswith(f"SCAN {table}") for table in GROWING), (sql, found)
            assert "ix_cases_state" not in step and "ix_outbox_due" not in step, (sql, found)


def priya_id(db: Database) -> int:
    with db.read() as session:
        return person(session, PRIYA).id


def pending(db: Database) -> tuple[dict[int, int], dict[str, int]]:
    """Pending Home re-publishes per person, pending in-place updates per message."""
    with db.unit_of_work() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending")).all()
    homes: dict[int, int] = {}
    updates: dict[str, int] = {}
    for row in rows:
        if row.kind == "home" and row.person_id is not None:
            homes[row.person_id] = homes.get(row.person_id, 0) + 1
        if row.updates_key:
            updates[row.updates_key] = updates.get(row.updates_key, 0) + 1
    return homes, updates


def test_a_burst_of_scores_queues_one_refresh_per_message_and_per_home(db: Database) -> None:
    import_org(db, NOW)
    with db.unit_of_work() as session:
        person(session, PRIYA).slack_id = "U0PRIYA"  # the leader, whose Home shows the queue
    for n in range(8):
        score(db, NOW, id=f"burst-{n}")
        score(db, NOW, id=f"burst-tom-{n}", agent={"email": TOM})
        homes, updates = pending(db)
        assert homes and all(count == 1 for count in homes.values()), homes
        assert all(count == 1 for count in updates.values()), updates
    with db.unit_of_work() as session:
        ana = person(session, ANA)
        case = session.scalar(select(Case).where(Case.agent_id == ana.id))
        assert case is not None and len(case.evaluations) == 8


def test_homes_and_refreshes_see_what_their_own_transaction_changed(db: Database) -> None:
    """A person given a Slack id, and an update sent, earlier in the same transaction (not yet
    written out) count: the person's Home is queued, and the sent update no longer holds back a
    refresh."""
    import_org(db, NOW)
    first = score(db, NOW, id="own-1").case_id or 0
    key = f"case:{first}:leader_dm"
    with db.unit_of_work() as session:
        session.execute(update(OutboxMessage).values(status="sent"))  # as after a sweep: the DM went out
        enqueue_refreshes(session, {key: (first, "first", None)}, NOW)
    with db.unit_of_work() as session:
        ana = person(session, ANA)
        ana.slack_id = "U0ANA"
        for row in session.scalars(select(OutboxMessage).where(OutboxMessage.updates_key == key)):
            row.status = "sent"
        enqueue_refreshes(session, {key: (first, "again", None)}, NOW)
        enqueue_homes(session, [ana.id], NOW)
        ana_id = ana.id
    homes, updates = pending(db)
    assert homes.get(ana_id) == 1, homes
    assert updates.get(key) == 1, updates


def test_a_message_queued_again_after_its_row_was_deleted_in_the_same_transaction_is_kept(
    db: Database,
) -> None:
    """The bulk insert writes out what its transaction changed first (as `Session.execute` does): a
    deleted row's dedupe key is free again, and the new row is not skipped as a twin of it."""
    import_org(db, NOW)
    with db.unit_of_work() as session:
        enqueue_all(session, [outbox_row("again:1", "digest", now=NOW, payload={"n": 1})])
    with db.unit_of_work() as session:
        old = session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == "again:1")).one()
        session.delete(old)
        enqueue_all(session, [outbox_row("again:1", "digest", now=NOW, payload={"n": 2})])
    with db.read() as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key == "again:1")).all()
        assert [row.payload for row in rows] == [{"n": 2}]


def test_coalesced_refreshes_lose_nothing(stack: Stack) -> None:
    """After a burst, the leader's DM and Home show every score of the burst."""
    for n in range(6):
        status, body = stack.post_score(evaluation(id=f"ev-burst-{n}"))
        assert status == 202
        if n == 0:
            stack.sweep()  # the DM goes out; the rest of the burst updates it
    stack.sweep()
    dm = stack.message("U0PRIYA", "leader_dm")
    assert "6 scores for one conversation" in str(dm["blocks"])
    homes = [c for c in stack.standin.calls_to("views.publish") if c.args.get("user_id") == "U0PRIYA"]
    assert 1 <= len(homes) <= 2  # one per burst (plus the one the first sweep sent)
    assert "Ana Ruiz" in str(homes[-1].args["view"])
    assert "Suggested focus:* Acknowledges the customer" in str(dm["blocks"])


def test_a_joined_score_moves_the_suggested_focus(db: Database) -> None:
    """The focus of a joined case follows the new evidence (ranked again when shown)."""
    import_org(db, NOW)
    first = score(db, NOW, id="focus-1").case_id
    critical = evaluation(id="focus-2")["items"]
    critical[1]["score"] = 0  # identity not verified: critical, so it outranks everything
    score(db, NOW, id="focus-2", items=critical)
    from bot.coaching import ranked_picks, suggested

    with db.read() as session:
        case = session.get(Case, first)
        assert case is not None
        pick = suggested(case, ranked_picks(session, case))
        assert pick is not None and pick.key == "verify-identity"
    plan(db, first or 0, "priya.shah@example.com", NOW)


def test_scores_sent_at_once_commit_together_and_one_bad_one_spoils_none(any_stack: Stack) -> None:
    """Concurrent webhooks share transactions; each is answered after its own score is stored, a repeat
    is answered as one, and a score the domain refuses (landing in the future) changes nothing else."""
    import threading

    payloads = [evaluation(id=f"together-{n}") for n in range(12)]
    payloads += [evaluation(id=f"together-tom-{n}", agent={"email": TOM}) for n in range(12)]
    payloads.append(evaluation(id="together-0"))  # a repeat of the first
    payloads.append(evaluation(id="from-the-future", landed_at="2026-11-24T14:02:00Z"))
    answers: list[tuple[str, int, Any]] = []
    gate = threading.Barrier(len(payloads))

    def send(payload: dict[str, Any]) -> None:
        gate.wait()
        status, body = any_stack.post_score(payload)
        answers.append((payload["id"], status, body))

    threads = [threading.Thread(target=send, args=(p,)) for p in payloads]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    statuses = sorted(status for _, status, _ in answers)
    assert statuses.count(202) == 24 and statuses.count(422) == 1 and statuses.count(200) == 1
    firsts = {body["evaluation_id"] for ev_id, _, body in answers if ev_id == "together-0"}
    assert len(firsts) == 1  # the repeat names the same evaluation
    with any_stack.db.read() as session:
        cases = session.scalars(select(Case).where(Case.state == "awaiting_conversation")).all()
        assert sorted(len(c.evaluations) for c in cases) == [12, 12]
        stored = session.scalar(select(func.count()).select_from(Evaluation))
        assert stored == 24


def test_sweeps_woken_by_new_messages_leave_the_calendar_work_to_the_scheduled_tick(
    stack: Stack, monkeypatch: Any
) -> None:
    """A stream of scores wakes the sweeps again and again: the calendar's work (digest timers, coaching
    blocks, the calibration sample) runs once per interval, the outbox every time."""
    from scheduler import timer_sweep
    from scheduler.sweeps import Sweeps

    runs: list[str] = []
    real = timer_sweep.coaching_blocks.sweep
    monkeypatch.setattr(timer_sweep.coaching_blocks, "sweep", lambda *a: runs.append("blocks") or real(*a))
    sweeps = Sweeps(stack.services, calendar_every=3600)
    for n in range(3):
        assert stack.post_score(evaluation(id=f"stream-{n}"))[0] in (200, 202)
        sweeps.tick()
    assert runs == ["blocks"]
    assert stack.message("U0PRIYA", "leader_dm") is not None  # the outbox went on each time


MOST_FOR_A_CONVERSATION = 28  # what logging a conversation (the plan modal submitted) may cost


def test_logging_a_conversation_costs_the_same_statements_whatever_the_history(stack: Stack) -> None:
    give_history(stack.db, TOM, 300)
    costs = []
    for email, ev_id in ((ANA, "a-plan"), (TOM, "t-plan")):
        payload = evaluation(id=ev_id)
        payload["agent"] = {"email": email}
        status, body = stack.post_score(payload)
        assert status == 202, body
        stack.sweep()
        dm = stack.message("U0PRIYA", f"case:{body['case_id']}:leader_dm")
        view = stack.people.open_modal("U0PRIYA", stack.standin.dm_of("U0PRIYA"), dm, "open_plan")
        with statements(stack.db) as seen:
            assert stack.people.submit("U0PRIYA", view) == (200, None)
        costs.append(len([s for s in seen if not s.startswith("BEGIN")]))
    assert costs[0] == costs[1] <= MOST_FOR_A_CONVERSATION, costs


@pytest.fixture
def postgres_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    return make_database("postgres", tmp_path, request)  # dropped by its own finalizer


def refreshes_of(db: Database, key: str) -> int:
    with db.read() as session:
        return len(session.scalars(select(OutboxMessage).where(OutboxMessage.updates_key == key)).all())


def test_a_dm_still_to_go_out_gets_no_refresh_it_shows_the_change_when_it_goes(db: Database) -> None:
    """A score joining a case whose DM has not gone out queues no refresh: the DM renders the case as
    it is when it goes. Once the DM has been tried (it may be in Slack already) or sent, a joining
    score queues one."""
    import_org(db, NOW)
    first = score(db, NOW, id="w-1").case_id
    key = f"case:{first}:leader_dm"
    assert score(db, NOW, id="w-2").status == "joined_case"
    assert refreshes_of(db, key) == 0
    with db.unit_of_work() as session:  # as after a send whose answer was lost: retried later
        session.execute(update(OutboxMessage).where(OutboxMessage.dedupe_key == key).values(attempts=1))
    score(db, NOW, id="w-3")
    assert refreshes_of(db, key) == 1
    with db.unit_of_work() as session:
        session.execute(update(OutboxMessage).values(status="sent"))
    score(db, NOW, id="w-4")
    assert refreshes_of(db, key) == 2


@pytest.mark.postgres
def test_a_dm_a_sweeper_is_claiming_while_a_score_joins_gets_its_refresh(postgres_db: Database) -> None:
    """The DM is claimed, not yet committed, when a joining score looks: the score does not wait for
    the sweeper, and queues a refresh (the sweeper may render the case before the score commits)."""
    db = postgres_db
    import_org(db, NOW)
    first = score(db, NOW, id="c-1").case_id
    key = f"case:{first}:leader_dm"
    with db.unit_of_work() as sweeper:
        claimed = claim_outbox(sweeper, NOW, limit=100, postgres=True, owner="a-sweeper")
        assert sweeper.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)) in claimed
        assert score(db, NOW, id="c-2").status == "joined_case"
    assert refreshes_of(db, key) == 1


@pytest.mark.postgres
def test_a_sweeper_leaves_a_dm_alone_while_a_score_needing_no_refresh_commits(postgres_db: Database) -> None:
    """A joining score that found the DM still to go out keeps it until it commits: a sweeper claiming
    meanwhile passes it over, so the DM is rendered only once the joined score can be seen."""
    db = postgres_db
    import_org(db, NOW)
    first = score(db, NOW, id="s-1").case_id or 0
    key = f"case:{first}:leader_dm"
    with db.unit_of_work() as intake:
        enqueue_refreshes(intake, {key: (first, "joined", None)}, NOW)
        with db.unit_of_work() as sweeper:
            claimed = claim_outbox(sweeper, NOW, limit=100, postgres=True, owner="a-sweeper")
            dm = sweeper.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key))
            assert dm not in claimed
    assert refreshes_of(db, key) == 0
    with db.unit_of_work() as sweeper:
        assert dm in claim_outbox(sweeper, NOW, limit=100, postgres=True, owner="a-sweeper")
