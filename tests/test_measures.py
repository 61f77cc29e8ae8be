"""Each measure on a hand-made month, with the answer worked out here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.calendar import HolidayCalendar, WorkCalendar
from bot.measures import CaseFacts, Period, ScoreFacts, compute
from bot.measures_data import INCLUDE_NOW

LONDON = WorkCalendar(timezone="Europe/London", holidays=HolidayCalendar("GB", "ENG"))
PERIOD = Period(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def t(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def due(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 17, 30, tzinfo=UTC)


CASES = [
    # c1: coached inside the window, acknowledged after 4 h, agent's own action, reviewed on time.
    CaseFacts(
        1,
        "Billing",
        "P",
        "a",
        "performance",
        "closed",
        t(2, 10),
        t(2, 10),
        due(9),
        agreed_at=t(4, 11),
        acknowledged_at=t(4, 15),
        action_date=date(2026, 11, 11),
        reviewed_at=t(12, 10),
        review_happened="yes",
        agent_proposed=True,
        behaviour_key="ack",
    ),
    # c2: coached late, discussion requested, review due 25 Nov and not held.
    CaseFacts(
        2,
        "Billing",
        "P",
        "b",
        "performance",
        "discussion_requested",
        t(9, 10),
        t(9, 10),
        due(16),
        agreed_at=t(18, 10),
        discussion_requested_at=t(18, 12),
        action_date=date(2026, 11, 25),
        agent_proposed=False,
        behaviour_key="verify",
    ),
    # c3: waived.
    CaseFacts(
        3,
        "Billing",
        "P",
        "c",
        "performance",
        "waived",
        t(16, 10),
        t(16, 10),
        due(23),
        waived_at=t(17, 9),
        waived_reason="leaving",
    ),
    # c4: still awaiting, deadline passed on 26 Nov.
    CaseFacts(
        4, "Billing", "P", "d", "developmental", "awaiting_conversation", t(19, 10), t(19, 10), due(26)
    ),
    # c5: awaiting, deadline after the period and after now.
    CaseFacts(5, "Billing", "P", "e", "performance", "awaiting_conversation", t(23, 10), t(23, 10), due(30)),
    # c6: another leader's, landed before the period, coached in the window, acknowledged after 24 h.
    CaseFacts(
        6,
        "Billing",
        "Q",
        "f",
        "developmental",
        "acknowledged",
        t(30, 10, 10),
        t(30, 10, 10),
        due(6),
        agreed_at=t(5, 9),
        acknowledged_at=t(6, 9),
        action_date=date(2026, 12, 4),
        behaviour_key="development-goal",
    ),
]

SCORES = [
    ScoreFacts("a", t(28, 10, 10)),
    ScoreFacts("a", t(28, 10, 10), "ack", False),
    ScoreFacts("a", t(2, 10)),
    ScoreFacts("a", t(2, 10), "ack", False),
    ScoreFacts("a", t(10, 10)),
    ScoreFacts("a", t(10, 10), "ack", True),
    ScoreFacts("a", t(20, 10)),
    ScoreFacts("a", t(20, 10), "ack", True),
    ScoreFacts("a", t(25, 10)),
    ScoreFacts("a", t(25, 10), "ack", False),
    ScoreFacts("b", t(9, 10)),
    ScoreFacts("b", t(9, 10), "verify", False),
]


@pytest.fixture(scope="module")
def m():  # type: ignore[no-untyped-def]
    return compute(CASES, SCORES, {"Billing": LONDON}, PERIOD, NOW)


def test_volumes(m) -> None:  # type: ignore[no-untyped-def]
    assert m.scores_landed == 5  # a: 2, 10, 20, 25 Nov; b: 9 Nov (28 Oct is before the period)
    assert m.cases_opened == 5  # c1-c5; c6 opened in October


def test_hit_rate(m) -> None:  # type: ignore[no-untyped-def]
    # Deadlines in the period: c1, c2, c4, c6 (c3 waived, c5 due 30 Nov 17:30, after the period).
    assert (m.coached_in_window, m.missed, m.decided, m.hit_rate) == (2, 2, 4, 0.5)
    assert m.coached_late == 1  # c2
    assert m.open_overdue == 1  # c4 (c5's deadline has not passed)


def test_waived(m) -> None:  # type: ignore[no-untyped-def]
    assert (m.waived, dict(m.waived_reasons)) == (1, {"leaving": 1})


def test_time_to_coach(m) -> None:  # type: ignore[no-untyped-def]
    # c1: Mon 2 -> Wed 4 = 2; c2: Mon 9 -> Wed 18 = 7; c6: Fri 30 Oct -> Thu 5 Nov = 4 working days.
    assert (m.time_to_coach_median, m.time_to_coach_p90) == (4, 7)


def test_acknowledgement(m) -> None:  # type: ignore[no-untyped-def]
    assert (m.agreed, m.acknowledged) == (3, 2)
    assert m.ack_hours_median == 14.0  # 4 h and 24 h
    assert m.discussions == 1


def test_reviews(m) -> None:  # type: ignore[no-untyped-def]
    # Action dates in the period: c1 (11 Nov, reviewed 12 Nov: inside 2 working days), c2 (25 Nov, not held).
    assert (m.reviews_on_time, m.reviews_decided, m.review_rate) == (1, 2, 0.5)
    assert dict(m.outcomes) == {"yes": 1}


def test_behaviour_change(m) -> None:  # type: ignore[no-untyped-def]
    changes = {c.case_id: c for c in m.behaviour_change}
    assert set(changes) == {1, 2}  # c6 was a development goal
    a = changes[1]
    assert (a.before_passed, a.before_scored, a.after_passed, a.after_scored) == (0, 2, 2, 3)
    b = changes[2]
    assert (b.before_passed, b.before_scored, b.after_scored, b.after_rate) == (0, 1, 0, None)
    assert m.change_before == (0, 3) and m.change_after == (2, 3)


def test_mix_and_ownership(m) -> None:  # type: ignore[no-untyped-def]
    assert {k: dict(v) for k, v in m.mix.items()} == {"P": {"performance": 2}, "Q": {"developmental": 1}}
    assert (m.proposed, m.proposed_share) == (1, 1 / 3)
    assert m.one_kind_leaders == ["P"]  # two conversations in 8 weeks, both performance; Q had only one


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("last-4-weeks", datetime(2026, 11, 2, 10, 0, tzinfo=UTC), NOW + INCLUDE_NOW),
        ("last-week", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),
        ("this-week", datetime(2026, 11, 30, tzinfo=UTC), NOW + INCLUDE_NOW),
        ("this-month", datetime(2026, 11, 1, tzinfo=UTC), NOW + INCLUDE_NOW),
        ("last-month", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)),
    ],
)
def test_periods(text: str, start: datetime, end: datetime) -> None:
    from bot.measures_data import parse_period

    assert parse_period(text, NOW) == Period(start, end)


def test_unknown_period_says_what_to_use() -> None:
    from bot.measures_data import parse_period

    with pytest.raises(ValueError, match="use last-N-weeks"):
        parse_period("fortnight", NOW)


def test_a_case_counts_the_moment_it_is_decided() -> None:
    """Coached in time with the deadline still ahead: decided now; waived after a miss stays a miss."""
    week = Period(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 25, 12, tzinfo=UTC))
    now = week.end
    coached = CaseFacts(
        1, "Billing", "P", "a", "performance", "agreed", t(23, 10), t(23, 10), due(30), agreed_at=t(24, 9)
    )
    waived_late = CaseFacts(
        2,
        "Billing",
        "P",
        "b",
        "performance",
        "waived",
        t(16, 10),
        t(16, 10),
        due(23),
        waived_at=t(24, 10),
        waived_reason="left",
    )
    waived_early = CaseFacts(
        3, "Billing", "P", "c", "performance", "waived", t(23, 11), t(23, 11), due(30), waived_at=t(24, 11)
    )
    waiting = CaseFacts(
        4, "Billing", "P", "d", "performance", "awaiting_conversation", t(23, 12), t(23, 12), due(30)
    )
    m = compute([coached, waived_late, waived_early, waiting], [], {"Billing": LONDON}, week, now)
    assert (m.coached_in_window, m.missed, m.decided, m.hit_rate) == (1, 1, 2, 0.5)
    assert m.waived == 2  # both waived in the period, shown apart
    # A review held before the action's date is decided and on time; one not yet due is not decided.
    reviewed = CaseFacts(
        5,
        "Billing",
        "P",
        "e",
        "performance",
        "closed",
        t(9, 10),
        t(9, 10),
        due(16),
        agreed_at=t(10, 10),
        action_date=date(2026, 11, 27),
        reviewed_at=t(24, 15),
        review_happened="partly",
    )
    pending = CaseFacts(
        6,
        "Billing",
        "P",
        "f",
        "performance",
        "acknowledged",
        t(9, 10),
        t(9, 10),
        due(16),
        agreed_at=t(10, 10),
        action_date=date(2026, 11, 24),
    )
    m = compute([reviewed, pending], [], {"Billing": LONDON}, week, now)
    assert (m.reviews_on_time, m.reviews_decided) == (1, 1)  # pending may still be reviewed until 26 Nov


@st.composite
def random_case(draw: st.DrawFn, case_id: int) -> CaseFacts:
    opened = datetime(2026, 10, 5, 9, tzinfo=UTC) + timedelta(hours=draw(st.integers(0, 24 * 50)))
    deadline = opened + timedelta(days=draw(st.integers(1, 9)))
    agreed = waived = None
    fate = draw(st.sampled_from(["open", "agreed", "waived"]))
    if fate == "agreed":
        agreed = opened + timedelta(hours=draw(st.integers(1, 24 * 14)))
    elif fate == "waived":
        waived = opened + timedelta(hours=draw(st.integers(1, 24 * 14)))
    action = (agreed.date() + timedelta(days=draw(st.integers(0, 10)))) if agreed else None
    reviewed = (
        datetime.combine(action, datetime.min.time(), tzinfo=UTC)
        + timedelta(hours=draw(st.integers(0, 24 * 9)))
        if action and draw(st.booleans())
        else None
    )
    return CaseFacts(
        case_id,
        "Billing",
        "P",
        f"a{case_id}",
        "performance",
        "agreed" if agreed else "awaiting_conversation",
        opened,
        opened,
        deadline,
        agreed_at=agreed,
        waived_at=waived,
        action_date=action,
        reviewed_at=reviewed,
    )


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=25).flatmap(
        lambda ids: st.tuples(*(random_case(i) for i in range(len(ids))))
    )
)
def test_weeks_add_up_to_the_whole(cases: tuple[CaseFacts, ...]) -> None:
    """Every case is decided once: the weeks' counts add up to the whole period's, and rates stay in 0..1."""
    start, weeks = datetime(2026, 10, 5, tzinfo=UTC), 10
    now = start + timedelta(weeks=weeks)
    whole = compute(list(cases), [], {"Billing": LONDON}, Period(start, now), now)
    parts = [
        compute(
            list(cases),
            [],
            {"Billing": LONDON},
            Period(start + timedelta(weeks=i), start + timedelta(weeks=i + 1)),
            now,
        )
        for i in range(weeks)
    ]
    for name in ("coached_in_window", "missed", "decided", "reviews_decided", "reviews_on_time", "waived"):
        assert sum(getattr(p, name) for p in parts) == getattr(whole, name), name
    assert whole.decided <= len(cases)
    for m in [whole, *parts]:
        assert m.hit_rate is None or 0 <= m.hit_rate <= 1
        assert m.review_rate is None or 0 <= m.review_rate <= 1
