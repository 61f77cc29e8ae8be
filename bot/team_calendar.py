"""A team's stored settings as a WorkCalendar."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, time

from bot.calendar import HolidayCalendar, WorkCalendar, parse_weekdays
from storage.models import Person, Team

_cache: dict[tuple[object, ...], WorkCalendar] = {}


def calendar_for(team: Team) -> WorkCalendar:
    closed = tuple((date.fromisoformat(d), str(name)) for d, name in team.closed_dates or [])
    key = (
        team.timezone,
        team.working_days,
        team.day_start,
        team.day_end,
        team.holiday_country,
        team.holiday_subdivision,
        closed,
    )
    if key not in _cache:
        _cache[key] = WorkCalendar(
            timezone=team.timezone,
            working_weekdays=parse_weekdays(team.working_days.split(",")),
            start=time.fromisoformat(team.day_start),
            end=time.fromisoformat(team.day_end),
            holidays=HolidayCalendar(team.holiday_country, team.holiday_subdivision, closed),
        )
    return _cache[key]


def timezone_of(person: Person, team: Team) -> str:
    """A reader's own time zone (from Slack), else their team's."""
    return person.timezone or team.timezone


def recipient_calendar(team: Team, person: Person | None) -> WorkCalendar:
    """The team's working days and hours, in the recipient's own time zone (from Slack) when known:
    when a nudge to that person may go out."""
    cal = calendar_for(team)
    if person is None or not person.timezone or person.timezone == cal.timezone:
        return cal
    return replace(cal, timezone=person.timezone)
