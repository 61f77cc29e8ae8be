"""The report as one self-contained HTML page: headline per team, weekly charts, every figure, definitions.

No network: styles are inline and the charts are inline SVG (real text, so screen readers and the
browser test can read the axes). It fits a 1280 px window and a 390 px phone.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot import charts, measures
from bot.measures_weekly import WeeklyFigures, points
from bot.report import COLUMNS, PRACTICE_COLUMNS, ReportRow, last_day, practice_cells


@dataclass(frozen=True)
class Headline:
    """The figures leadership reads first, one per team."""

    team: str
    m: measures.Measures
    # Coaching blocks squeezed out of leaders' calendars: not tracked yet. When it is, fill this in and the
    # headline grows a column for it (between "Overdue now" and "Behaviour change"); until then, no column.
    squeezed_out_blocks: int | None = None


def _e(text: object) -> str:
    return html.escape(str(text))


STYLE = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0b5cad}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#fff;overflow-wrap:break-word}
main{max-width:1200px;margin:0 auto;padding:1.5rem 1.25rem 3rem}
h1{font-size:1.7rem;line-height:1.2;margin:0 0 .25rem}
h2{font-size:1.25rem;margin:2.2rem 0 .6rem;border-bottom:1px solid var(--line);padding-bottom:.25rem}
.period{color:var(--muted);margin:0 0 1rem}
.lead{font-size:1.15rem;background:var(--soft);border-left:4px solid var(--accent);padding:.6rem .9rem;
margin:0}
table{border-collapse:collapse;width:100%}
th,td{padding:.5rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:.85rem;color:var(--muted);font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.big{display:block;font-size:1.6rem;font-weight:650;line-height:1.15}
.sub{display:block;font-size:.85rem;color:var(--muted)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:1.5rem}
figure{margin:0;min-width:0}
figcaption{font-size:.9rem;color:var(--muted);margin-top:.3rem}
svg.chart{display:block;width:100%;height:auto;max-width:600px}
.nodata{border:2px dashed var(--line);background:var(--soft);padding:2.5rem 1rem;text-align:center;
color:var(--muted);border-radius:6px}
.nodata strong{display:block;color:var(--ink);font-size:1.2rem}
details{margin-top:.5rem}
summary{cursor:pointer;color:var(--accent)}
.scroll{overflow-x:auto;max-width:100%}
.tables{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,330px),1fr));gap:1rem 1.5rem;
align-items:start}
.all caption{text-align:left;font-weight:650;font-size:1.05rem;padding:.2rem 0}
.all th[scope=row]{font-weight:500}
.all thead th{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.all td{text-align:right}
dl{margin:0}
dt{font-weight:600;margin-top:.8rem}
dd{margin:.1rem 0 0}
footer{margin-top:2.5rem;color:var(--muted);font-size:.85rem}
@media (max-width:640px){
  main{padding:1rem .75rem 2rem}
  h1{font-size:1.35rem}
  .headline thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
  .headline tr{display:grid;grid-template-columns:1fr 1fr;gap:.25rem .75rem;border:1px solid var(--line);
  border-radius:6px;padding:.5rem .6rem;margin-bottom:.75rem}
  .headline th[scope=row]{grid-column:1/-1;font-size:1.1rem;border:0;padding:0}
  .headline td{display:block;border:0;padding:.15rem 0;text-align:left}
  .headline td::before{content:attr(data-label);display:block;font-size:.78rem;color:var(--muted)}
  .big{font-size:1.3rem}
  th,td{padding:.4rem .35rem}
  .all{font-size:.92rem}
}
"""


def _headline_columns(headlines: Sequence[Headline]) -> list[tuple[str, str]]:
    cols = [
        ("hit_rate", "Coached in the window"),
        ("missed", "Missed the window"),
        ("overdue", "Overdue now"),
    ]
    if any(h.squeezed_out_blocks is not None for h in headlines):
        cols.append(("squeezed", "Coaching blocks squeezed out"))
    cols.append(("change", "Behaviour change"))
    return cols


def _headline_cell(key: str, h: Headline) -> str:
    m = h.m
    if key == "hit_rate":
        return (
            f'<span class="big">{measures.pct(m.hit_rate)}</span>'
            f'<span class="sub">{m.coached_in_window} of {m.decided} decided'
            f"{f', {m.waived} waived' if m.waived else ''}</span>"
        )
    if key == "missed":
        return f'<span class="big">{m.missed}</span><span class="sub">{m.coached_late} coached late</span>'
    if key == "overdue":
        return f'<span class="big">{m.open_overdue}</span><span class="sub">waiting, past deadline</span>'
    if key == "squeezed":
        return f'<span class="big">{h.squeezed_out_blocks}</span>'
    change = points(m)
    before, after = m.change_before, m.change_after
    big = "–" if change is None else f"{change:+.0f} pts"
    return (
        f'<span class="big">{big}</span><span class="sub">passed {measures.ratio(*before)} before → '
        f"{measures.ratio(*after)} after</span>"
    )


def headline_table(headlines: Sequence[Headline]) -> str:
    cols = _headline_columns(headlines)
    head = '<th scope="col">Team</th>' + "".join(f'<th scope="col">{_e(label)}</th>' for _, label in cols)
    rows = "".join(
        f'<tr><th scope="row">{_e(h.team)}</th>'
        + "".join(f'<td data-label="{_e(label)}">{_headline_cell(key, h)}</td>' for key, label in cols)
        + "</tr>"
        for h in headlines
    )
    return (
        f'<table class="headline"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        '<p class="sub">How each figure is counted: <a href="#h-defs">at the end of the page</a>.</p>'
    )


def all_figures_tables(rows: Sequence[ReportRow]) -> str:
    """Every figure, one small table per team side by side (stacked on a phone): nothing runs off."""
    tables = []
    for row in rows:
        cells = row.cells()
        body = "".join(
            f'<tr><th scope="row">{_e(label)}</th><td>{_e(cells[key])}</td></tr>'
            for key, label in COLUMNS[1:]
        )
        tables.append(
            f'<table class="all"><caption>{_e(row.scope)}</caption>'
            f'<thead><tr><th scope="col">Figure</th><th scope="col">Value</th></tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )
    return f'<div class="tables">{"".join(tables)}</div>'


def _series_table(caption: str, series: charts.WeeklySeries, unit: str) -> str:
    head = '<th scope="col">Week starting</th>' + "".join(
        f'<th scope="col">{_e(t)}</th>' for t in series.teams
    )
    body = "".join(
        f'<tr><th scope="row">{charts.week_label(w)}</th>'
        + "".join(
            f'<td class="num">{"–" if vs[i] is None else f"{vs[i]:.0f}{unit}"}</td>'
            for vs in series.teams.values()
        )
        + "</tr>"
        for i, w in enumerate(series.weeks)
    )
    return (
        f'<details><summary>{_e(caption)}</summary><div class="scroll"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details>"
    )


NO_DATA = {
    "hit_rate": "No case has been decided in these weeks: the chart appears once a conversation is held "
    "or a deadline passes.",
    "behaviour_change": "No coached criterion has been scored both before and after a conversation in these "
    "weeks: the chart appears once agents are evaluated again after being coached.",
}


def chart_figure(key: str, spec: charts.ChartSpec, series: charts.WeeklySeries, unit: str) -> str:
    first, last = charts.week_label(series.weeks[0]), charts.week_label(series.weeks[-1])
    summary = (
        f"{spec.title}, weeks starting {first} to {last}, one line per team; "
        f"reference line: {spec.reference.label}."
    )
    svg = charts.render(spec, series, "svg")
    if svg is None:
        body = f'<div class="nodata" role="note"><strong>No data yet</strong>{_e(NO_DATA[key])}</div>'
        caption = f"<figcaption>{_e(spec.title)}</figcaption>"
        return f'<figure id="chart-{key}" data-chart="empty">{caption}{body}</figure>'
    return (
        f'<figure id="chart-{key}" data-chart="drawn">{charts.inline_svg(svg, spec.title, summary)}'
        f"<figcaption>{_e(summary)}</figcaption>"
        f"{_series_table('The figures behind this chart', series, unit)}</figure>"
    )


def definitions_list() -> str:
    return (
        "<dl>"
        + "".join(f"<dt>{_e(d.term)}</dt><dd>{_e(d.text)}</dd>" for d in measures.DEFINITIONS)
        + "</dl>"
    )


def practice_table(leaders: Sequence[measures.LeaderPractice]) -> str:
    """Each leader's coaching practice: blocks squeezed out, calibration, and who proposed the actions."""
    if not leaders:
        return "<p>No coaching blocks, calibration ratings or conversations in the period.</p>"
    head = "".join(f'<th scope="col">{_e(label)}</th>' for _, label in PRACTICE_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f'<th scope="row">{_e(cells[key])}</th>' if key == "leader" else f"<td>{_e(cells[key])}</td>"
            for key, _ in PRACTICE_COLUMNS
        )
        + "</tr>"
        for cells in (practice_cells(lp) for lp in leaders)
    )
    return f'<table class="all"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def page(
    rows: Sequence[ReportRow],
    period: measures.Period,
    weekly: WeeklyFigures,
    now: datetime,
    leaders: Sequence[measures.LeaderPractice] = (),
) -> str:
    team_rows = [r for r in rows if r.scope != "All teams"] or list(rows)
    headlines = [Headline(r.scope, r.m) for r in team_rows]
    last_two = [(t, ms[-1], ms[-2]) for t, ms in weekly.teams.items() if len(ms) >= 2]
    lead = measures.change_lead(last_two) if last_two else "No weeks to compare yet."
    span = f"{period.start:%-d %b %Y} – {last_day(period):%-d %b %Y}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Coaching from QA, {_e(span)}</title>
<style>{STYLE}</style>
</head><body><main>
<header>
<h1>Coaching from QA</h1>
<p class="period">{_e(span)} · made {now:%-d %b %Y %H:%M} UTC</p>
<p class="lead"><strong>Last week against the week before:</strong> {_e(lead)}</p>
</header>
<section aria-labelledby="h-headline"><h2 id="h-headline">Each team</h2>{headline_table(headlines)}</section>
<section aria-labelledby="h-weeks"><h2 id="h-weeks">Week by week, last {len(weekly.weeks)} weeks</h2>
<div class="charts">
{chart_figure("hit_rate", charts.HIT_RATE, weekly.hit_rate, "%")}
{chart_figure("behaviour_change", charts.BEHAVIOUR_CHANGE, weekly.behaviour_change, " pts")}
</div></section>
<section aria-labelledby="h-all"><h2 id="h-all">Every figure</h2>{all_figures_tables(rows)}</section>
<section aria-labelledby="h-leaders"><h2 id="h-leaders">Each leader's coaching practice</h2>
{practice_table(leaders)}</section>
<section aria-labelledby="h-defs"><h2 id="h-defs">How these are counted</h2>{definitions_list()}</section>
<footer>coachloop report. App Home, /coach and the weekly digest show the same figures, counted the
same way.</footer>
</main></body></html>
"""
