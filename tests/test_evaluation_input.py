"""`parse_evaluation` recognises a valid payload cheaply and reads any other field by field: both
ways give the same answer, the same evaluation or the same errors, for any payload."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.contract import evaluation_examples
from bot.evaluation_input import (
    MAX_AT_SECONDS,
    EvaluationInput,
    PayloadErrors,
    _parse_common,
    _parse_precisely,
    parse_evaluation,
)
from tests.payloads import evaluation

CSV_LIKE: dict[str, Any] = {
    "source": "bench-export",
    "items": [
        {"max_score": 4.0, "key": "greet", "name": "Greets the customer", "score": 1.0},
        {"max_score": 4.0, "key": "verify", "name": "Verifies identity", "score": 4.0},
    ],
    "max_score": 100.0,
    "id": "r0",
    "agent": {"email": "Agent38@Example.com "},
    "score": 65.0,
    "landed_at": "2026-07-25T12:48:20Z",
}
PAYLOADS = [evaluation(), CSV_LIKE, *evaluation_examples().values()]

# Values at and around every limit and type the checks draw a line at.
TRICKY: list[Any] = [
    None, "", " ", "x", "a@b", "no-at", "x" * 40, "x" * 41, "x" * 64, "x" * 65, "x" * 100, "x" * 101,
    "@" + "x" * 199, "x" * 201, "@" + "x" * 319, "x" * 321, "x" * 500, "x" * 501, "x" * 2000, "x" * 2001,
    "x" * 3000, "x" * 3001, "nul \x00 inside", "lone \ud800", "\udfff", "\ud7ff hangul", "é", "😀",
    "\\u0000", "\\ud800", 0, 1, -1, 0.0, -0.0, 2.5, -2.5, 4, 5, 5.0, 100, 101, 1e308, 1.8e308, 10**400,
    -(10**400), 2**1023, 2**1024, float("nan"), float("inf"), float("-inf"), True, False, MAX_AT_SECONDS,
    MAX_AT_SECONDS + 1, 2**40, [], ["x"], {}, {"x": 1}, {"email": "a@b"}, {"\x00": 1}, [{"key": "k"}],
    "2026-11-23T14:02:00Z", "2026-11-23T14:02:00+00:00", "2026-11-23T14:02:00+05:30", "2026-11-23T14:02:00",
    "2026-11-23", "2026-11-23T14:02:00ZZ", "yesterday at noon", "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "1970-01-01T00:30:00+01:00",
    "2100-01-01T00:30:00+01:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "2026-11-23T14:02:00.123456Z",
]  # fmt: skip
FIELDS = ["id", "source", "agent", "evaluator", "scorecard", "contact", "score", "max_score", "landed_at",
          "updated_at", "items", "extra", "\x00", "agent.email", "agent.name", "evaluator.email",
          "evaluator.name", "scorecard.id", "scorecard.name", "contact.id", "contact.channel", "contact.url",
          "contact.started_at", "contact.other"]  # fmt: skip
ITEM_FIELDS = ["key", "name", "category", "score", "max_score", "weight", "critical", "comment", "at_seconds",
               "good_looks_like", "other"]  # fmt: skip
DELETE = object()


def outcome(parse: Any, payload: Any) -> tuple[Any, ...]:
    try:
        parsed = parse(payload)
    except PayloadErrors as exc:
        return ("refused", exc.errors)
    assert parsed.raw is payload
    try:
        stored = json.dumps(payload, sort_keys=True)
    except TypeError:  # e.g. keys that cannot be sorted: no hash either way
        pass
    else:
        assert parsed.raw_json == stored
    fields = {k: v for k, v in vars(parsed).items() if k not in ("raw", "_raw_json")}
    fields["items"] = [vars(item) for item in parsed.items]
    return ("accepted", repr(fields), parsed)


def assert_same(payload: Any) -> None:
    precise = outcome(_parse_precisely, copy.deepcopy(payload))
    either = outcome(parse_evaluation, copy.deepcopy(payload))
    assert either[:2] == precise[:2]
    if precise[0] == "accepted":
        assert either[2] == precise[2]
        assert type(either[2]) is EvaluationInput


def changed(payload: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    for where, value in changes:
        node: Any = out
        *parents, last = where.split(".")
        for part in parents:
            if part.startswith("items["):
                items = node.get("items")
                index = int(part[6:-1])
                if not isinstance(items, list) or index >= len(items) or not isinstance(items[index], dict):
                    break
                node = items[index]
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
        else:
            if value is DELETE:
                node.pop(last, None)
            else:
                node[last] = copy.deepcopy(value)
    return out


def test_a_valid_payload_takes_the_cheap_way() -> None:
    for payload in PAYLOADS:
        parsed = _parse_common(copy.deepcopy(payload))
        assert parsed is not None
        assert parsed == _parse_precisely(copy.deepcopy(payload))


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
@pytest.mark.parametrize("value", [*TRICKY, DELETE], ids=lambda v: "delete" if v is DELETE else repr(v)[:30])
def test_every_field_set_to_a_tricky_value_gets_the_same_answer(index: int, value: Any) -> None:
    payload = PAYLOADS[index]
    paths = FIELDS + [f"items[{i}].{f}" for i in range(len(payload["items"])) for f in ITEM_FIELDS]
    for where in paths:
        assert_same(changed(payload, [(where, value)]))


def test_odd_shapes_get_the_same_answer() -> None:
    odd: list[Any] = [
        None, [], "body", 5, {}, {"items": None}, {**CSV_LIKE, "items": [{}]}, {**CSV_LIKE, "items": [None]},
        {**CSV_LIKE, "items": ["x"]}, {**CSV_LIKE, "items": ({"key": "k"},)}, {**CSV_LIKE, 5: "int key"},
        {**CSV_LIKE, "items": [*CSV_LIKE["items"], CSV_LIKE["items"][0]]},  # a repeated key
        {**CSV_LIKE, "score": 100.0, "max_score": 0}, {**CSV_LIKE, "score": 0, "max_score": 0.0},
        {**CSV_LIKE, "nested": [[["\x00"]]]}, {**CSV_LIKE, "nested": ("\x00",)},
    ]  # fmt: skip
    for payload in odd:
        assert_same(payload)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    st.sampled_from(range(len(PAYLOADS))),
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(FIELDS),
                st.builds(lambda i, f: f"items[{i}].{f}", st.integers(0, 2), st.sampled_from(ITEM_FIELDS)),
            ),
            st.one_of(st.sampled_from([*TRICKY, DELETE]), st.text(max_size=8), st.floats(), st.integers()),
        ),
        max_size=4,
    ),
)
def test_random_changes_get_the_same_answer(index: int, changes: list[tuple[str, Any]]) -> None:
    assert_same(changed(PAYLOADS[index], changes))
