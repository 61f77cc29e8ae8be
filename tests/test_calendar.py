"""The working-day calendar: worked examples (also in the README) and properties across time zones."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.calendar import HolidayCalendar, WorkCalendar

LONDON = WorkCalendar(
    timezone="Europe/London",
    holidays=HolidayCalendar("GB", "ENG", ((date(2026, 12, 24), "Closed"),)),
)
NEW_YORK = WorkCalendar(timezone="America/New_York", holidays=HolidayCalendar("US"))


@pytest.mark.parametrize(
    ("cal", "landed", "effective", "deadline_local"),
    [
        (LONDON, "2026-11-23T14:02:00+00:00", "2026-11-23", "2026-11-30T17:30:00+00:00"),
        (LONDON, "2026-11-27T18:00:00+00:00", "2026-11-30", "2026-12-07T17:30:00+00:00"),
        (LONDON, "2026-12-21T10:00:00+00:00", "2026-12-21", "2026-12-31T17:30:00+00:00"),
        (LONDON, "2026-03-24T10:00:00+00:00", "2026-03-24", "2026-03-31T17:30:00+01:00"),
        (NEW_YORK, "2026-11-25T23:30:00+00:00", "2026-11-27", "2026-12-04T17:30:00-05:00"),
        (LONDON, "2026-11-28T09:00:00+00:00", "2026-11-30", "2026-12-07T17:30:00+00:00"),
        (LONDON, "2026-11-23T17:30:00+00:00", "2026-11-24", "2026-12-01T17:30:00+00:00"),
    ],
)
def test_worked_examples(cal: WorkCalendar, landed: str, effective: str, deadline_local: str) -> None:
    at = datetime.fromisoformat(landed)
    assert cal.effective_landing_day(at) == date.fromisoformat(effective)
    assert cal.local(cal.deadline(at, 5)).isoformat() == deadline_local


def test_dst_does_not_shift_the_deadline() -> None:
    # Landed the Friday before the clocks go back in London: deadline is still 17:30 local.
    due = LONDON.deadline(datetime(2026, 10, 23, 12, 0, tzinfo=UTC), 5)
    assert due == datetime(2026, 10, 30, 17, 30, tzinfo=UTC)  # GMT again by then
    assert LONDON.local(due).time() == time(17, 30)


def test_working_days_left_and_late() -> None:
    due = LONDON.deadline(datetime(2026, 11, 23, 14, 2, tzinfo=UTC), 5)
    assert LONDON.working_days_left(datetime(2026, 11, 23, 15, 0, tzinfo=UTC), due) == 5
    assert LONDON.working_days_left(datetime(2026, 11, 30, 9, 0, tzinfo=UTC), due) == 0
    assert LONDON.working_days_late(datetime(2026, 11, 30, 17, 0, tzinfo=UTC), due) == 0
    assert LONDON.working_days_late(datetime(2026, 11, 30, 18, 0, tzinfo=UTC), due) == 1
    assert LONDON.working_days_late(datetime(2026, 12, 3, 10, 0, tzinfo=UTC), due) == 3


def test_next_opening() -> None:
    friday_evening = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
    assert LONDON.next_opening(friday_evening) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    inside = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert LONDON.next_opening(inside) == inside
    before = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
    assert LONDON.next_opening(before) == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_closed_days_name_the_holiday() -> None:
    closed = dict(LONDON.closed_days(2026))
    assert closed[date(2026, 12, 25)] == "Christmas Day"
    assert closed[date(2026, 12, 24)] == "Closed"
    assert closed[date(2026, 12, 26)] == "Saturday"


ZONES = sorted(
    z
    for z in available_timezones()
    if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/"))
)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    landed=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    window=st.integers(min_value=1, max_value=10),
    weekdays=st.sets(st.integers(min_value=0, max_value=6), min_size=1),
)
def test_deadline_properties(zone: str, landed: datetime, window: int, weekdays: set[int]) -> None:
    cal = WorkCalendar(timezone=zone, working_weekdays=frozenset(weekdays))
    due = cal.deadline(landed, window)
    local_due = cal.local(due)
    effective = cal.effective_landing_day(landed)
    # The deadline is the end of business, local wall time, on a working day after the landing.
    assert local_due.time() == time(17, 30) or _in_dst_gap(zone, local_due.date(), time(17, 30))
    assert cal.is_working_day(local_due.date())
    assert due > landed
    assert cal.working_days_between(effective, local_due.date()) == window
    assert cal.is_working_day(effective)
    assert effective >= cal.local(landed).date()
    assert (effective - cal.local(landed).date()) <= timedelta(days=7)


@settings(max_examples=200, deadline=None)
@given(
    landed=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
    ),
    country=st.sampled_from([("GB", "ENG"), ("US", None), ("DE", "BY"), ("IN", None), ("AU", "NSW")]),
)
def test_holidays_are_never_counted(landed: datetime, country: tuple[str, str | None]) -> None:
    cal = WorkCalendar(timezone="UTC", holidays=HolidayCalendar(*country))
    due = cal.deadline(landed, 5)
    effective = cal.effective_landing_day(landed)
    day, counted = effective, 0
    while day < due.date():
        day += timedelta(days=1)
        if cal.holidays.name(day) is None and day.weekday() < 5:
            counted += 1
    assert counted == 5


def _in_dst_gap(zone: str, day: date, wall: time) -> bool:
    naive = datetime.combine(day, wall)
    aware = naive.replace(tzinfo=ZoneInfo(zone))
    return aware.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != naive


def test_a_copy_in_another_time_zone_counts_its_own_deadlines() -> None:
    """Deadlines are remembered per calendar: a reader's copy of a team's calendar in their own time zone
    (`dataclasses.replace`, as `recipient_calendar` makes one) neither reads nor fills the team's."""
    team = WorkCalendar(timezone="Europe/London")
    reader = replace(team, timezone="America/New_York")
    landed = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert reader.deadline(landed, 3).astimezone(ZoneInfo("America/New_York")).time() == time(17, 30)
    assert team.deadline(landed, 3).astimezone(ZoneInfo("Europe/London")).time() == time(17, 30)
    assert reader.deadline(landed, 3) != team.deadline(landed, 3)
