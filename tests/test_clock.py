"""The clocks: the system clock answers in aware UTC; the fixed clock refuses naive times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from bot.clock import FixedClock, SystemClock


@freeze_time("2026-11-23 14:02:00")
def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now == datetime(2026, 11, 23, 14, 2, tzinfo=UTC) and now.tzinfo is UTC


def test_fixed_clock_moves_only_when_told() -> None:
    clock = FixedClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    clock.advance(timedelta(hours=2))
    assert clock.now() == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 11, 23, 9, 0))
