"""Validation of the inbound "evaluation v1" payload, with an error per field path."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
MAX_AT_SECONDS = 2**31 - 1  # the column's range
_LARGEST_FLOAT = sys.float_info.max
UNSTORABLE = "contains a NUL character or a lone surrogate (\\ud800-\\udfff), which cannot be stored"


@dataclass(frozen=True)
class ItemInput:
    key: str
    name: str
    score: float
    max_score: float
    category: str | None = None
    weight: float = 1.0
    critical: bool = False
    comment: str | None = None
    at_seconds: int | None = None
    good_looks_like: str | None = None


@dataclass(frozen=True)
class EvaluationInput:
    external_id: str
    source: str
    agent_email: str
    agent_name: str | None
    evaluator_email: str | None
    evaluator_name: str | None
    scorecard_id: str | None
    scorecard_name: str | None
    score: float
    max_score: float
    landed_at: datetime
    contact_id: str | None
    contact_channel: str | None
    contact_started_at: datetime | None
    contact_url: str | None
    items: tuple[ItemInput, ...]
    raw: dict[str, Any] = field(compare=False)
    updated_at: datetime | None = None  # the platform's version time: an older version changes nothing
    _raw_json: str | None = field(default=None, init=False, compare=False, repr=False)  # set by parsing

    @property
    def raw_json(self) -> str:
        """`raw` as JSON text with sorted keys: what is stored, and what `content_hash` digests."""
        known = self._raw_json
        return json.dumps(self.raw, sort_keys=True) if known is None else known

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.raw_json.encode()).hexdigest()


class PayloadErrors(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} error(s) in the evaluation")
        self.errors = errors


class _Reader:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append({"path": path, "message": message})

    def obj(self, data: Any, path: str, *, required: bool) -> dict[str, Any]:
        if data is None:
            if required:
                self.fail(path, "is required")
            return {}
        if not isinstance(data, dict):
            self.fail(path, "must be an object")
            return {}
        return data

    def text(
        self, data: dict[str, Any], key: str, path: str, *, required: bool, limit: int = 2000
    ) -> str | None:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None or value == "":
            if required:
                self.fail(where, "is required")
            return None
        if not isinstance(value, str):
            self.fail(where, "must be a string")
            return None
        if len(value) > limit:
            self.fail(where, f"must be at most {limit} characters")
            return None
        return value

    def number(self, data: dict[str, Any], key: str, path: str, *, required: bool) -> float | None:
        value = data.get(key)
        where = f"{path}.{key}" if path else key
        if value is None:
            if required:
                self.fail(where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, "must be a number")
            return None
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            self.fail(where, "must be a finite number (at most about 1.8e308)")
            return None
        if value < 0:
            self.fail(where, "must not be negative")
            return None
        return float(value)

    def timestamp(self, data: dict[str, Any], key: str, path: str, *, required: bool) -> datetime | None:
        raw = self.text(data, key, path, required=required, limit=64)
        where = f"{path}.{key}" if path else key
        if raw is None:
            return None
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            self.fail(where, "must be an ISO 8601 timestamp such as 2026-11-23T14:02:00Z")
            return None
        if value.tzinfo is None:
            self.fail(where, "must carry a UTC offset (Z or +01:00)")
            return None
        try:
            in_range = EARLIEST <= value.astimezone(UTC) < LATEST
        except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
            in_range = False
        if not in_range:
            self.fail(where, "must be between 1970 and 2100 (UTC)")
            return None
        return value

    def storable(self, data: Any, path: str) -> None:
        """Every string (keys too) anywhere in the payload must be storable text on every database.
        One pass over the payload's JSON text clears almost every payload; a suspect one is walked to
        name the field."""
        if not _all_storable(data):
            self._find_unstorable(data, path)

    def _find_unstorable(self, data: Any, path: str) -> None:
        if isinstance(data, str):
            if not _storable_text(data):
                self.fail(path, UNSTORABLE)
        elif isinstance(data, dict):
            for key, value in data.items():
                self._find_unstorable(key, path)
                self._find_unstorable(value, f"{path}.{key}" if path else str(key))
        elif isinstance(data, list):
            for i, value in enumerate(data):
                self._find_unstorable(value, f"{path}[{i}]")


def _all_storable(data: Any) -> bool:
    """True when no string in `data` holds a NUL or a lone surrogate (may say False for a clean one)."""
    try:
        text = json.dumps(data, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return "\\u0000" not in text and _storable_text(text)


def _storable_text(text: str) -> bool:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (no database can encode it)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_evaluation(data: Any) -> EvaluationInput:
    """Check an evaluation payload; raises PayloadErrors listing every problem at once.

    A payload that passes every check is recognised cheaply; any other is read by the precise
    path, which names each problem."""
    if type(data) is dict:
        parsed = _parse_common(data)
        if parsed is not None:
            return parsed
    return _parse_precisely(data)


def _parse_precisely(data: Any) -> EvaluationInput:
    """Every check, field by field, collecting each problem with its path."""
    r = _Reader()
    if not isinstance(data, dict):
        raise PayloadErrors([{"path": "", "message": "the body must be a JSON object"}])
    r.storable(data, "")
    if r.errors:
        raise PayloadErrors(r.errors)
    external_id = r.text(data, "id", "", required=True, limit=200)
    source = r.text(data, "source", "", required=False, limit=100) or "webhook"
    agent = r.obj(data.get("agent"), "agent", required=True)
    agent_email = r.text(agent, "email", "agent", required=True, limit=320)
    if agent_email and "@" not in agent_email:
        r.fail("agent.email", "must be an email address")
    evaluator = r.obj(data.get("evaluator"), "evaluator", required=False)
    scorecard = r.obj(data.get("scorecard"), "scorecard", required=False)
    contact = r.obj(data.get("contact"), "contact", required=False)
    score = r.number(data, "score", "", required=True)
    max_score = r.number(data, "max_score", "", required=True)
    if max_score == 0:
        r.fail("max_score", "must be greater than 0")
    if score is not None and max_score is not None and score > max_score:
        r.fail("score", f"must not exceed max_score ({max_score:g})")
    landed_at = r.timestamp(data, "landed_at", "", required=True)
    started_at = r.timestamp(contact, "started_at", "contact", required=False)
    updated_at = r.timestamp(data, "updated_at", "", required=False)

    items: list[ItemInput] = []
    raw_items = data.get("items")
    if raw_items is None:
        r.fail("items", "is required")
    elif not isinstance(raw_items, list):
        r.fail("items", "must be a list")
    else:
        seen: set[str] = set()
        for i, raw_item in enumerate(raw_items):
            path = f"items[{i}]"
            item = r.obj(raw_item, path, required=True)
            if not item:
                continue
            key = r.text(item, "key", path, required=True, limit=200)
            name = r.text(item, "name", path, required=True, limit=500)
            iscore = r.number(item, "score", path, required=True)
            imax = r.number(item, "max_score", path, required=True)
            if iscore is not None and imax is not None and iscore > imax:
                r.fail(f"{path}.score", f"must not exceed max_score ({imax:g})")
            if imax == 0:
                r.fail(f"{path}.max_score", "must be greater than 0")
            weight = r.number(item, "weight", path, required=False)
            critical = item.get("critical", False)
            if not isinstance(critical, bool):
                r.fail(f"{path}.critical", "must be true or false")
            at_seconds = item.get("at_seconds")
            if at_seconds is not None and (
                isinstance(at_seconds, bool)
                or not isinstance(at_seconds, int)
                or not 0 <= at_seconds <= MAX_AT_SECONDS
            ):
                r.fail(f"{path}.at_seconds", f"must be a whole number of seconds from 0 to {MAX_AT_SECONDS}")
            if key is not None:
                if key in seen:
                    r.fail(f"{path}.key", f"repeats the key {key!r}")
                seen.add(key)
            category = r.text(item, "category", path, required=False, limit=200)
            comment = r.text(item, "comment", path, required=False, limit=3000)
            good = r.text(item, "good_looks_like", path, required=False, limit=3000)
            if key and name and iscore is not None and imax is not None:
                items.append(
                    ItemInput(
                        key=key,
                        name=name,
                        score=iscore,
                        max_score=imax,
                        category=category,
                        weight=1.0 if weight is None else weight,
                        critical=critical is True,
                        comment=comment,
                        at_seconds=at_seconds if isinstance(at_seconds, int) else None,
                        good_looks_like=good,
                    )
                )
    # Optional fields are read before the verdict, so a wrong type is refused, never dropped.
    optional = {
        "agent_name": r.text(agent, "name", "agent", required=False, limit=200),
        "evaluator_email": r.text(evaluator, "email", "evaluator", required=False, limit=320),
        "evaluator_name": r.text(evaluator, "name", "evaluator", required=False, limit=200),
        "scorecard_id": r.text(scorecard, "id", "scorecard", required=False, limit=200),
        "scorecard_name": r.text(scorecard, "name", "scorecard", required=False, limit=200),
        "contact_id": r.text(contact, "id", "contact", required=False, limit=200),
        "contact_channel": r.text(contact, "channel", "contact", required=False, limit=40),
        "contact_url": r.text(contact, "url", "contact", required=False, limit=2000),
    }
    if r.errors:
        raise PayloadErrors(r.errors)
    assert external_id and agent_email and score is not None and max_score is not None and landed_at
    return EvaluationInput(
        external_id=external_id,
        source=source,
        agent_email=agent_email.strip().lower(),
        score=score,
        max_score=max_score,
        landed_at=landed_at,
        contact_started_at=started_at,
        items=tuple(items),
        raw=data,
        updated_at=updated_at,
        **optional,
    )


# -- the common case, cheaply ------------------------------------------------------------------------

_NOT_COMMON = object()  # a value the precise path must look at
_LARGEST_INT = 2**1023  # below it, an integer is surely a finite float
_new = object.__new__
# The text of `json.dumps(data, sort_keys=True)`, without building an encoder each time; a payload
# that refers to itself (never one read from JSON) fails with RecursionError instead of ValueError.
_sorted_json = json.JSONEncoder(sort_keys=True, check_circular=False).encode


def _two_texts(part: Any, first: tuple[str, int], second: tuple[str, int]) -> tuple[Any, Any] | None:
    """Two optional texts of an object part (name, limit each), or None when either is not plain."""
    if type(part) is not dict:
        return None
    a, b = _opt_text(part, *first), _opt_text(part, *second)
    return None if a is _NOT_COMMON or b is _NOT_COMMON else (a, b)


def _opt_text(data: dict[str, Any], key: str, limit: int) -> Any:
    """An optional text field's value (None when absent or empty), or _NOT_COMMON."""
    value = data.get(key)
    if value is None:
        return None
    if type(value) is str and len(value) <= limit:
        return value or None
    return _NOT_COMMON


def _opt_time(value: Any) -> Any:
    """An optional timestamp's value (None when empty), or _NOT_COMMON."""
    return None if value == "" else _time(value)


def _time(raw: Any) -> Any:
    """A timestamp with its offset, in range, or _NOT_COMMON."""
    if type(raw) is not str or len(raw) > 64:
        return _NOT_COMMON
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        # Comparing aware times compares their instants, as converting to UTC first does.
        if value.tzinfo is None or not EARLIEST <= value < LATEST:
            return _NOT_COMMON
    except (ValueError, OverflowError):
        return _NOT_COMMON
    return value


def _number(value: Any) -> float | None:
    """A finite, non-negative number as a float, or None."""
    kind = type(value)
    if kind is float:
        return value if 0.0 <= value <= _LARGEST_FLOAT else None
    if kind is int:
        return float(value) if 0 <= value < _LARGEST_INT else None
    return None


def _parse_common(data: dict[str, Any]) -> EvaluationInput | None:
    """The evaluation when it passes every check of `_parse_precisely`, judged without collecting
    errors; None when anything is wrong or out of the ordinary, for the precise path to say what.
    Returns only what `_parse_precisely` would return (tests compare the two)."""
    try:
        text = _sorted_json(data)
    except (TypeError, ValueError, RecursionError):
        return None
    # Every character outside ASCII is escaped: with no NUL and no code point from U+D000 up to the
    # end of the surrogates, every string is storable text.
    if "\\u0000" in text or "\\ud" in text:
        return None
    get = data.get
    external_id = get("id")
    if type(external_id) is not str or not external_id or len(external_id) > 200:
        return None
    source = get("source")
    if source is not None and (type(source) is not str or len(source) > 100):
        return None
    agent = get("agent")
    if type(agent) is not dict:
        return None
    agent_email = agent.get("email")
    if type(agent_email) is not str or not 0 < len(agent_email) <= 320 or "@" not in agent_email:
        return None
    score, max_score = _number(get("score")), _number(get("max_score"))
    if score is None or max_score is None or max_score == 0 or score > max_score:
        return None
    landed_at = _time(get("landed_at"))
    if landed_at is _NOT_COMMON:
        return None
    updated_at = get("updated_at")
    if updated_at is not None:
        updated_at = _opt_time(updated_at)
        if updated_at is _NOT_COMMON:
            return None
    agent_name = None
    if len(agent) > 1:  # more than the email
        agent_name = _opt_text(agent, "name", 200)
        if agent_name is _NOT_COMMON:
            return None
    evaluator_email = evaluator_name = scorecard_id = scorecard_name = None
    contact_id = contact_channel = contact_url = started_at = None
    evaluator, scorecard, contact = get("evaluator"), get("scorecard"), get("contact")
    if evaluator is not None:
        if (pair := _two_texts(evaluator, ("email", 320), ("name", 200))) is None:
            return None
        evaluator_email, evaluator_name = pair
    if scorecard is not None:
        if (pair := _two_texts(scorecard, ("id", 200), ("name", 200))) is None:
            return None
        scorecard_id, scorecard_name = pair
    if contact is not None:
        if type(contact) is not dict:
            return None
        contact_id = _opt_text(contact, "id", 200)
        contact_channel = _opt_text(contact, "channel", 40)
        contact_url = _opt_text(contact, "url", 2000)
        started_at = contact.get("started_at")
        if started_at is not None:
            started_at = _opt_time(started_at)
        if _NOT_COMMON in (contact_id, contact_channel, contact_url, started_at):
            return None

    raw_items = get("items")
    if type(raw_items) is not list:
        return None
    items: list[ItemInput] = []
    seen: set[str] = set()
    for item in raw_items:
        if type(item) is not dict:
            return None
        iget = item.get
        key, name = iget("key"), iget("name")
        if (
            type(key) is not str
            or not 0 < len(key) <= 200
            or key in seen
            or type(name) is not str
            or not 0 < len(name) <= 500
        ):
            return None
        seen.add(key)
        iscore, imax = iget("score"), iget("max_score")
        if type(iscore) is float and type(imax) is float:
            # Finite, not negative, a maximum above 0 and a score within it, in one chain.
            if not 0.0 <= iscore <= imax <= _LARGEST_FLOAT or imax == 0.0:
                return None
        else:
            iscore, imax = _number(iscore), _number(imax)
            if iscore is None or imax is None or imax == 0 or iscore > imax:
                return None
        weight, critical, category, comment, good, at_seconds = 1.0, False, None, None, None, None
        if len(item) > 4:  # more than the four required fields
            raw_weight = iget("weight")
            if raw_weight is not None:
                checked = _number(raw_weight)
                if checked is None:
                    return None
                weight = checked
            critical = iget("critical", False)
            at_seconds = iget("at_seconds")
            category = _opt_text(item, "category", 200)
            comment = _opt_text(item, "comment", 3000)
            good = _opt_text(item, "good_looks_like", 3000)
            if (
                type(critical) is not bool
                or (
                    at_seconds is not None
                    and (type(at_seconds) is not int or not 0 <= at_seconds <= MAX_AT_SECONDS)
                )
                or category is _NOT_COMMON
                or comment is _NOT_COMMON
                or good is _NOT_COMMON
            ):
                return None
        # A frozen dataclass's own __init__ sets each field through object.__setattr__, several times
        # slower than filling the instance's __dict__ at once; the instance is the same.
        parsed_item = _new(ItemInput)
        parsed_item.__dict__.update(
            key=key, name=name, score=iscore, max_score=imax, category=category, weight=weight,
            critical=critical, comment=comment, at_seconds=at_seconds, good_looks_like=good,
        )  # fmt: skip
        items.append(parsed_item)
    evaluation = _new(EvaluationInput)
    evaluation.__dict__.update(
        external_id=external_id, source=source or "webhook", agent_email=agent_email.strip().lower(),
        agent_name=agent_name, evaluator_email=evaluator_email, evaluator_name=evaluator_name,
        scorecard_id=scorecard_id, scorecard_name=scorecard_name, score=score, max_score=max_score,
        landed_at=landed_at, contact_id=contact_id, contact_channel=contact_channel,
        contact_started_at=started_at, contact_url=contact_url, items=tuple(items), raw=data,
        updated_at=updated_at, _raw_json=text,
    )  # fmt: skip
    return evaluation
