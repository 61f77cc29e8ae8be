"""POST /webhooks/qa over HTTP: every answer of the contract, and nothing changed on a refusal."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook

from bot.org import import_org, parse_org
from storage.models import AuditEntry, Case, Evaluation, OutboxMessage
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation


def raw_post(stack: Stack, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(f"{stack.url}/webhooks/qa", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def signed(
    stack: Stack, body: str, *, secret: str | None = None, offset: timedelta = timedelta()
) -> dict[str, str]:
    at = stack.clock.now() + offset
    msg_id = "msg_" + secrets.token_hex(6)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret or stack.services.settings.qa_webhook_secret).sign(
            msg_id, at, body
        ),
        "Content-Type": "application/json",
    }


def counts(stack: Stack) -> tuple[int, int, int, int]:
    with stack.db.unit_of_work() as s:
        return (
            s.query(Evaluation).count(),
            s.query(Case).count(),
            s.query(OutboxMessage).count(),
            s.query(AuditEntry).count(),
        )


def test_new_score_then_repeat_then_revision(stack: Stack) -> None:
    status, first = stack.post_score(evaluation())
    assert status == 202 and first["status"] == "case_opened" and first["case_id"]
    assert stack.post_score(evaluation()) == (200, first)
    before = counts(stack)
    revised = evaluation()
    revised["items"][0]["score"] = 4
    status, answer = stack.post_score(revised)
    assert status == 200 and answer == {**first, "status": "revised"}
    with stack.db.unit_of_work() as s:
        ev = s.get(Evaluation, first["evaluation_id"])
        assert ev is not None and ev.revision == 2 and ev.items[0].score == 4
        assert s.query(AuditEntry).filter_by(action="evaluation_revised").count() == 1
    assert counts(stack)[:2] == before[:2]
    # The leader's DM is re-rendered from the revised evaluation.
    stack.sweep()
    assert "4 of 5" in json.dumps(stack.message("U0PRIYA", "leader_dm")["blocks"])


def test_a_score_is_committed_before_the_answer(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    with stack.db.unit_of_work() as s:
        assert s.get(Evaluation, body["evaluation_id"]) is not None


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda p: p.pop("id"), "id", "is required"),
        (lambda p: p["agent"].pop("email"), "agent.email", "is required"),
        (lambda p: p.update(score=120), "score", "must not exceed max_score"),
        (lambda p: p["items"][0].update(score=-1), "items[0].score", "must not be negative"),
        (lambda p: p["items"][1].update(score=6), "items[1].score", "must not exceed max_score"),
        (lambda p: p.update(landed_at="2026-11-23T14:02:00"), "landed_at", "UTC offset"),
        (lambda p: p.update(landed_at="yesterday"), "landed_at", "ISO 8601"),
        (lambda p: p["items"][0].pop("name"), "items[0].name", "is required"),
        (lambda p: p.update(items="none"), "items", "must be a list"),
        (lambda p: p.update(score="68"), "score", "must be a number"),
    ],
)
def test_schema_violations_get_422_with_the_path(stack: Stack, mutate: Any, path: str, words: str) -> None:
    payload = evaluation()
    mutate(payload)
    before = counts(stack)
    status, body = stack.post_score(payload)
    assert status == 422
    assert any(e["path"] == path and words in e["message"] for e in body["errors"]), body
    assert counts(stack) == before


def test_unknown_fields_are_kept_and_ignored(stack: Stack) -> None:
    payload = evaluation(team_hint="billing")
    status, body = stack.post_score(payload)
    assert status == 202
    with stack.db.unit_of_work() as s:
        ev = s.get(Evaluation, body["evaluation_id"])
        assert ev is not None and ev.raw["team_hint"] == "billing"


def test_not_json_is_400(stack: Stack) -> None:
    before = counts(stack)
    status, body = raw_post(stack, b"{nope", signed(stack, "{nope"))
    assert status == 400 and "not JSON" in body["error"]
    assert counts(stack) == before


@pytest.mark.parametrize(
    "tamper",
    ["missing", "wrong-secret", "stale", "future", "body-changed"],
)
def test_bad_signatures_are_401(stack: Stack, tamper: str) -> None:
    body = json.dumps(evaluation())
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    headers = {
        "missing": {"Content-Type": "application/json"},
        "wrong-secret": signed(stack, body, secret=other),
        "stale": signed(stack, body, offset=-timedelta(minutes=6)),
        "future": signed(stack, body, offset=timedelta(minutes=6)),
        "body-changed": signed(stack, body.replace("68.0", "98.0")),
    }[tamper]
    before = counts(stack)
    status, answer = raw_post(stack, body.encode(), headers)
    assert status == 401 and "signature rejected" in answer["error"]
    assert counts(stack) == before


def test_within_tolerance_is_accepted(stack: Stack) -> None:
    body = json.dumps(evaluation())
    status, _ = raw_post(stack, body.encode(), signed(stack, body, offset=-timedelta(minutes=4)))
    assert status == 202


def test_over_one_mebibyte_is_413(stack: Stack) -> None:
    payload = evaluation(padding="x" * (1024 * 1024))
    body = json.dumps(payload)
    before = counts(stack)
    headers = {**signed(stack, body), "Content-Length": str(len(body))}
    assert stack.status_of_headers("/webhooks/qa", headers) == 413
    assert counts(stack) == before


def test_unknown_agent_is_kept_and_opens_a_case_when_the_org_names_them(stack: Stack) -> None:
    payload = evaluation(id="ev-new-agent")
    payload["agent"] = {"email": "Nia.Cole@example.com", "name": "Nia Cole"}
    status, body = stack.post_score(payload)
    assert status == 202 and body["status"] == "unassigned_agent" and body["case_id"] is None
    assert stack.post_score(payload) == (200, body)

    stack.standin.add_user("U0NIA", "nia.cole@example.com", "Nia Cole")
    org = sample_org().replace(
        "      - {email: ana.ruiz@example.com, name: Ana Ruiz}",
        "      - {email: ana.ruiz@example.com, name: Ana Ruiz}\n      - {email: nia.cole@example.com}",
    )
    spec = parse_org(org)
    from handlers.directory import SlackDirectory

    report = import_org(stack.db, spec, SlackDirectory(stack.services.slack), stack.clock.now())
    assert len(report.cases_opened) == 1
    with stack.db.unit_of_work() as s:
        ev = s.get(Evaluation, body["evaluation_id"])
        assert ev is not None and ev.case_id == report.cases_opened[0] and ev.intake_status == "case_opened"
    stack.sweep()
    assert "Nia Cole" in json.dumps(stack.message("U0PRIYA", "leader_dm")["blocks"])


def test_the_same_score_twice_at_once_is_stored_once(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: stack.post_score(evaluation()), range(4)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 202]
    assert len({body["evaluation_id"] for _, body in answers}) == 1
    assert counts(stack)[:2] == (1, 1)


def test_ops_endpoints(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.url}/healthz") as resp:
        assert resp.read() == b"ok"
    with urllib.request.urlopen(f"{stack.url}/readyz") as resp:
        assert json.loads(resp.read()) == {"ready": True}
    stack.post_score(evaluation())
    with urllib.request.urlopen(f"{stack.url}/metrics") as resp:
        assert 'coachloop_webhooks_total{outcome="case_opened"}' in resp.read().decode()
