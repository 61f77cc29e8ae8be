"""APScheduler ticks the sweeps; the database holds every piece of state."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from bot.app.services import Services
from scheduler.sweeps import Sweeps

JOB_ID = "sweeps"


def start_scheduler(
    services: Services, *, interval: float = 30.0, jitter: float = 5.0
) -> BackgroundScheduler:
    sweeps = Sweeps(services, calendar_every=interval)
    scheduler = BackgroundScheduler(
        timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    scheduler.add_job(
        sweeps.tick,
        "interval",
        seconds=interval,
        jitter=min(jitter, interval / 6),
        id=JOB_ID,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()

    def wake() -> None:
        if sweeps.mark_new_work():
            return
        with suppress(JobLookupError):  # the scheduler is shutting down
            scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    services.wake_sweeps = wake
    return scheduler
