"""Which behaviour to coach: the highest-leverage missed criterion, with its reason in words.

Critical (auto-fail) misses come first; then weight x shortfall, raised by
recurrence across the agent's recent evaluations. Criteria already under an
agreed, unreviewed action are skipped unless critical. Ties go to the newest
evidence.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

RECURRENCE_BOOST = 0.5


@dataclass(frozen=True)
class Observation:
    """One scorecard item as scored in one evaluation."""

    evaluation_id: int
    landed_at: datetime
    key: str
    name: str
    score: float
    max_score: float
    weight: float = 1.0
    critical: bool = False

    @property
    def missed(self) -> bool:
        return self.score < self.max_score

    @property
    def shortfall(self) -> float:
        return 0.0 if self.max_score <= 0 else max(0.0, 1.0 - self.score / self.max_score)


@dataclass(frozen=True)
class Pick:
    key: str
    name: str
    leverage: float
    critical: bool
    misses: int
    scored: int
    evidence: Observation
    reason: str


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def describe(critical: bool, misses: int, scored: int, newest: Observation) -> str:
    parts = []
    if critical:
        parts.append("critical item missed")
    if scored > 1:
        if misses == scored:
            parts.append(f"missed in all of the last {scored} evaluations")
        else:
            parts.append(f"missed in {misses} of the last {scored} evaluations")
    else:
        parts.append("missed on this evaluation")
    score = f"{newest.score:g} of {newest.max_score:g}"
    parts.append(f"scored {score}, weight {newest.weight:g}")
    return "; ".join(parts)


def rank(
    observations: list[Observation],
    *,
    under_action: frozenset[str] = frozenset(),
    window: int = 8,
) -> list[Pick]:
    """Rank the missed criteria in the agent's `window` most recent evaluations."""
    recent_ids = sorted({(o.landed_at, o.evaluation_id) for o in observations}, reverse=True)[:window]
    keep = {eid for _, eid in recent_ids}
    by_key: dict[str, list[Observation]] = defaultdict(list)
    for o in observations:
        if o.evaluation_id in keep:
            by_key[o.key].append(o)

    picks = []
    for key, seen in by_key.items():
        misses = [o for o in seen if o.missed]
        if not misses:
            continue
        newest = max(misses, key=lambda o: (o.landed_at, o.evaluation_id))
        critical = any(o.critical for o in misses)
        if key in under_action and not critical:
            continue
        scored = len({o.evaluation_id for o in seen})
        missed_in = len({o.evaluation_id for o in misses})
        leverage = newest.weight * newest.shortfall * (1 + RECURRENCE_BOOST * (missed_in - 1))
        picks.append(
            Pick(
                key=key,
                name=newest.name,
                leverage=round(leverage, 6),
                critical=critical,
                misses=missed_in,
                scored=scored,
                evidence=newest,
                reason=describe(critical, missed_in, scored, newest),
            )
        )
    picks.sort(
        key=lambda p: (p.critical, p.leverage, p.evidence.landed_at, p.evidence.evaluation_id),
        reverse=True,
    )
    return picks
