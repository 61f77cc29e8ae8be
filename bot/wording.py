"""How times and dates are said to a reader in their own time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def uses_12_hour(timezone: str) -> bool:
    return timezone.startswith(("America/", "US/", "Canada/", "Australia/"))


def clock_time(at: datetime, timezone: str) -> str:
    local = at.astimezone(ZoneInfo(timezone))
    if uses_12_hour(timezone):
        return local.strftime("%I:%M %p").lstrip("0").lower()
    return local.strftime("%H:%M")


def day_phrase(at: datetime, now: datetime, timezone: str) -> str:
    """'today', 'yesterday', 'on Tuesday' (within the week) or 'on Tue 10 Nov'."""
    tz = ZoneInfo(timezone)
    day, today = at.astimezone(tz).date(), now.astimezone(tz).date()
    delta = (today - day).days
    if delta == 0:
        return "today"
    if delta == 1:
        return "yesterday"
    if delta == -1:
        return "tomorrow"
    if 1 < delta < 7:
        return f"on {day.strftime('%A')}"
    return f"on {short_date(day)}"


def short_date(day: date) -> str:
    """'Mon 30 Nov'."""
    return f"{day.strftime('%a')} {day.day} {day.strftime('%b')}"


def date_and_time(at: datetime, timezone: str) -> str:
    """'Tue 1 Dec, 02:30' in the given zone."""
    return f"{short_date(at.astimezone(ZoneInfo(timezone)).date())}, {clock_time(at, timezone)}"


def when(at: datetime, now: datetime, timezone: str) -> str:
    """'at 11:23 yesterday'."""
    return f"at {clock_time(at, timezone)} {day_phrase(at, now, timezone)}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def mm_ss(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters in mrkdwn and plain message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
