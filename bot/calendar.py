"""Working-day calendar of a team: time zone, weekdays, business hours, holidays.

Deadlines are counted on local dates, then the wall-clock end of business is
attached and the result converted to UTC, so a DST change never moves a
deadline by an hour.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class HolidayCalendar:
    """Public holidays of a country (and subdivision) plus extra closed dates."""

    country: str | None = None
    subdivision: str | None = None
    closed: tuple[tuple[date, str], ...] = ()
    _years: dict[int, dict[date, str]] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def _year(self, year: int) -> dict[date, str]:
        with self._lock:
            if year not in self._years:
                found: dict[date, str] = {}
                if self.country:
                    public = holidays_lib.country_holidays(self.country, subdiv=self.subdivision, years=year)
                    found.update({d: str(name) for d, name in public.items()})
                found.update({d: name for d, name in self.closed if d.year == year})
                self._years[year] = found
            return self._years[year]

    def name(self, day: date) -> str | None:
        return self._year(day.year).get(day)


@dataclass(frozen=True)
class WorkCalendar:
    timezone: str = "UTC"
    working_weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    start: time = time(9, 0)
    end: time = time(17, 30)
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)
    # (effective landing day, window) -> deadline: every score of a burst lands on one of a few days.
    # Not an init field, so that a copy made with other settings (`dataclasses.replace`) has its own.
    _deadlines: dict[tuple[date, int], datetime] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def closed_reason(self, day: date) -> str | None:
        """Why `day` is not a working day, or None when it is one."""
        if day.weekday() not in self.working_weekdays:
            return day.strftime("%A")
        return self.holidays.name(day)

    def is_working_day(self, day: date) -> bool:
        return self.closed_reason(day) is None

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += timedelta(days=1)
        for _ in range(3700):
            if self.is_working_day(day):
                return day
            day += timedelta(days=1)
        raise ValueError("this calendar has no working day within ten years")

    def at_local(self, day: date, wall: time) -> datetime:
        """A wall-clock time on a local date, as UTC (a time in a DST gap moves forward)."""
        naive = datetime.combine(day, wall)
        aware = naive.replace(tzinfo=self.tz)
        # Round-trip through UTC resolves nonexistent wall times the way people expect.
        return aware.astimezone(UTC).astimezone(self.tz).astimezone(UTC)

    def end_of_business(self, day: date) -> datetime:
        return self.at_local(day, self.end)

    def start_of_business(self, day: date) -> datetime:
        return self.at_local(day, self.start)

    def effective_landing_day(self, landed: datetime) -> date:
        """Landing date if it is a working day and before the end of business; else the next working day."""
        local = self.local(landed)
        day = local.date()
        if self.is_working_day(day) and local.time() < self.end:
            return day
        return self.next_working_day(day)

    def add_working_days(self, day: date, n: int) -> date:
        for _ in range(n):
            day = self.next_working_day(day)
        return day

    def skipped_between(self, first: date, last: date) -> Iterator[tuple[date, str]]:
        """Closed days strictly between `first` and `last`, with the reason."""
        day = first + timedelta(days=1)
        while day < last:
            reason = self.closed_reason(day)
            if reason is not None:
                yield day, reason
            day += timedelta(days=1)

    def deadline(self, landed: datetime, window: int) -> datetime:
        """End of business on the `window`-th working day after the effective landing day, in UTC."""
        key = (self.effective_landing_day(landed), window)
        due = self._deadlines.get(key)
        if due is None:
            due = self._deadlines[key] = self.end_of_business(self.add_working_days(*key))
        return due

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; negative when end is before start."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count

    def working_days_left(self, now: datetime, due: datetime) -> int:
        """Whole working days after today until the due day (0 on the due day itself)."""
        return self.working_days_between(self.local(now).date(), self.local(due).date())

    def working_days_late(self, now: datetime, due: datetime) -> int:
        """Working days since the due time passed (0 before it, at least 1 after it)."""
        if now <= due:
            return 0
        return max(1, self.working_days_between(self.local(due).date(), self.local(now).date()))

    def is_open(self, at: datetime) -> bool:
        """Inside business hours on a working day (the closing minute itself included)."""
        local = self.local(at)
        return self.is_working_day(local.date()) and self.start <= local.time() <= self.end

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself when inside business hours, else the next start of business (UTC)."""
        if self.is_open(at):
            return at.astimezone(UTC)
        local = self.local(at)
        day = local.date()
        if self.is_working_day(day) and local.time() < self.start:
            return self.start_of_business(day)
        return self.start_of_business(self.next_working_day(day))

    def closed_days(self, year: int) -> Iterator[tuple[date, str]]:
        day = date(year, 1, 1)
        while day.year == year:
            reason = self.closed_reason(day)
            if reason is not None:
                yield day, reason
            day += timedelta(days=1)


def parse_weekdays(names: list[str]) -> frozenset[int]:
    days = set()
    for name in names:
        key = str(name).strip().lower()[:3]
        if key not in WEEKDAYS:
            raise ValueError(f"unknown weekday {name!r}: use mon, tue, wed, thu, fri, sat or sun")
        days.add(WEEKDAYS.index(key))
    if not days:
        raise ValueError("working_days must name at least one weekday")
    return frozenset(days)
