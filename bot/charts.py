"""Charts as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from datetime import date

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET_HIT_RATE = 0.9


def hit_rate_chart(
    series: dict[str, list[tuple[date, float | None]]], target: float = TARGET_HIT_RATE
) -> bytes:
    """Hit rate per team per week, with the target line."""
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    try:
        for team, points in series.items():
            xs = [d for d, rate in points if rate is not None]
            ys = [rate * 100 for _, rate in points if rate is not None]
            ax.plot(xs, ys, marker="o", label=team)  # type: ignore[arg-type]  # matplotlib plots dates
        ax.axhline(target * 100, color="grey", linestyle="--", label=f"target {target:.0%}")
        ax.set_ylim(0, 105)
        ax.set_ylabel("coached within the window (%)")
        ax.set_title("Coaching conversations held within the window, by week")
        ax.legend(loc="lower left", fontsize="small")
        fig.autofmt_xdate()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)
