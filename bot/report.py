"""`coachloop report`: the same measures Home and the digest show, as a table, CSV or one HTML page."""

from __future__ import annotations

import csv
import io
import textwrap
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import measures
from bot.measures_data import Scope, compute
from bot.measures_weekly import mondays_within, points, week_period
from bot.practice_data import leader_practice
from storage.models import Team

COLUMNS = [
    ("scope", "Team"),
    ("scores_landed", "Scores"),
    ("cases_opened", "Cases"),
    ("hit_rate", "Coached in the window"),
    ("coached_late", "Coached late"),
    ("waived", "Waived"),
    ("open_overdue", "Overdue now"),
    ("time_to_coach", "Days to coach (median/p90)"),
    ("ack_rate", "Acknowledged"),
    ("discussions", "Discussions"),
    ("review_rate", "Reviews on time"),
    ("outcomes", "Outcomes yes/partly/no"),
    ("change", "Coached criteria passed before → after"),
    ("proposed", "Agent-proposed"),
    ("mix", "Performance / developmental"),
    ("one_kind", "Leaders with one kind only (8 weeks)"),
]


def _of(part: int, whole: int) -> str:
    return f"{part} of {whole}"


@dataclass(frozen=True)
class ReportRow:
    scope: str
    m: measures.Measures

    def cells(self) -> dict[str, str]:
        """Each figure in words, for the terminal table and the HTML page."""
        m = self.m
        days = (
            "–" if m.time_to_coach_median is None else f"{m.time_to_coach_median:g}/{m.time_to_coach_p90:g}"
        )
        kinds = self.kinds
        reasons = "; ".join(
            reason + (f" ({n})" if n > 1 else "") for reason, n in m.waived_reasons.most_common(3)
        )
        return {
            "scope": self.scope,
            "scores_landed": str(m.scores_landed),
            "cases_opened": str(m.cases_opened),
            "hit_rate": f"{measures.pct(m.hit_rate)} ({_of(m.coached_in_window, m.decided)} decided)",
            "coached_late": str(m.coached_late),
            "waived": str(m.waived) + (f" — {reasons}" if m.waived else ""),
            "open_overdue": str(m.open_overdue),
            "time_to_coach": days,
            "ack_rate": f"{measures.pct(m.ack_rate)} ({_of(m.acknowledged, m.agreed)})",
            "discussions": str(m.discussions),
            "review_rate": f"{measures.pct(m.review_rate)} ({_of(m.reviews_on_time, m.reviews_decided)})",
            "outcomes": "/".join(str(m.outcomes.get(k, 0)) for k in ("yes", "partly", "no")),
            "change": f"{measures.ratio(*m.change_before)} → {measures.ratio(*m.change_after)}",
            "proposed": f"{measures.pct(m.proposed_share)} ({_of(m.proposed, m.agreed)})",
            "mix": f"{kinds.get('performance', 0)}/{kinds.get('developmental', 0)}",
            "one_kind": ", ".join(m.one_kind_leaders) or "none",
        }

    @property
    def kinds(self) -> Counter[str]:
        return sum(self.m.mix.values(), start=Counter())


def build(
    session: Session,
    period: measures.Period,
    now: datetime,
    team: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ReportRow]:
    """One row per team (and one for all teams when there are several)."""
    teams = _teams(session, team)
    rows = []
    for t in teams:
        progress(t.name)
        rows.append(ReportRow(t.name, compute(session, Scope(team_ids=(t.id,), label=t.name), period, now)))
    if team is None and len(teams) > 1:
        progress("all teams")
        rows.append(ReportRow("All teams", compute(session, Scope(), period, now)))
    return rows


PRACTICE_COLUMNS = [
    ("leader", "Leader"),
    ("squeezed", "Blocks squeezed out"),
    ("structure", "Plans meeting the structure"),
    ("agreement", "Rater agreement"),
    ("proposed", "Actions the agent proposed"),
]


def practice_cells(lp: measures.LeaderPractice) -> dict[str, str]:
    """One leader's coaching practice in words (definitions: squeezed_out ... leader_proposed)."""
    return {
        "leader": lp.leader,
        "squeezed": _of(lp.squeezed, lp.blocks),
        "structure": f"{measures.pct(lp.structure_share)} ({_of(lp.plans_meeting, lp.plans_rated)} rated)",
        "agreement": measures.pct(lp.rater_agreement),
        "proposed": f"{measures.pct(lp.proposed_share)} ({_of(lp.proposed, lp.agreed)})",
    }


def practice(
    session: Session, period: measures.Period, team: str | None = None
) -> list[measures.LeaderPractice]:
    """Each leader's coaching practice in the period, for the teams of the report."""
    return list(leader_practice(session, [t.id for t in _teams(session, team)], period).values())


def _teams(session: Session, team: str | None) -> list[Team]:
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    if team is not None:
        teams = [t for t in teams if t.name == team]
        if not teams:
            raise ValueError(f"no team named {team!r}")
    return teams


# --- CSV: numbers only, one stable snake_case header -------------------------------------------------

CSV_FIELDS = [
    "team",
    "period_start",
    "period_end",
    "scores_landed",
    "cases_opened",
    "cases_decided",
    "coached_in_window",
    "missed_window",
    "hit_rate",
    "coached_late",
    "waived",
    "open_overdue",
    "time_to_coach_median_days",
    "time_to_coach_p90_days",
    "conversations",
    "acknowledged",
    "ack_rate",
    "ack_median_hours",
    "discussions",
    "reviews_decided",
    "reviews_on_time",
    "review_rate",
    "outcome_yes",
    "outcome_partly",
    "outcome_no",
    "criteria_before_passed",
    "criteria_before_scored",
    "criteria_after_passed",
    "criteria_after_scored",
    "behaviour_change_points",
    "agent_proposed",
    "agent_proposed_share",
    "performance_conversations",
    "developmental_conversations",
    "one_kind_leaders",
]

Number = int | float | str


def _num(value: float | None, places: int = 4) -> Number:
    """A decimal for a spreadsheet, or an empty cell when there is nothing to divide."""
    return "" if value is None else round(value, places)


def csv_record(
    scope: str, period: measures.Period, m: measures.Measures, *, with_overdue: bool = True
) -> dict[str, Number]:
    kinds: Counter[str] = sum(m.mix.values(), start=Counter())
    before, after = m.change_before, m.change_after
    return {
        "team": scope,
        "period_start": period.start.date().isoformat(),
        "period_end": last_day(period).isoformat(),
        "scores_landed": m.scores_landed,
        "cases_opened": m.cases_opened,
        "cases_decided": m.decided,
        "coached_in_window": m.coached_in_window,
        "missed_window": m.missed,
        "hit_rate": _num(m.hit_rate),
        "coached_late": m.coached_late,
        "waived": m.waived,
        "open_overdue": m.open_overdue if with_overdue else "",
        "time_to_coach_median_days": _num(m.time_to_coach_median, 1),
        "time_to_coach_p90_days": _num(m.time_to_coach_p90, 1),
        "conversations": m.agreed,
        "acknowledged": m.acknowledged,
        "ack_rate": _num(m.ack_rate),
        "ack_median_hours": _num(m.ack_hours_median, 1),
        "discussions": m.discussions,
        "reviews_decided": m.reviews_decided,
        "reviews_on_time": m.reviews_on_time,
        "review_rate": _num(m.review_rate),
        "outcome_yes": m.outcomes.get("yes", 0),
        "outcome_partly": m.outcomes.get("partly", 0),
        "outcome_no": m.outcomes.get("no", 0),
        "criteria_before_passed": before[0],
        "criteria_before_scored": before[1],
        "criteria_after_passed": after[0],
        "criteria_after_scored": after[1],
        "behaviour_change_points": _num(points(m), 1),
        "agent_proposed": m.proposed,
        "agent_proposed_share": _num(m.proposed_share),
        "performance_conversations": kinds.get("performance", 0),
        "developmental_conversations": kinds.get("developmental", 0),
        "one_kind_leaders": len(m.one_kind_leaders),
    }


def last_day(period: measures.Period) -> date:
    """The last day a period covers (periods end just before `end`)."""
    return (period.end - timedelta(microseconds=1)).date()


def _write_csv(records: list[dict[str, Number]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def as_csv(rows: list[ReportRow], period: measures.Period) -> str:
    return _write_csv([csv_record(r.scope, period, r.m) for r in rows])


def weekly_csv(
    session: Session,
    period: measures.Period,
    now: datetime,
    team: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """One row per team per week (Monday to Sunday, UTC) of the period; the first and last weeks are
    cut to the period. "Overdue now" is not a weekly figure: its cells are empty."""
    records = []
    for monday in mondays_within(period):
        week = week_period(monday)
        part = measures.Period(max(week.start, period.start), min(week.end, period.end))
        progress(f"week of {monday.isoformat()}")
        for t in _teams(session, team):
            m = compute(session, Scope(team_ids=(t.id,), label=t.name), part, now)
            records.append(csv_record(t.name, part, m, with_overdue=False))
    return _write_csv(records)


def definitions_text(width: int = 88) -> str:
    """Every definition in plain words, for `coachloop report --definitions`."""
    out = ["How coachloop counts its figures", ""]
    for d in measures.DEFINITIONS:
        out.append(d.term)
        out += textwrap.wrap(d.text, width=width, initial_indent="  ", subsequent_indent="  ")
        out.append("")
    return "\n".join(out)


def render(
    session: Session,
    period: measures.Period,
    now: datetime,
    fmt: str,
    *,
    team: str | None = None,
    by: str = "period",
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[str, list[ReportRow]]:
    """The report's text in `fmt` ("csv" or "html"; "" for "table") and its rows."""
    if fmt == "csv" and by == "week":
        return weekly_csv(session, period, now, team, progress), []
    rows = build(session, period, now, team, progress)
    if fmt == "csv":
        return as_csv(rows, period), rows
    if fmt == "html":
        from bot import report_html
        from bot.measures_weekly import weekly_figures

        progress("the weekly charts")
        weekly = weekly_figures(session, now, teams_named=[team] if team else None)
        leaders = practice(session, period, team)
        return report_html.page(rows, period, weekly, now, leaders), rows
    return "", rows
