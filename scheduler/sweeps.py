"""All sweeps, run in order: timers first (they queue messages), then the outbox."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from bot.app.services import Services
from bot.metrics import SWEEP_SECONDS
from scheduler.delivery import OutboxSweep, SweepResult
from scheduler.timer_sweep import TimerSweep


@dataclass
class SweepReport:
    timers_fired: int
    outbox: SweepResult

    def summary(self) -> str:
        o = self.outbox
        return (
            f"timers fired: {self.timers_fired}; messages sent: {o.sent}, updated-skipped: {o.skipped}, "
            f"retrying: {o.retried}, failed: {o.failed}, recovered: {o.recovered}"
        )


class Sweeps:
    """`calendar_every`: how often (seconds) a scheduled tick also does the calendar's work; a tick woken
    by newly queued messages does it no more often than that, so a stream of scores does not repeat it."""

    def __init__(self, services: Services, *, calendar_every: float = 0.0) -> None:
        self.timers = TimerSweep(services.db, services.clock)
        self.outbox = OutboxSweep(services.db, services.slack, services.clock)
        self.calendar_every = calendar_every
        self._calendar_at = float("-inf")
        self._again = threading.Event()
        self._running = threading.Lock()

    def run_once(self, *, calendar: bool = True) -> SweepReport:
        with self._running:
            start = time.perf_counter()
            fired = self.timers.run_once(calendar=calendar)
            SWEEP_SECONDS.labels("timers").observe(time.perf_counter() - start)
            start = time.perf_counter()
            result = self.outbox.drain()
            SWEEP_SECONDS.labels("outbox").observe(time.perf_counter() - start)
            return SweepReport(fired, result)

    def tick(self) -> None:
        """One scheduled run; runs again at once if new work was queued while it ran."""
        while True:
            self._again.clear()
            calendar = time.monotonic() - self._calendar_at >= self.calendar_every
            if calendar:
                self._calendar_at = time.monotonic()
            self.run_once(calendar=calendar)
            if not self._again.is_set():
                return

    def mark_new_work(self) -> bool:
        """Note that work was queued; True when a sweep is running now and will pick it up."""
        self._again.set()
        return self._running.locked()
