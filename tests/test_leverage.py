"""Leverage ranking on hand-made observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.leverage import Observation, rank

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def obs(
    ev: int,
    key: str,
    score: float,
    max_score: float = 5,
    weight: float = 1,
    critical: bool = False,
    days: int = 0,
) -> Observation:
    return Observation(
        ev, T0 + timedelta(days=days or ev), key, key.title(), score, max_score, weight, critical
    )


def test_critical_miss_beats_a_heavier_one() -> None:
    picks = rank([obs(1, "verify", 4, critical=True), obs(1, "empathy", 0, weight=10)])
    assert [p.key for p in picks] == ["verify", "empathy"]
    assert picks[0].reason.startswith("critical item missed")


def test_weight_times_shortfall() -> None:
    picks = rank([obs(1, "a", 0, weight=1), obs(1, "b", 3, weight=3), obs(1, "c", 4, weight=2)])
    # a: 1*1.0 = 1.0; b: 3*0.4 = 1.2; c: 2*0.2 = 0.4
    assert [(p.key, p.leverage) for p in picks] == [("b", 1.2), ("a", 1.0), ("c", 0.4)]


def test_recurrence_raises_leverage_and_is_said() -> None:
    history = [obs(1, "a", 2), obs(2, "a", 5), obs(3, "a", 2), obs(4, "a", 2), obs(4, "b", 0)]
    picks = rank(history)
    a = next(p for p in picks if p.key == "a")
    assert (a.misses, a.scored) == (3, 4)
    assert a.reason.startswith("missed in 3 of the last 4 evaluations")
    # 1 * 0.6 * (1 + 0.5 * 2) = 1.2 beats b's single miss at 1.0
    assert picks[0].key == "a" and a.leverage == 1.2


def test_passed_criteria_are_not_candidates() -> None:
    assert rank([obs(1, "a", 5), obs(1, "b", 5)]) == []


def test_under_action_is_skipped_unless_critical() -> None:
    observations = [obs(1, "a", 0, weight=5), obs(1, "b", 0), obs(1, "c", 0, critical=True)]
    picks = rank(observations, under_action=frozenset({"a", "c"}))
    assert [p.key for p in picks] == ["c", "b"]


def test_ties_go_to_the_newest_evidence() -> None:
    picks = rank([obs(1, "old", 0, days=1), obs(2, "new", 0, days=2)])
    assert [p.key for p in picks] == ["new", "old"]


def test_only_the_recent_window_counts() -> None:
    history = [obs(i, "a", 0) for i in range(1, 6)] + [obs(i, "a", 5) for i in range(6, 9)]
    pick = rank(history, window=3)
    assert pick == []
    pick = rank(history, window=8)[0]
    assert (pick.misses, pick.scored) == (5, 8)


def test_evidence_is_the_newest_miss() -> None:
    picks = rank([obs(1, "a", 0), obs(2, "a", 3), obs(3, "a", 5)])
    assert picks[0].evidence.evaluation_id == 2
    assert "scored 3 of 5" in picks[0].reason
