"""The weekly digest's message: each overseen team's figures for last week, the change, the breaches."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures, wording
from bot.measures_data import Scope, compute
from bot.roles import roles_of
from bot.slack import blocks as bk
from storage.models import Case, Person


def _week(week_of: date, back: int) -> measures.Period:
    start = week_of - timedelta(weeks=back)
    return measures.Period(
        datetime.combine(start, time(0), tzinfo=UTC),
        datetime.combine(start + timedelta(weeks=1), time(0), tzinfo=UTC),
    )


def _change(now_value: float | None, before: float | None) -> str:
    if now_value is None or before is None:
        return ""
    points = round((now_value - before) * 100)
    return " (no change)" if points == 0 else f" ({points:+d} pts)"


def digest_message(
    session: Session, person: Person, payload: dict[str, Any], now: datetime
) -> tuple[str, list[Any]]:
    week_of = date.fromisoformat(payload["week_of"])
    last, before = _week(week_of, 1), _week(week_of, 2)
    teams = roles_of(session, person).oversees
    out: list[dict[str, Any]] = [
        bk.header(f"Coaching from QA — week of {wording.short_date(last.start.date())}")
    ]
    summary = []
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
                f"*{wording.escape_mrkdwn(team.name)}* — coached in the window {measures.pct(m.hit_rate)} "
                f"({m.coached_in_window}/{m.due}){_change(m.hit_rate, p.hit_rate)} · late {m.coached_late} · "
                f"overdue now {m.open_overdue} · reviews on time {measures.pct(m.review_rate)}"
                f"{_change(m.review_rate, p.review_rate)}\nBreaches: {wording.escape_mrkdwn(names)}"
            )
        )
        summary.append(f"{team.name} {measures.pct(m.hit_rate)}")
    out.append(bk.context("The chart below shows each team's hit rate over the last 8 weeks."))
    return f"Weekly coaching digest: {', '.join(summary)}", out
