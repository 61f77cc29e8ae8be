"""Words for an admin checking a team's calendar: how a deadline was counted."""

from __future__ import annotations

from datetime import datetime

from bot.calendar import WorkCalendar


def explain_deadline(cal: WorkCalendar, landed: datetime, window: int) -> str:
    local = cal.local(landed)
    effective = cal.effective_landing_day(landed)
    lines = [
        f"landed:               {local.isoformat()} ({cal.timezone})",
        f"effective landing day: {effective.isoformat()} {effective.strftime('%a')}"
        + ("" if effective == local.date() else " (landed after hours or on a closed day)"),
    ]
    day, counted = effective, []
    for _ in range(window):
        day = cal.next_working_day(day)
        counted.append(day)
    lines.append("working days counted: " + ", ".join(f"{d.isoformat()} {d.strftime('%a')}" for d in counted))
    skipped = [
        (d, r) for d, r in cal.skipped_between(effective, counted[-1]) if r not in ("Saturday", "Sunday")
    ]
    if skipped:
        lines.append("skipped:              " + ", ".join(f"{d.isoformat()} {r}" for d, r in skipped))
    due = cal.deadline(landed, window)
    lines.append(f"deadline:             {cal.local(due).isoformat()} ({due.isoformat()} UTC)")
    return "\n".join(lines)
