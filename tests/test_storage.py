"""Storage on SQLite and PostgreSQL: UTC round trips, dedupe keys, claims that never overlap, and stored
payloads that match their content hash."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot import coaching
from bot.evaluation_input import parse_evaluation
from bot.importing.backfill import history_rows, insert_history
from bot.intake_batch import Incoming, intake_many
from storage.db import Database
from storage.models import OutboxMessage, Person, Timer
from storage.outbox import claim_outbox, claim_timers, enqueue, schedule_timer
from tests.payloads import evaluation
from tests.scenario import ANA, TOM, import_org, person

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


def test_a_payload_is_stored_as_the_text_its_content_hash_digests(db: Database) -> None:
    """One by one, in bulk or imported as history, a score's payload is stored as the sorted-key JSON
    text that its `content_hash` digests: the hash can be checked against the stored row itself."""
    import_org(db, NOW)
    sent = {}
    for n, email in enumerate((ANA, TOM, ANA)):
        payload = evaluation(id=f"ev-{n}", agent={"email": email, "name": "Zoë Ångström"})
        payload["items"][0]["comment"] = "Très bien — «merci» 👍"
        sent[payload["id"]] = payload
    first, second, history = (parse_evaluation(p) for p in sent.values())
    with db.unit_of_work() as s:
        coaching.intake(s, first, NOW, "test")
    with db.unit_of_work() as s:
        assert intake_many(s, [Incoming(second, "test")], NOW)[0] is not None
    with db.unit_of_work() as s:
        agents = {ANA: person(s, ANA).id}
        insert_history(s, [history], history_rows([history], agents, NOW, s.get_bind().dialect))
    with db.unit_of_work() as s:
        stored = s.execute(text("SELECT external_id, CAST(raw AS TEXT), content_hash FROM evaluations")).all()
    assert sorted(ext for ext, _, _ in stored) == sorted(sent)
    for ext, raw, content_hash in stored:
        assert raw == json.dumps(sent[ext], sort_keys=True)
        assert hashlib.sha256(raw.encode()).hexdigest() == content_hash
