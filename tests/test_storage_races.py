"""Two processes writing the same dedupe key at the same moment: one row, and no aborted transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import OutboxMessage, Timer
from storage.outbox import enqueue, schedule_timer

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def _race(db: Database, write: Callable[[Session], object]) -> list[BaseException]:
    """The first writer holds its uncommitted row while a second one writes the same key."""
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with db.unit_of_work() as s:
                write(s)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    with db.unit_of_work() as s:
        write(s)
        s.flush()
        other = threading.Thread(target=second)
        other.start()
        time.sleep(0.3)  # the second writer is now waiting on the first one's row (or lock)
    other.join(timeout=30)
    return errors


def test_the_same_timer_scheduled_at_once_by_two_processes(db: Database) -> None:
    errors = _race(db, lambda s: schedule_timer(s, "case:1:escalate:1", "escalate", case_id=None, due_at=NOW))
    assert errors == []
    with db.unit_of_work() as s:
        assert s.query(Timer).count() == 1


def test_the_same_message_queued_at_once_by_two_processes(db: Database) -> None:
    errors = _race(db, lambda s: enqueue(s, "case:1:leader_dm", "leader_case", now=NOW))
    assert errors == []
    with db.unit_of_work() as s:
        assert s.query(OutboxMessage).count() == 1
