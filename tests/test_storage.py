"""Storage on SQLite and PostgreSQL: UTC round trips, dedupe keys, and claims that never overlap."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from storage.db import Database
from storage.models import OutboxMessage, Person, Timer
from storage.outbox import claim_outbox, claim_timers, enqueue, schedule_timer

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_times_come_back_as_utc(db: Database) -> None:
    with db.unit_of_work() as s:
        enqueue(s, "k1", "leader_case", now=NOW, due_at=NOW.astimezone().replace(microsecond=5))
    with db.unit_of_work() as s:
        row = s.query(OutboxMessage).one()
        assert row.due_at.tzinfo == UTC and row.due_at == NOW.replace(microsecond=5)


def test_naive_times_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive"), db.unit_of_work() as s:
        enqueue(s, "k1", "leader_case", now=NOW.replace(tzinfo=None))
    with db.unit_of_work() as s:
        assert s.query(OutboxMessage).count() == 0


def test_dedupe_keys_are_unique(db: Database) -> None:
    with db.unit_of_work() as s:
        assert enqueue(s, "case:1:x", "leader_case", now=NOW) is not None
        s.flush()
        assert enqueue(s, "case:1:x", "leader_case", now=NOW) is None
    with pytest.raises(IntegrityError), db.unit_of_work() as s:
        s.add(OutboxMessage(dedupe_key="case:1:x", kind="x", due_at=NOW, created_at=NOW, payload={}))


def test_claims_take_due_rows_once_and_reclaim_expired_leases(db: Database) -> None:
    with db.unit_of_work() as s:
        for i in range(5):
            enqueue(s, f"k{i}", "leader_case", now=NOW, due_at=NOW + timedelta(minutes=i))
    postgres = not db.is_sqlite
    with db.unit_of_work() as s:
        first = claim_outbox(s, NOW + timedelta(minutes=2), limit=10, postgres=postgres, owner="first")
    assert len(first) == 3
    with db.unit_of_work() as s:
        assert claim_outbox(s, NOW + timedelta(minutes=2), limit=10, postgres=postgres) == []
    with db.unit_of_work() as s:
        again = claim_outbox(s, NOW + timedelta(minutes=10), limit=10, postgres=postgres, owner="second")
    assert sorted(again) == sorted(set(range(1, 6)))  # leases expired after 2 minutes, and 2 new rows
    with db.unit_of_work() as s:
        taken = s.query(OutboxMessage).filter(OutboxMessage.id.in_(first))
        assert {r.claimed_by for r in taken} == {"second"}


def test_concurrent_claims_never_overlap(db: Database) -> None:
    with db.unit_of_work() as s:
        for i in range(200):
            enqueue(s, f"k{i}", "leader_case", now=NOW)
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def worker() -> None:
        mine: list[int] = []
        while True:
            with db.unit_of_work() as s:
                ids = claim_outbox(s, NOW, limit=7, postgres=not db.is_sqlite)
            if not ids:
                break
            mine += ids
        with lock:
            claimed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for mine in claimed for i in mine]
    assert len(every) == 200 and len(set(every)) == 200


def test_timer_claims_skip_locked_rows(db: Database) -> None:
    with db.unit_of_work() as s:
        for i in range(3):
            schedule_timer(s, f"t{i}", "escalate", case_id=None, due_at=NOW)
        schedule_timer(s, "t0", "escalate", case_id=None, due_at=NOW + timedelta(days=1))  # a repeat: ignored
    with db.unit_of_work() as s:
        assert s.query(Timer).count() == 3
        due = claim_timers(s, NOW, limit=10, postgres=not db.is_sqlite)
        assert [t.dedupe_key for t in due] == ["t0", "t1", "t2"]


def test_person_emails_are_unique(db: Database) -> None:
    with db.unit_of_work() as s:
        s.add(Person(email="a@example.com", name="A"))
    with pytest.raises(IntegrityError), db.unit_of_work() as s:
        s.add(Person(email="a@example.com", name="B"))
