"""The weekly digest for leadership: Monday 09:00 in each recipient's time zone, via timers and the outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures, wording
from bot.measures_data import Scope, compute
from bot.roles import roles_of
from bot.slack import blocks as bk
from storage.models import Case, Person, TeamEscalation
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


def _week(week_of: date, back: int) -> measures.Period:
    start = week_of - timedelta(weeks=back)
    return measures.Period(
        datetime.combine(start, time(0), tzinfo=UTC),
        datetime.combine(start + timedelta(weeks=1), time(0), tzinfo=UTC),
    )


def digest_message(
    session: Session, person: Person, payload: dict[str, Any], now: datetime
) -> tuple[str, list[Any]]:
    week_of = date.fromisoformat(payload["week_of"])
    last, before = _week(week_of, 1), _week(week_of, 2)
    teams = roles_of(session, person).oversees
    out: list[dict[str, Any]] = [
        bk.header(f"Coaching from QA — week of {wording.short_date(last.start.date())}")
    ]
    changes = []
    for team in teams[:20]:
        scope = Scope(team_ids=(team.id,), label=team.name)
        m, p = compute(session, scope, last, now), compute(session, scope, before, now)
        breaches = list(
            session.scalars(
                select(Case).where(
                    Case.team_id == team.id, Case.breached_at >= last.start, Case.breached_at < last.end
                )
            )
        )
        names = ", ".join(c.agent.display for c in breaches[:10]) or "none"
        out.append(
            bk.section(
                f"*{wording.escape_mrkdwn(team.name)}* — {measures.figures_text(m)}"
                f"\nBreaches: {wording.escape_mrkdwn(names)}"
            )
        )
        changes.append((team.name, m, p))
    lead = measures.change_lead(changes)
    out.insert(1, bk.section(f"*{wording.escape_mrkdwn(lead)}*"))
    out.append(bk.context(f"{CHART_NOTE} _How these are counted:_ {measures.HOW_COUNTED}"))
    return f"Weekly coaching digest: {lead}", out
