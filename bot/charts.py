"""Weekly charts, drawn once by matplotlib: PNG for Slack (the digest), SVG with real text for the report.

A chart with no point to draw is not drawn: `render` returns None and the caller says "no data yet".
matplotlib is imported by the first chart drawn, not with this module: it is over a third of a
server's memory, and most processes never draw.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

TARGET_HIT_RATE = 0.9
WEEK_AXIS = "Week starting (Monday)"


@dataclass(frozen=True)
class Reference:
    """A horizontal line to read the series against (a target, or "no change")."""

    value: float
    label: str


@dataclass(frozen=True)
class ChartSpec:
    title: str
    y_label: str
    y_range: tuple[float, float] | None
    reference: Reference


@dataclass(frozen=True)
class WeeklySeries:
    """One value (or None: nothing to count) per team per week; weeks are Mondays."""

    weeks: Sequence[date]
    teams: Mapping[str, Sequence[float | None]]

    @property
    def empty(self) -> bool:
        return all(v is None for values in self.teams.values() for v in values)


HIT_RATE = ChartSpec(
    title="Coached in the window, by week",
    y_label="Coached in the window (%)",
    y_range=(0, 105),
    reference=Reference(TARGET_HIT_RATE * 100, f"Target {TARGET_HIT_RATE:.0%}"),
)
BEHAVIOUR_CHANGE = ChartSpec(
    title="Behaviour change, by week of the conversation",
    y_label="Pass rate after − before (pts)",
    y_range=None,
    reference=Reference(0, "No change"),
)


def week_label(monday: date) -> str:
    return f"{monday.day} {monday:%b}"


def _tick(monday: date) -> str:
    """Day over month, so eight weeks fit a phone's width."""
    return f"{monday.day}\n{monday:%b}"


def render(spec: ChartSpec, series: WeeklySeries, fmt: Literal["png", "svg"] = "png") -> bytes | None:
    """The chart as PNG or SVG bytes, or None when there is no point to draw."""
    if series.empty:
        return None
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    labels = [_tick(w) for w in series.weeks]
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "coachloop", "font.size": 13}):
        fig = Figure(figsize=(6.0, 4.0), dpi=150 if fmt == "png" else 72)
        ax = fig.subplots()
        positions = list(range(len(labels)))
        for team, values in series.teams.items():
            ys = [math.nan if v is None else v for v in values]
            ax.plot(positions, ys, marker="o", linewidth=2, label=team)
        ax.axhline(spec.reference.value, color="#555", linestyle="--", linewidth=1.2)
        ax.annotate(
            spec.reference.label,
            xy=(1, spec.reference.value),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            va="bottom",
            color="#333",
            fontsize=12,
        )
        if spec.y_range is not None:
            ax.set_ylim(*spec.y_range)
        else:
            top = max([abs(v) for vs in series.teams.values() for v in vs if v is not None] + [10.0])
            ax.set_ylim(-top * 1.15, top * 1.15)
        ax.set_xlim(-0.4, len(labels) - 0.6)
        ax.set_xticks(positions, labels)
        ax.set_xlabel(WEEK_AXIS)
        ax.set_ylabel(spec.y_label)
        ax.set_title(spec.title, fontsize=13, loc="left")
        ax.grid(axis="y", color="#ddd", linewidth=0.8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.22),
            ncol=min(4, max(1, len(series.teams))),
            frameon=False,
            fontsize=12,
        )
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else {})
        return buffer.getvalue()


def inline_svg(svg: bytes, title: str, description: str) -> str:
    """The SVG ready to sit in a page: no XML prologue, scales to its box, named for screen readers."""
    text = svg.decode()
    text = text[text.index("<svg") :]
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    ident = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    text = text.replace("<svg", f'<svg role="img" aria-labelledby="{ident}-t {ident}-d" class="chart"', 1)
    close = text.index(">") + 1
    return (
        text[:close]
        + f'<title id="{ident}-t">{_escape(title)}</title><desc id="{ident}-d">{_escape(description)}</desc>'
        + text[close:]
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hit_rate_chart(series: WeeklySeries) -> bytes | None:
    """The digest's chart: each team's hit rate (%) per week with the target line, as PNG; None if empty."""
    return render(HIT_RATE, series, "png")
