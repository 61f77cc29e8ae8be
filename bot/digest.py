"""The weekly digest for leadership: Monday 09:00 in each recipient's time zone, via timers and the outbox.

What it says is rendered in bot/slack/digest.py."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.roles import roles_of
from storage.models import Person, TeamEscalation
from storage.outbox import enqueue, schedule_timer

DIGEST_TIME = time(9, 0)
CHART_NOTE = "The chart below shows each team's hit rate over the last 8 weeks, when there is one to draw."


def _zone(session: Session, person: Person) -> str:
    if person.timezone:
        return person.timezone
    teams = roles_of(session, person).oversees
    return teams[0].timezone if teams else "UTC"


def next_monday_morning(now: datetime, timezone: str) -> datetime:
    """The next Monday 09:00 in `timezone` at or after `now`, in UTC."""
    tz = ZoneInfo(timezone)
    local = now.astimezone(tz)
    day = local.date() + timedelta(days=(7 - local.weekday()) % 7)
    candidate = datetime.combine(day, DIGEST_TIME, tzinfo=tz)
    if candidate < local:
        candidate = datetime.combine(day + timedelta(weeks=1), DIGEST_TIME, tzinfo=tz)
    return candidate.astimezone(UTC)


def ensure_timers(session: Session, now: datetime) -> None:
    """One digest timer per leadership recipient for the coming Monday (idempotent by its key)."""
    recipients = session.scalars(
        select(Person).where(Person.id.in_(select(TeamEscalation.person_id)), Person.slack_id.is_not(None))
    )
    for person in recipients:
        zone = _zone(session, person)
        due = next_monday_morning(now, zone)
        week = due.astimezone(ZoneInfo(zone)).date()
        schedule_timer(session, f"digest:{person.id}:{week.isoformat()}", "digest", case_id=None, due_at=due)


def fire(session: Session, timer_key: str, now: datetime) -> None:
    _, person_id, week = timer_key.split(":")
    payload = {"week_of": week}
    enqueue(
        session, f"digest:{person_id}:{week}", "digest", now=now, person_id=int(person_id), payload=payload
    )
    enqueue(
        session,
        f"digest:{person_id}:{week}:chart",
        "digest_chart",
        now=now,
        person_id=int(person_id),
        payload=payload,
    )
