"""Hostile input at both doors: every malformed webhook or Slack payload gets a 4xx (or a refusal)
with a precise message, never a 5xx, and changes nothing in the database."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bot.app.demo import sign_webhook
from bot.standin.server import Fault
from storage.models import Base
from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import PRIYA

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def snapshot(stack: Stack) -> dict[str, list[Any]]:
    """Every row of every table, to compare before and after a request."""
    with stack.db.engine.connect() as conn:
        return {
            t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]
            for t in Base.metadata.sorted_tables
        }


def post(stack: Stack, path: str, body: bytes, headers: dict[str, str | bytes]) -> tuple[int, Any]:
    """POST raw bytes with raw header values (bytes go on the wire as they are, e.g. UTF-8)."""
    parsed = urllib.parse.urlparse(stack.url)
    conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
    try:
        conn.putrequest("POST", path)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode("utf-8", "replace")


def post_signed(stack: Stack, body: str) -> tuple[int, Any]:
    headers: dict[str, str | bytes] = dict(
        sign_webhook(stack.services.settings.qa_webhook_secret, body, stack.clock.now())
    )
    return post(stack, "/webhooks/qa", body.encode("utf-8", "surrogatepass"), headers)


def rejected_unchanged(stack: Stack, send: Any) -> tuple[int, Any]:
    before = snapshot(stack)
    status, answer = send()
    assert 400 <= status < 500, (status, answer)
    assert snapshot(stack) == before
    return status, answer


def with_field(path: list[str | int], value: Any) -> dict[str, Any]:
    payload: Any = evaluation()
    target = payload
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return payload


# -- the QA webhook -------------------------------------------------------------------------------


def test_a_non_ascii_signature_header_is_refused_before_anything_else(stack: Stack) -> None:
    body = json.dumps(evaluation())
    headers: dict[str, str | bytes] = dict(
        sign_webhook(stack.services.settings.qa_webhook_secret, body, stack.clock.now())
    )
    headers["webhook-signature"] = "v1,é€".encode()
    status, answer = rejected_unchanged(stack, lambda: post(stack, "/webhooks/qa", body.encode(), headers))
    assert status == 401 and "signature" in answer["error"]


def test_deeply_nested_json_is_a_bad_body(stack: Stack) -> None:
    body = '{"id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    status, answer = rejected_unchanged(stack, lambda: post_signed(stack, body))
    assert status == 400 and "nested" in answer["error"]


def test_nan_and_infinity_are_not_json(stack: Stack) -> None:
    body = json.dumps(evaluation()).replace('"source": "zendesk-qa"', '"source": "zendesk-qa", "extra": NaN')
    status, answer = rejected_unchanged(stack, lambda: post_signed(stack, body))
    assert status == 400 and "NaN" in answer["error"]


@pytest.mark.parametrize(
    ("path", "value", "where"),
    [
        (["score"], 10**400, "score"),
        (["items", 0, "weight"], -(10**400), "items[0].weight"),
        (["agent", "name"], "Ana \ud800", "agent.name"),
        (["contact", "id"], "C-\x00-1", "contact.id"),
        (["items", 0, "comment"], "nul \x00 inside", "items[0].comment"),
        (["landed_at"], "9999-12-31T23:59:59-14:00", "landed_at"),
        (["landed_at"], "0001-01-01T00:00:00+14:00", "landed_at"),
        (["contact", "started_at"], "9999-12-31T23:59:59-14:00", "contact.started_at"),
        (["items", 0, "at_seconds"], 2**40, "items[0].at_seconds"),
        (["contact", "url"], 5, "contact.url"),
        (["evaluator", "name"], ["Lee"], "evaluator.name"),
        (["scorecard", "id"], {"id": 1}, "scorecard.id"),
        (["agent", "name"], 7, "agent.name"),
    ],
)
def test_malformed_fields_get_422_naming_the_field(
    any_stack: Stack, path: list[Any], value: Any, where: str
) -> None:
    body = json.dumps(with_field(path, value), ensure_ascii=True)
    status, answer = rejected_unchanged(any_stack, lambda: post_signed(any_stack, body))
    assert status == 422, answer
    assert where in [e["path"] for e in answer["errors"]], answer


def test_a_nul_in_an_unchecked_field_is_refused_on_every_database(any_stack: Stack) -> None:
    payload = evaluation()
    payload["extra"] = {"note": "a\x00b"}
    status, answer = rejected_unchanged(any_stack, lambda: post_signed(any_stack, json.dumps(payload)))
    assert status == 422 and answer["errors"][0]["path"] == "extra.note"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        ["id"],
        ["source"],
        ["agent"],
        ["agent", "email"],
        ["agent", "name"],
        ["score"],
        ["max_score"],
        ["landed_at"],
        ["contact"],
        ["contact", "url"],
        ["contact", "started_at"],
        ["items"],
        ["items", 0],
        ["items", 0, "score"],
        ["items", 0, "at_seconds"],
        ["items", 0, "comment"],
        ["items", 0, "critical"],
        ["items", 1, "weight"],
        ["evaluator"],
        ["scorecard", "name"],
        ["extra"],
    ]
)


@FUZZ
@given(changes=st.lists(st.tuples(FIELDS, JSON), min_size=1, max_size=3))
def test_fuzzed_signed_bodies_never_get_a_5xx(any_stack: Stack, changes: list[tuple[list[Any], Any]]) -> None:
    payload = evaluation(id="ev-fuzz-" + secrets.token_hex(6))
    for path, value in changes:
        target: Any = payload
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    body = json.dumps(payload, ensure_ascii=bool(secrets.randbelow(2)))
    if not body.isascii() and any("\ud800" <= ch <= "\udfff" for ch in body):
        body = json.dumps(payload)  # a lone surrogate cannot be sent as UTF-8: sent escaped, as JSON allows
    before = snapshot(any_stack)
    status, answer = post_signed(any_stack, body)
    assert status < 500, answer
    if status >= 400:
        assert snapshot(any_stack) == before


# Anything HTTP lets a header carry, non-ASCII (obs-text) included. Control characters are left out:
# the HTTP server refuses those before the app sees the request, and may close the connection unread.
HEADER_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\t"),
    max_size=60,
)


@FUZZ
@given(
    msg_id=st.one_of(st.none(), HEADER_TEXT),
    stamp=st.one_of(st.none(), HEADER_TEXT, st.integers(min_value=-(10**30), max_value=10**30).map(str)),
    signature=st.one_of(st.none(), HEADER_TEXT, HEADER_TEXT.map(lambda t: "v1," + t)),
    body=st.binary(max_size=200) | st.just(json.dumps(evaluation()).encode()),
)
def test_fuzzed_headers_never_get_a_5xx_nor_change_anything(
    stack: Stack, msg_id: str | None, stamp: str | None, signature: str | None, body: bytes
) -> None:
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", stamp),
        ("webhook-signature", signature),
    ):
        if value is not None:
            headers[name] = value.strip().encode()
    rejected_unchanged(stack, lambda: post(stack, "/webhooks/qa", body, headers))


# -- Slack ----------------------------------------------------------------------------------------


def test_slack_events_refuse_a_body_over_1_mib_unread(stack: Stack) -> None:
    body = "payload=" + "x" * (1024 * 1024 + 1)
    stamp = str(int(time.time()))
    signature = stack.people.verifier.generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(body)),
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    before = snapshot(stack)
    assert stack.status_of_headers("/slack/events", headers) == 413
    assert snapshot(stack) == before


def interaction(kind: str, user: str = "U0PRIYA", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": kind,
        "user": {"id": user, "username": "x", "name": "x", "team_id": "T0STANDIN"},
        "api_app_id": "A0COACH",
        "team": {"id": "T0STANDIN"},
        "trigger_id": "1.trigger",
    }
    return {**base, **fields}


def view(callback_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": "V0FUZZ", "hash": "h", "type": "modal", "callback_id": callback_id, **fields}


GARBAGE_PAYLOADS = [
    interaction("block_actions", actions=[]),
    interaction("block_actions", actions=[{"action_id": "open_plan", "value": "99999999999999999999999"}]),
    interaction("block_actions", actions=[{"action_id": "ack_agreement", "value": "-1"}]),
    interaction("block_actions", actions=[{"action_id": "remind_leader", "value": 12}]),
    interaction("block_actions", actions=[{"action_id": "no_such_action"}]),
    interaction("block_actions", actions=[{"action_id": "plan_behaviour"}], view=None),
    interaction(
        "block_actions",
        actions=[{"action_id": "plan_behaviour", "selected_option": None}],
        view=view("coaching_plan", private_metadata='{"case_id": 99999999999999999999}', state=None),
    ),
    interaction(
        "view_submission",
        view=view("coaching_plan", private_metadata='{"case_id": 99999999999999999999}', state=None),
    ),
    interaction("view_submission", view=view("coaching_plan", private_metadata='{"case_id": 1}', state=None)),
    interaction(
        "view_submission", view=view("coaching_plan", private_metadata="[not json", state={"values": None})
    ),
    interaction(
        "view_submission",
        view=view("followup_review", private_metadata='{"case_id": "1"}', state={"values": {"x": None}}),
    ),
    interaction(
        "view_submission", view=view("waive_case", private_metadata='{"case_id": -5}', state={"values": []})
    ),
    interaction("view_submission", view=None),
    interaction("view_submission", view=view("coaching_plan", private_metadata="x" * 100_000)),
]


@pytest.mark.parametrize("payload", GARBAGE_PAYLOADS)
def test_signed_garbage_from_slack_never_gets_a_5xx(stack: Stack, payload: dict[str, Any]) -> None:
    stack.post_score(evaluation())
    before = snapshot(stack)
    status, body = stack.people.interact(payload)
    assert status < 500, body
    assert snapshot(stack) == before


ACTION_IDS = st.sampled_from(
    [
        "open_plan",
        "plan_behaviour",
        "ack_agreement",
        "discuss_agreement",
        "open_review",
        "waive_case",
        "remind_leader",
        "x",
    ]
)
CALLBACKS = st.sampled_from(["coaching_plan", "followup_review", "waive_case", "x"])
METADATA = st.one_of(
    st.text(max_size=50),
    st.integers(min_value=-(10**30), max_value=10**30)
    .filter(lambda n: not 0 < n < 1000)  # never a real case: the fuzz checks refusals
    .map(lambda n: json.dumps({"case_id": n})),
    JSON.map(json.dumps),
)


@FUZZ
@given(
    user=st.sampled_from(["U0NOBODY", "U0PRIYA", "U0ANA", "U0DANA", ""]),
    kind=st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut", "x"]),
    action=st.fixed_dictionaries(
        {"action_id": ACTION_IDS}, optional={"value": JSON, "selected_option": JSON}
    ),
    view_fields=st.fixed_dictionaries(
        {"callback_id": CALLBACKS},
        optional={"private_metadata": METADATA, "state": JSON, "id": JSON, "hash": JSON},
    ),
    drop=st.sets(st.sampled_from(["view", "actions", "user", "trigger_id", "channel"])),
)
def test_fuzzed_signed_interactions_never_get_a_5xx_nor_change_anything(
    stack: Stack, user: str, kind: str, action: dict[str, Any], view_fields: dict[str, Any], drop: set[str]
) -> None:
    if not stack.dm("U0PRIYA"):
        stack.post_score(evaluation())
        stack.sweep()
    payload = interaction(kind, user, actions=[action], view={"type": "modal", **view_fields})
    payload["channel"] = {"id": "DU0PRIYA"}
    for key in drop:
        payload.pop(key, None)
    if isinstance(action.get("value"), str) and action["value"].strip().isdigit():
        action["value"] += "000"  # never a real case: the fuzz checks refusals
    before = snapshot(stack)
    status, body = stack.people.interact(payload)
    assert status < 500, body
    assert snapshot(stack) == before


def test_a_listener_failing_after_its_ack_still_answers_slack_with_the_ack(stack: Stack) -> None:
    """Bolt runs listeners on a thread; one that raises just after ack() must not turn the ack
    Slack is about to receive into a 500 (the user would see a warning on a click that worked)."""
    stack.post_score(evaluation())
    # The form names no case, so the listener acks, then fails to update a view Slack never opened.
    lost_form = interaction(
        "block_actions",
        actions=[{"action_id": "plan_behaviour", "selected_option": None}],
        view=view("coaching_plan", private_metadata="{}", state=None),
    )
    statuses = [stack.people.interact(lost_form)[0] for _ in range(60)]
    assert statuses == [200] * len(statuses)


def test_a_click_that_fails_after_its_ack_tells_the_person(stack: Stack) -> None:
    """The plan modal cannot open (Slack keeps failing views.open): the click was answered, so
    Slack shows nothing; the leader gets a note in the conversation instead of silence."""
    stack.post_score(evaluation())
    stack.sweep()
    stack.standin.add_fault(Fault("views.open", "server_error"))
    channel = stack.standin.dm_of(PRIYA)
    stack.people.click(PRIYA, channel, stack.message(PRIYA, "leader_dm"), "open_plan")
    deadline = time.monotonic() + 10
    while not (notes := stack.standin.calls_to("chat.postEphemeral")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(n.args["channel"], n.args["user"]) for n in notes] == [(channel, PRIYA)]
    assert "could not finish that" in str(notes[0].args["text"])
    assert stack.standin.calls_to("views.open") == []  # no modal opened
