"""The outbox's pace under Slack's documented rates: a burst at once, then one call per interval, and a
row that must wait is given its place once and goes when it comes back at that place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.pacing import CHANNEL_BURST, FORGOTTEN_AFTER, KEPT, POST, Pace, SlackLimits

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_a_burst_goes_at_once_then_each_row_is_given_the_next_place() -> None:
    pace = Pace(60, burst=3)  # one a second after three at once
    assert [pace.turn(NOW, row) for row in (1, 2, 3)] == [None, None, None]
    places = [pace.turn(NOW, row) for row in (4, 5, 6)]
    assert places == [NOW + timedelta(seconds=s) for s in (1, 2, 3)]


def test_a_row_back_at_its_place_goes_without_taking_another() -> None:
    pace = Pace(60, burst=1)
    assert pace.turn(NOW, 1) is None
    place = pace.turn(NOW, 2)
    assert place == NOW + timedelta(seconds=1)
    assert pace.turn(NOW + timedelta(milliseconds=500), 2) == place  # early: the same place again
    later = pace.turn(NOW + timedelta(milliseconds=500), 3)
    assert later == NOW + timedelta(seconds=2)  # row 3 queues behind row 2, not beside it
    assert pace.turn(place, 2) is None  # at its place it goes
    assert pace.turn(later, 3) is None


@given(st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=60))
def test_no_minute_ever_sees_more_calls_than_the_pace_allows(gaps_ms: list[int]) -> None:
    """Rows arrive at random moments, each coming back at the place it was given until it goes: the
    calls that went never exceed the burst plus the rate over any window."""
    pace = Pace(60, burst=5)
    now = NOW
    went: list[datetime] = []
    waiting: dict[int, datetime] = {}
    for row, gap in enumerate(gaps_ms):
        now += timedelta(milliseconds=gap)
        for other, due in sorted(waiting.items(), key=lambda kv: kv[1]):
            if due <= now:
                assert pace.turn(due, other) is None
                went.append(due)
                del waiting[other]
        place = pace.turn(now, row)
        if place is None:
            went.append(now)
        else:
            assert place > now
            waiting[row] = place
    went.sort()
    for i, start in enumerate(went):
        within = [t for t in went[i:] if t - start < timedelta(seconds=10)]
        assert len(within) <= 5 + 10, (start, within)


def test_posts_keep_to_each_channel_and_to_the_workspace() -> None:
    limits = SlackLimits()
    one = [limits.turn(f"{POST}:D1", row, NOW) for row in range(CHANNEL_BURST + 1)]
    assert one[:CHANNEL_BURST] == [None] * CHANNEL_BURST and one[-1] is not None
    assert limits.turn(f"{POST}:D2", 100, NOW) is None  # another channel has its own allowance
    limits.paces[POST] = Pace(1, burst=1)
    assert limits.turn(f"{POST}:D3", 200, NOW) is None
    assert limits.turn(f"{POST}:D4", 201, NOW) == NOW + timedelta(minutes=1)  # the workspace's turn


def test_a_429_holds_its_limit_until_retry_after_whatever_the_pace() -> None:
    limits = SlackLimits()
    limits.hold("chat.update", NOW + timedelta(seconds=7), NOW)
    assert limits.turn("chat.update", 1, NOW) == NOW + timedelta(seconds=7)
    assert limits.turn("chat.update", 1, NOW + timedelta(seconds=7)) is None
    assert limits.turn("files.getUploadURLExternal", 2, NOW) is None  # not paced: 429s only


def test_a_backlog_longer_than_the_places_remembered_keeps_every_place() -> None:
    """Thousands of rows waiting: each keeps its place; only a place passed long ago without its row
    (the row went elsewhere) is forgotten."""
    pace = Pace(60, burst=1)
    rows = range(2 * KEPT + 10)
    places = {row: pace.turn(NOW, row) for row in rows}
    assert all(pace.turn(NOW, row) == places[row] for row in rows if places[row] is not None)
    late = NOW + FORGOTTEN_AFTER + timedelta(seconds=len(rows) + 1)
    for row in range(len(rows), len(rows) + 4 * KEPT):  # new rows, while the old places lie long past
        pace.turn(late, row)
    again = pace.turn(late, 1)  # row 1 never came back: its place was forgotten, it queues anew
    assert again is not None and again > late


def test_tier_3_calls_and_home_re_publishes_keep_to_their_documented_rates() -> None:
    """chat.update, conversations.open and conversations.history: 50 a minute (Tier 3); Home
    re-publishes: 60 a minute, of the about 100 views.publish Slack allows (the rest is people's)."""
    for method, per_minute in [
        ("chat.update", 50), ("conversations.open", 50), ("conversations.history", 50), ("views.publish", 60)
    ]:  # fmt: skip
        limits = SlackLimits()
        assert [limits.turn(method, row, NOW) for row in range(per_minute)] == [None] * per_minute
        assert limits.turn(method, per_minute, NOW) == NOW + timedelta(seconds=60 / per_minute)
