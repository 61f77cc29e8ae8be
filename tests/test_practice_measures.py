"""The practice measures pinned on hand-made facts: squeezed-out blocks, calibration, agent-proposed share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.measures import (
    STRUCTURE,
    BlockFacts,
    CaseFacts,
    Period,
    RatingFacts,
    leader_practice,
    practice_line,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)
PERIOD = Period(T0, T0 + timedelta(weeks=4))
ALL = frozenset(STRUCTURE)


def case(id: int, leader: str, agreed_day: int | None, proposed: bool = False) -> CaseFacts:
    at = T0 + timedelta(days=agreed_day) if agreed_day is not None else None
    return CaseFacts(
        id=id,
        team="Billing",
        leader=leader,
        agent=f"agent{id}",
        kind="performance",
        state="agreed" if at else "awaiting_conversation",
        opened_at=T0,
        landed_at=T0,
        due_at=T0 + timedelta(days=7),
        agreed_at=at,
        agent_proposed=proposed,
    )


def test_leader_practice_on_hand_made_facts() -> None:
    cases = [
        case(1, "Priya", 1, proposed=True),
        case(2, "Priya", 2),
        case(3, "Priya", 3, proposed=True),
        case(4, "Priya", 40, proposed=True),  # agreed after the period: not counted
        case(5, "Marcus", 5),
        case(6, "Marcus", None),  # never agreed
    ]
    blocks = [
        BlockFacts("Priya", T0 + timedelta(days=1), "squeezed"),
        BlockFacts("Priya", T0 + timedelta(days=3), "held"),
        BlockFacts("Priya", T0 + timedelta(days=8), "clear"),
        BlockFacts("Priya", T0 + timedelta(days=9), "open"),  # not ended yet: not counted
        BlockFacts("Priya", T0 - timedelta(days=1), "squeezed"),  # before the period
        BlockFacts("Marcus", T0 + timedelta(days=2), "squeezed"),
        BlockFacts("Marcus", T0 + timedelta(days=9), "squeezed"),
    ]
    agreed = {c.id: c.agreed_at for c in cases}

    def rating(case_id: int, leader: str, rater: str, met: frozenset[str]) -> RatingFacts:
        at = agreed[case_id]
        assert at is not None
        return RatingFacts(case_id, leader, at, rater, met)

    ratings = [
        # Plan 1: two raters, both find all four parts: meets; 4 comparisons, 4 agree.
        rating(1, "Priya", "lee", ALL),
        rating(1, "Priya", "dana", ALL),
        # Plan 2: two raters disagree on one part: does not meet; 4 comparisons, 3 agree.
        rating(2, "Priya", "lee", ALL),
        rating(2, "Priya", "dana", ALL - {"agents_action"}),
        # Plan 3: one rater, all four parts: meets; no comparison.
        rating(3, "Priya", "lee", ALL),
        # Plan 5 (Marcus): three raters; parts met differ: 3 pairs x 4 parts = 12 comparisons.
        rating(5, "Marcus", "lee", ALL),
        rating(5, "Marcus", "dana", frozenset({"one_behaviour"})),
        rating(5, "Marcus", "kim", frozenset({"one_behaviour", "specific_example"})),
    ]
    got = leader_practice(cases, blocks, ratings, PERIOD)
    priya, marcus = got["Priya"], got["Marcus"]
    assert (priya.blocks, priya.squeezed) == (3, 1)
    assert (priya.plans_rated, priya.plans_meeting, priya.structure_share) == (3, 2, 2 / 3)
    assert (priya.comparisons, priya.agreements) == (8, 7)
    assert (priya.agreed, priya.proposed) == (3, 2)
    assert (marcus.blocks, marcus.squeezed) == (2, 2)
    assert (marcus.plans_rated, marcus.plans_meeting) == (1, 0)
    # lee/dana agree on one_behaviour only (1); lee/kim on one_behaviour and specific_example (2);
    # dana/kim on one_behaviour, dated_action, agents_action (3): 6 of 12.
    assert (marcus.comparisons, marcus.agreements, marcus.rater_agreement) == (12, 6, 0.5)
    assert (marcus.agreed, marcus.proposed, marcus.proposed_share) == (1, 0, 0.0)
    assert practice_line(priya) == (
        "blocks squeezed out 1/3 · plans meeting the structure 67% (2/3) · rater agreement 88% · "
        "actions the agent proposed 67% (2/3)"
    )


def test_no_facts_no_figures() -> None:
    assert leader_practice([], [], [], PERIOD) == {}
    lp = leader_practice([case(1, "Priya", 1)], [], [], PERIOD)["Priya"]
    assert (lp.structure_share, lp.rater_agreement, lp.proposed_share) == (None, None, 0.0)
    assert "plans meeting the structure – (0/0)" in practice_line(lp)
