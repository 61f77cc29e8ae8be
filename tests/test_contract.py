"""The published OpenAPI document and the webhook's validator agree: every example is accepted,
and every violation generated from the schema is refused with the path the document names."""

from __future__ import annotations

import copy
import json
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bot.contract import evaluation_examples, openapi_document
from bot.evaluation_input import PayloadErrors, parse_evaluation
from tests.conftest import Stack

MISSING = object()
DOC = openapi_document()


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def bad_values(schema: dict[str, Any]) -> Iterator[Any]:
    """Values that break one rule of `schema` each."""
    kind = schema.get("type")
    if kind == "string":
        yield 123
        if "maxLength" in schema:
            yield "@" + "x" * schema["maxLength"]
        if schema.get("minLength"):
            yield ""
        if schema.get("format") == "date-time":
            yield "yesterday at noon"
            yield "2026-11-23T14:02:00"  # no UTC offset
        if schema.get("pattern") == "@":
            yield "not-an-address"
    elif kind == "number":
        yield "12"
        yield True
        if "minimum" in schema:
            yield schema["minimum"] - 1
        if "exclusiveMinimum" in schema:
            yield schema["exclusiveMinimum"]
    elif kind == "integer":
        yield 1.5
        yield "12"
        if "minimum" in schema:
            yield schema["minimum"] - 1
    elif kind == "boolean":
        yield "yes"
    elif kind in ("object", "array"):
        yield "a string"


def violations(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[list[Any], Any, str]]:
    """(where in the payload, the bad value or MISSING, the path the refusal must name)."""
    schema = resolve(schema)
    if schema.get("type") == "object":
        for name, sub in schema.get("properties", {}).items():
            where = f"{path}.{name}" if path else name
            if name in schema.get("required", []):
                yield [name], MISSING, where
            for bad in bad_values(resolve(sub)):
                yield [name], bad, where
            if isinstance(value, dict) and name in value:
                for keys, bad, inner in violations(sub, value[name], where):
                    yield [name, *keys], bad, inner
    elif schema.get("type") == "array" and isinstance(value, list) and value:
        for keys, bad, inner in violations(schema["items"], value[0], f"{path}[0]"):
            yield [0, *keys], bad, inner


def with_violation(payload: dict[str, Any], keys: list[Any], bad: Any) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    node: Any = changed
    for key in keys[:-1]:
        node = node[key]
    if bad is MISSING:
        del node[keys[-1]]
    else:
        node[keys[-1]] = bad
    return changed


def schema_validator() -> Draft202012Validator:
    root = {"$ref": "#/components/schemas/EvaluationV1", "components": DOC["components"]}
    return Draft202012Validator(root)


def dotted(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


SCHEMA = DOC["components"]["schemas"]["EvaluationV1"]
FULL = evaluation_examples()["full"]
CASES = list(violations(SCHEMA, FULL, ""))


def test_the_document_is_openapi_3_1_with_examples() -> None:
    assert DOC["openapi"].startswith("3.1")
    assert set(evaluation_examples()) >= {"full", "minimal"}
    assert len(CASES) > 60  # every field of the full example yields its violations


@pytest.mark.parametrize("name", sorted(evaluation_examples()))
def test_every_example_is_accepted_by_both(name: str) -> None:
    example = evaluation_examples()[name]
    assert list(schema_validator().iter_errors(example)) == []
    parsed = parse_evaluation(example)
    assert parsed.external_id == example["id"]
    assert len(parsed.items) == len(example["items"])


# The same in every process (an object's repr holds its address).
CASE_IDS = [f"{p}={'missing' if b is MISSING else repr(b)}"[:60] for _, b, p in CASES]


@pytest.mark.parametrize(("keys", "bad", "path"), CASES, ids=CASE_IDS)
def test_a_violation_is_refused_by_both_with_the_same_path(keys: list[Any], bad: Any, path: str) -> None:
    payload = with_violation(FULL, keys, bad)
    with pytest.raises(PayloadErrors) as refused:
        parse_evaluation(payload)
    assert path in [e["path"] for e in refused.value.errors]
    by_schema = {dotted(e.absolute_path) for e in schema_validator().iter_errors(payload)}
    if bad is MISSING:  # a missing property is reported on its parent object
        by_schema = {
            dotted([*e.absolute_path, keys[-1]])
            for e in schema_validator().iter_errors(payload)
            if e.validator == "required"
        }
    assert path in by_schema


def test_the_document_is_served(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.url}/openapi.json", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert json.loads(resp.read()) == DOC


@pytest.mark.parametrize("name", sorted(evaluation_examples()))
def test_every_example_is_accepted_by_the_webhook(stack: Stack, name: str) -> None:
    example = evaluation_examples()[name]
    # The examples are dated; the webhook refuses a score that lands in its future.
    stack.clock.set(datetime.fromisoformat(example["landed_at"]) + timedelta(hours=1))
    status, answer = stack.post_score(example)
    assert status == 202, answer
