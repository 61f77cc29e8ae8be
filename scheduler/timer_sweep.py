"""Fires due timers: each is re-checked against its case and queues what it needs, in one transaction."""

from __future__ import annotations

from bot import calibration, coaching_blocks, digest, followup
from bot.clock import Clock
from bot.metrics import TIMERS
from storage import logcontext
from storage.db import Database
from storage.outbox import claim_timers


class TimerSweep:
    def __init__(self, db: Database, clock: Clock, *, batch: int = 200) -> None:
        self.db, self.clock, self.batch = db, clock, batch

    def run_once(self, *, calendar: bool = True) -> int:
        """Fire the due timers; with `calendar`, first the work the calendar alone makes due (the
        digest's timers, coaching blocks starting or ending, the week's calibration sample)."""
        now = self.clock.now()
        if calendar:
            with self.db.unit_of_work() as session:
                digest.ensure_timers(session, now)
            with self.db.unit_of_work() as session:
                coaching_blocks.sweep(session, now)
            with self.db.unit_of_work() as session:
                calibration.sample(session, now)
        fired = 0
        while True:
            with self.db.unit_of_work() as session:
                due = claim_timers(session, now, limit=self.batch, postgres=not self.db.is_sqlite)
                batch = followup.EscalationBatch()
                for timer in due:
                    with logcontext.bound(case_id=timer.case_id):
                        followup.fire(session, timer, now, batch)
                    timer.status, timer.fired_at = "done", now
                    TIMERS.labels(timer.kind).inc()
                batch.flush(session, now)
                fired += len(due)
            if len(due) < self.batch:
                return fired
