"""Group commit for the QA webhook: one writer thread stores scores; those that arrive while a
transaction commits, or within a few milliseconds of a batch's first score, go together. The common
ones are written in bulk (`bot.intake_batch`); the rest one by one, each in a savepoint of its own.

Every request still gets its answer only after its score is committed, and one bad score never undoes
another: a failing one rolls back its savepoint (and is retried alone when the database refused it, e.g.
another process stored the same score at the same moment). When the database refuses the bulk part, its
scores go one by one too."""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from bot import coaching
from bot.app.services import Services
from bot.evaluation_input import EvaluationInput
from bot.intake_batch import Incoming, intake_many
from storage.logcontext import REQUEST_ID

log = logging.getLogger("coachloop.ingest")
MAX_BATCH = 200
# A batch waits this long after its first score for the scores sent at about the same moment: a
# transaction's fixed cost (its statements, its commit) dwarfs a score's, so one batch of sixteen costs
# little more than one of one (measured on SQLite: 16.5 ms against 11.9 ms under load).
GATHER_SECONDS = 0.003
IDLE_SECONDS = 5.0  # the writer thread ends when idle this long; the next score starts it again


@dataclass
class _Pending:
    data: EvaluationInput
    future: Future[coaching.IntakeResult] = field(default_factory=Future)
    # The request's context (its request id): what the score queues carries it on to delivery.
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class IntakeWriter:
    def __init__(
        self, services: Services, *, max_batch: int = MAX_BATCH, gather: float = GATHER_SECONDS
    ) -> None:
        self.services, self.max_batch, self.gather = services, max_batch, gather
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, data: EvaluationInput) -> Future[coaching.IntakeResult]:
        pending = _Pending(data)
        self._queue.put(pending)
        with self._guard:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="intake-writer", daemon=True)
                self._thread.start()
        return pending.future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._guard:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            until = time.monotonic() + self.gather
            while len(batch) < self.max_batch:
                left = until - time.monotonic()
                try:
                    batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        done: list[tuple[_Pending, coaching.IntakeResult]] = []
        alone: list[_Pending] = []
        try:
            with self.services.db.unit_of_work() as session:
                now = self.services.clock.now()
                stored = self._bulk(session, batch, now)
                session.expunge_all()
                for pending, result in zip(batch, stored, strict=True):
                    if result is not None:
                        done.append((pending, result))
                        continue
                    try:
                        with session.begin_nested():
                            result = pending.context.run(self._intake, session, pending.data, now)
                            done.append((pending, result))
                    except (IntegrityError, OperationalError):
                        # Refused by the database (a twin stored elsewhere, a deadlock with another
                        # replica's batch): its savepoint is undone; it is stored again on its own.
                        alone.append(pending)
                    except Exception as exc:  # noqa: BLE001 - this score's answer; the others go on
                        pending.future.set_exception(exc)
                    # Written: forget its objects, so each flush costs the same however long the batch.
                    session.expunge_all()
        except Exception:  # noqa: BLE001 - the commit failed: store each score on its own
            log.exception("a batch of %d scores did not commit; storing them one by one", len(batch))
            alone = [p for p, _ in done] + alone
            done = []
        for pending, result in done:
            pending.future.set_result(result)
        for pending in alone:
            self._write_alone(pending)

    def _write_alone(self, pending: _Pending) -> None:
        for attempt in range(3):
            try:
                with self.services.db.unit_of_work() as session:
                    now = self.services.clock.now()
                    result = pending.context.run(self._intake, session, pending.data, now)
                pending.future.set_result(result)
                return
            except (IntegrityError, OperationalError) as exc:
                # The same score arrived twice at once (the other one is stored: answer as a repeat),
                # or another replica's transaction deadlocked with this one: try again.
                if attempt == 2:
                    pending.future.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - reported to the request that sent it
                pending.future.set_exception(exc)
                return

    @staticmethod
    def _bulk(session: Session, batch: list[_Pending], now: datetime) -> list[coaching.IntakeResult | None]:
        scores = [Incoming(p.data, _actor(p.data), p.context.run(REQUEST_ID.get)) for p in batch]
        try:
            with session.begin_nested():
                return intake_many(session, scores, now)
        except (IntegrityError, OperationalError):  # e.g. another replica stored one of them just now
            return [None] * len(batch)

    @staticmethod
    def _intake(session: Session, data: EvaluationInput, now: datetime) -> coaching.IntakeResult:
        return coaching.intake(session, data, now, _actor(data))


def _actor(data: EvaluationInput) -> str:
    return f"webhook:{data.source}"
