"""Zendesk QA (formerly Klaus): its settings in the org file, and a review read as evaluation v1.

The Public Export API gives each review with its ratings, one per rating category; the
workspace's scorecards give each category's scale, weight and description. A rating is
decoded on its category's scale (see `CategoryScale`); a rating without a score is read as "not
applicable" and left out (the published document types `score` as a plain number and marks no
rating not applicable: this is a reading, see the README). No HTTP here: the client lives in
`connectors.zendesk_qa`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SOURCE = "zendesk-qa"


@dataclass(frozen=True)
class ZendeskQASpec:
    """The org file's `zendesk_qa:` section."""

    subdomain: str
    workspaces: tuple[str, ...]
    poll_every_minutes: int = 5
    overlap_minutes: int = 15
    first_poll_days_back: int = 1

    @property
    def base_url(self) -> str:
        return f"https://{self.subdomain}.zendesk.com/qa"


@dataclass(frozen=True)
class CategoryScale:
    """A rating category of a scorecard. `low`..`high` are the ends of its scale: the listed
    rating values when the scorecard lists them, else 1..N read from a scale named like SCALE_N."""

    category_id: str
    name: str
    low: float
    high: float
    weight: float
    critical: bool
    description: str | None

    def decode(self, raw: float) -> tuple[float, float]:
        """(score, max) with the scale's low end at 0; raises ValueError off the scale."""
        if not self.low <= raw <= self.high:
            raise ValueError(f"rating {raw:g} is outside the scale {self.low:g}..{self.high:g}")
        return raw - self.low, self.high - self.low


class UnknownCategory(Exception):
    """A rating names a category the workspace's scorecards do not describe (yet)."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _scale_ends(category: dict[str, Any]) -> tuple[float, float] | None:
    values = [v for r in category.get("ratings") or [] if (v := _number(r.get("rating"))) is not None]
    if len(values) >= 2:
        return min(values), max(values)
    match = re.search(r"(\d+)\s*$", str(category.get("scale") or ""))
    if match and int(match.group(1)) >= 2:
        return 1.0, float(match.group(1))
    return None


def _categories(scorecard: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield from scorecard.get("categories") or []
    for group in scorecard.get("groups") or []:
        yield from group.get("categories") or []


def scales_from(scorecards: Iterable[dict[str, Any]]) -> dict[str, CategoryScale]:
    """Every rating category of the workspace's scorecards (the `data` of the scorecards answer)."""
    found: dict[str, CategoryScale] = {}
    for scorecard in scorecards:
        for category in _categories(scorecard):
            cid = str(category.get("ratingCategoryId") or "")
            ends = _scale_ends(category)
            if not cid or ends is None:
                continue
            found[cid] = CategoryScale(
                category_id=cid,
                name=str(category.get("name") or cid),
                low=ends[0],
                high=ends[1],
                weight=_number(category.get("weight")) or 1.0,
                critical=bool(category.get("critical")),
                description=(category.get("description") or None),
            )
    return found


def _person(user: Any) -> dict[str, Any]:
    if not isinstance(user, dict):
        return {}
    return {k: user[k] for k in ("email", "name") if isinstance(user.get(k), str) and user[k]}


def _causes(rating: dict[str, Any]) -> str | None:
    causes = [c for c in rating.get("causes") or [] if isinstance(c, str) and c.strip()]
    if not causes and isinstance(rating.get("cause"), str) and rating["cause"].strip():
        causes = [rating["cause"]]
    return "; ".join(causes) or None


def review_to_evaluation(
    conversation: dict[str, Any], review: dict[str, Any], scales: dict[str, CategoryScale]
) -> dict[str, Any]:
    """Evaluation v1 for one review (checked afterwards by `parse_evaluation`, like any other).

    Raises UnknownCategory when a rating's category is missing from `scales`, and ValueError
    when a rating is off its category's scale."""
    items: list[dict[str, Any]] = []
    for rating in review.get("ratings") or []:
        raw = _number(rating.get("score"))
        if raw is None:  # not applicable
            continue
        cid = str(rating.get("categoryId") or "")
        scale = scales.get(cid)
        if scale is None:
            raise UnknownCategory(f"rating category {cid or '(none)'} is not on the workspace's scorecards")
        try:
            got, top = scale.decode(raw)
        except ValueError as exc:
            raise ValueError(f"category {cid}: {exc}") from None
        weight = _number(rating.get("weight"))
        item: dict[str, Any] = {
            "key": cid,
            "name": rating.get("categoryName") or scale.name,
            "score": got,
            "max_score": top,
            "weight": scale.weight if weight is None else weight,
            "critical": bool(rating.get("critical")) or scale.critical,
        }
        optional = {
            "category": rating.get("groupName") or None,
            "comment": _causes(rating),
            "good_looks_like": scale.description,
        }
        items.append(item | {k: v for k, v in optional.items() if v})
    score: float | None = _number(review.get("score"))
    if score is None and items:
        weights = sum(i["weight"] for i in items) or 1.0
        score = 100.0 * sum(i["weight"] * i["score"] / i["max_score"] for i in items) / weights
    evaluation: dict[str, Any] = {
        "id": str(review.get("id") or ""),
        "source": SOURCE,
        "agent": _person(review.get("reviewee")),
        "score": score,
        "max_score": 100.0,
        "landed_at": review.get("createdISO"),
        "items": items,
    }
    if review.get("updatedISO"):
        evaluation["updated_at"] = review["updatedISO"]
    if evaluator := _person(review.get("reviewer")):
        evaluation["evaluator"] = evaluator
    scorecard = review.get("scorecard") or {}
    if isinstance(scorecard, dict) and scorecard.get("id"):
        evaluation["scorecard"] = {"id": str(scorecard["id"]), "name": scorecard.get("name") or None}
        evaluation["scorecard"] = {k: v for k, v in evaluation["scorecard"].items() if v}
    contact = {
        "id": conversation.get("externalId") or None,
        "url": conversation.get("externalUrl") or conversation.get("url") or None,
        "started_at": conversation.get("createdAtISO") or None,
    }
    if any(contact.values()):
        evaluation["contact"] = {k: v for k, v in contact.items() if v}
    return evaluation
