"""The measures week by week (Monday to Sunday, UTC): the series the charts and `report --by week` use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures
from bot.charts import WeeklySeries
from bot.measures_data import Scope, compute
from storage.models import Team


def week_period(monday: date) -> measures.Period:
    return measures.Period(
        datetime.combine(monday, time(0), tzinfo=UTC),
        datetime.combine(monday + timedelta(weeks=1), time(0), tzinfo=UTC),
    )


def mondays_before(now: datetime, weeks: int) -> list[date]:
    """The Mondays of the last `weeks` whole weeks before the one `now` is in, oldest first."""
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=i) for i in range(weeks, 0, -1)]


def mondays_within(period: measures.Period) -> list[date]:
    """The Mondays of the weeks that overlap the period, oldest first."""
    start = period.start.astimezone(UTC).date()
    monday = start - timedelta(days=start.weekday())
    out = []
    while datetime.combine(monday, time(0), tzinfo=UTC) < period.end:
        out.append(monday)
        monday += timedelta(weeks=1)
    return out


def points(m: measures.Measures) -> float | None:
    """Behaviour change in percentage points: pass rate after the conversations − before them."""
    before, after = m.change_before, m.change_after
    if not before[1] or not after[1]:
        return None
    return (after[0] / after[1] - before[0] / before[1]) * 100


@dataclass(frozen=True)
class WeeklyFigures:
    weeks: list[date]
    teams: dict[str, list[measures.Measures]]

    @property
    def hit_rate(self) -> WeeklySeries:
        return WeeklySeries(
            self.weeks,
            {
                t: [None if m.hit_rate is None else m.hit_rate * 100 for m in ms]
                for t, ms in self.teams.items()
            },
        )

    @property
    def behaviour_change(self) -> WeeklySeries:
        return WeeklySeries(self.weeks, {t: [points(m) for m in ms] for t, ms in self.teams.items()})


def weekly_figures(
    session: Session, now: datetime, weeks: int = 8, teams_named: list[str] | None = None
) -> WeeklyFigures:
    """Each team's measures in each of the last `weeks` whole weeks."""
    teams = [
        t
        for t in session.scalars(select(Team).order_by(Team.name))
        if teams_named is None or t.name in teams_named
    ]
    mondays = mondays_before(now, weeks)
    return WeeklyFigures(
        mondays,
        {
            t.name: [
                compute(session, Scope(team_ids=(t.id,), label=t.name), week_period(d), now) for d in mondays
            ]
            for t in teams
        },
    )
