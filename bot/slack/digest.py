"""The weekly digest's message: each overseen team's figures for last week, the change, the breaches."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures, wording
from bot.measures_data import Scope, compute
from bot.practice_data import leader_practice
from bot.roles import roles_of
from bot.slack import blocks as bk
from storage.models import Case, Person


def _week(week_of: date, back: int) -> measures.Period:
    start = week_of - timedelta(weeks=back)
    return measures.Period(
        datetime.combine(start, time(0), tzinfo=UTC),
        datetime.combine(start + timedelta(weeks=1), time(0), tzinfo=UTC),
    )


CHART_NOTE = "The chart below shows each team's hit rate over the last 8 weeks, when there is one to draw."


def digest_message(
    session: Session, person: Person, payload: dict[str, Any], now: datetime
) -> tuple[str, list[Any]]:
    """Leads with the change that matters most, then each overseen team's figures and breaches."""
    week_of = date.fromisoformat(payload["week_of"])
    last, before = _week(week_of, 1), _week(week_of, 2)
    teams = roles_of(session, person).oversees
    out: list[Any] = [bk.header(f"Coaching from QA — week of {wording.short_date(last.start.date())}")]
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
    practice = leader_practice(session, [t.id for t in teams[:20]], last)
    if practice:
        lines = [f"• *{bk.escaped(n, 100)}*: {measures.practice_line(lp)}" for n, lp in practice.items()]
        out.append(bk.section("*Coaching practice per leader, last week*\n" + "\n".join(lines[:15])))
    out.append(bk.context(f"{CHART_NOTE} _How these are counted:_ {measures.HOW_COUNTED}"))
    return f"Weekly coaching digest: {lead}", out
