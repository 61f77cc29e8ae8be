"""`coachloop report`: the same measures Home and the digest show, as a table, CSV or one HTML file."""

from __future__ import annotations

import base64
import csv
import html
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures
from bot.measures_data import Scope, compute
from storage.models import Team

COLUMNS = [
    ("scope", "Team"),
    ("scores_landed", "Scores"),
    ("cases_opened", "Cases"),
    ("hit_rate", "In window"),
    ("coached_late", "Late"),
    ("waived", "Waived"),
    ("open_overdue", "Overdue now"),
    ("time_to_coach", "Days to coach (median/p90)"),
    ("ack_rate", "Acknowledged"),
    ("discussions", "Discussions"),
    ("review_rate", "Reviews on time"),
    ("outcomes", "Outcomes yes/partly/no"),
    ("change", "Coached criteria passed before → after"),
    ("proposed", "Agent-proposed"),
    ("mix", "Performance/developmental"),
    ("one_kind", "Leaders with one kind only (8 weeks)"),
]


@dataclass(frozen=True)
class ReportRow:
    scope: str
    m: measures.Measures

    def cells(self) -> dict[str, str]:
        m = self.m
        days = (
            "–" if m.time_to_coach_median is None else f"{m.time_to_coach_median:g}/{m.time_to_coach_p90:g}"
        )
        kinds: Counter[str] = sum(m.mix.values(), start=Counter())
        return {
            "scope": self.scope,
            "scores_landed": str(m.scores_landed),
            "cases_opened": str(m.cases_opened),
            "hit_rate": f"{measures.pct(m.hit_rate)} ({m.coached_in_window}/{m.due})",
            "coached_late": str(m.coached_late),
            "waived": str(m.waived)
            + (
                " (" + "; ".join(f"{reason}: {n}" for reason, n in m.waived_reasons.most_common(3)) + ")"
                if m.waived
                else ""
            ),
            "open_overdue": str(m.open_overdue),
            "time_to_coach": days,
            "ack_rate": f"{measures.pct(m.ack_rate)} ({m.acknowledged}/{m.agreed})",
            "discussions": str(m.discussions),
            "review_rate": f"{measures.pct(m.review_rate)} ({m.reviews_on_time}/{m.reviews_due})",
            "outcomes": "/".join(str(m.outcomes.get(k, 0)) for k in ("yes", "partly", "no")),
            "change": f"{measures.ratio(*m.change_before)} → {measures.ratio(*m.change_after)}",
            "proposed": f"{measures.pct(m.proposed_share)} ({m.proposed}/{m.agreed})",
            "mix": f"{kinds.get('performance', 0)}/{kinds.get('developmental', 0)}",
            "one_kind": ", ".join(m.one_kind_leaders) or "none",
        }


def build(
    session: Session,
    period: measures.Period,
    now: datetime,
    team: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ReportRow]:
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    if team is not None:
        teams = [t for t in teams if t.name == team]
        if not teams:
            raise ValueError(f"no team named {team!r}")
    rows = []
    for t in teams:
        progress(t.name)
        rows.append(ReportRow(t.name, compute(session, Scope(team_ids=(t.id,), label=t.name), period, now)))
    if team is None and len(teams) > 1:
        progress("all teams")
        rows.append(ReportRow("All teams", compute(session, Scope(), period, now)))
    return rows


def weekly_hit_rates(
    session: Session, now: datetime, weeks: int = 8, teams_named: list[str] | None = None
) -> dict[str, list[tuple[date, float | None]]]:
    """Each team's hit rate in each of the last `weeks` whole weeks (Monday to Sunday, UTC)."""
    monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    teams = [
        t
        for t in session.scalars(select(Team).order_by(Team.name))
        if teams_named is None or t.name in teams_named
    ]
    series: dict[str, list[tuple[date, float | None]]] = {t.name: [] for t in teams}
    for i in range(weeks, 0, -1):
        start = monday - timedelta(weeks=i)
        period = measures.Period(
            datetime.combine(start, time(0), tzinfo=UTC),
            datetime.combine(start + timedelta(weeks=1), time(0), tzinfo=UTC),
        )
        for t in teams:
            series[t.name].append((start, compute(session, Scope(team_ids=(t.id,)), period, now).hit_rate))
    return series


def as_csv(rows: list[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in COLUMNS])
    for row in rows:
        cells = row.cells()
        writer.writerow([cells[key] for key, _ in COLUMNS])
    return out.getvalue()


def as_html(rows: list[ReportRow], period: measures.Period, chart_png: bytes) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(row.cells()[key])}</td>" for key, _ in COLUMNS) + "</tr>"
        for row in rows
    )
    image = base64.b64encode(chart_png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coachloop report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}}
td:first-child,th:first-child{{text-align:left}}</style>
</head><body>
<h1>Coaching from QA: {period.start:%d %b %Y} – {(period.end - timedelta(seconds=1)):%d %b %Y}</h1>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Hit rate per team, last 8 weeks</h2>
<img alt="Hit rate per team over the last 8 weeks, with the target line" src="data:image/png;base64,{image}">
<p>Definitions: see <code>bot/measures.py</code>; App Home and the weekly digest show the same figures.</p>
</body></html>
"""
