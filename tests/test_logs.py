"""Logs an operator can use: JSON lines with request, case and outbox ids, and never an evaluation
comment, example, note, waive reason, token or secret, even at DEBUG and on error paths."""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from bot.app import logs
from bot.app.demo import sign_webhook
from bot.standin.server import Fault
from storage import logcontext
from storage.db import Database
from storage.models import Case, OutboxMessage
from tests.conftest import MONDAY_AFTERNOON, Stack
from tests.payloads import evaluation

PRIYA, TOM, MARCUS = "U0PRIYA", "U0TOMHALE", "U0MARCUS"
COMMENT = "Sensitive-comment-7f3a: the customer's card number was read aloud"
EXAMPLE = "Sensitive-example-91bc: on the call you said the customer was lying"
NOTES = "Sensitive-notes-44de: agent mentioned a health condition"
REASON = "Sensitive-reason-0c1e: agent is on medical leave"
ACTION = "Sensitive-action-5a5a: practise naming the frustration"


@pytest.fixture
def log_lines(any_stack: Stack) -> Iterator[io.StringIO]:
    """Everything logged during the test, as `coachloop serve` writes it with LOG_FORMAT=json at DEBUG."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    settings = any_stack.services.settings
    logs.configure(
        {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"},
        secrets=[settings.slack_bot_token, settings.slack_signing_secret, settings.qa_webhook_secret],
        stream=stream,
    )
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name in logs.LIBRARY_LEVELS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def post_webhook(
    stack: Stack, payload: dict[str, Any], request_id: str | None = None
) -> tuple[int, Any, str]:
    body = json.dumps(payload)
    headers = sign_webhook(stack.services.settings.qa_webhook_secret, body, stack.clock.now())
    if request_id:
        headers["X-Request-Id"] = request_id
    req = urllib.request.Request(f"{stack.url}/webhooks/qa", data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), resp.headers["X-Request-Id"]
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers["X-Request-Id"]


def with_comment(comment: str, **changes: Any) -> dict[str, Any]:
    payload = evaluation(**changes)
    payload["items"][0]["comment"] = comment
    return payload


def test_failed_database_writes_keep_statement_parameters_out_of_the_error(db: Database) -> None:
    """SQLAlchemy puts bound parameters in its error text, which handlers and servers log."""
    with pytest.raises(IntegrityError) as caught, db.unit_of_work() as session:
        session.add(
            Case(
                agent_id=999,
                team_id=999,
                leader_id=999,
                kind="performance",
                state="agreed",
                opened_at=MONDAY_AFTERNOON,
                due_at=MONDAY_AFTERNOON,
                example=EXAMPLE,
                notes=NOTES,
            )
        )
    text = str(caught.value)
    assert EXAMPLE not in text and NOTES not in text
    assert "parameters hidden" in text


def test_the_whole_loop_logs_ids_and_no_sensitive_text(any_stack: Stack, log_lines: io.StringIO) -> None:
    stack = any_stack
    settings = stack.services.settings
    # A score whose leader DM fails permanently: the failure is logged under the request that queued it.
    stack.standin.add_fault(Fault("chat.postMessage", "channel_not_found", times=1))
    status, answer, echoed = post_webhook(stack, with_comment(COMMENT), request_id="req-from-the-qa-platform")
    assert status == 202 and echoed == "req-from-the-qa-platform"
    ana_case = answer["case_id"]
    stack.sweep()
    # A score for Tom whose DM meets a transient fault first (retried), from a request without an id.
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=1))
    status, tom, generated = post_webhook(
        stack,
        with_comment(COMMENT, id="ev-tom-1", agent={"email": "tom.hale@example.com", "name": "Tom Hale"}),
    )
    assert status == 202 and generated and logcontext.accept_request_id(generated) == generated
    stack.sweep()
    with stack.db.unit_of_work() as session:  # the retry's back-off has passed
        for row in session.query(OutboxMessage).filter(OutboxMessage.status == "pending"):
            row.due_at = stack.clock.now()
    stack.sweep()

    tom_dm = stack.message(PRIYA, f"case:{tom['case_id']}:leader_dm")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), tom_dm, "open_plan")
    assert stack.people.submit(PRIYA, view, {"example": EXAMPLE, "notes": NOTES, "action": ACTION}) == (
        200,
        None,
    )
    stack.sweep()
    agreement = stack.message(TOM, "agent_agreement")
    stack.people.click(TOM, stack.standin.dm_of(TOM), agreement, "ack_agreement")

    # A second score joins Ana's case; Lena's case is waived with a reason.
    assert post_webhook(stack, with_comment(COMMENT, id="ev-ana-2"))[0] == 202
    lena = with_comment(COMMENT, id="ev-lena-1", agent={"email": "lena.ito@example.com", "name": "Lena Ito"})
    status, lena_case, _ = post_webhook(stack, lena)
    stack.sweep()
    waive = stack.people.open_modal(
        MARCUS,
        stack.standin.dm_of(MARCUS),
        stack.message(MARCUS, f"case:{lena_case['case_id']}:leader_dm"),
        "waive_case",
    )
    assert stack.people.submit(MARCUS, waive, {"reason": REASON}) == (200, None)
    stack.sweep()

    # Error paths: a forged Slack request, a wrongly signed webhook, a modal refused for its content.
    assert stack.people.interact({"type": "block_actions"}, sign=False)[0] == 401
    bad = sign_webhook("whsec_" + "A" * 32, json.dumps(with_comment(COMMENT)), stack.clock.now())
    req = urllib.request.Request(
        f"{stack.url}/webhooks/qa", data=json.dumps(with_comment(COMMENT)).encode(), headers=bad
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=10)
    # A comment no database can store is refused before any write; the refusal logs no comment.
    status, _, _ = post_webhook(stack, with_comment(COMMENT + "\x00", id="ev-nul"))
    assert status == 422
    lines = [line for line in log_lines.getvalue().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["level"] == "DEBUG" for r in records)
    failed = [r for r in records if "failed: channel_not_found" in r["message"]]
    assert failed and failed[0]["request_id"] == "req-from-the-qa-platform"
    assert failed[0]["case_id"] == ana_case and isinstance(failed[0]["outbox_id"], int)
    intake = [r for r in records if r["logger"] == "coachloop.ingest" and "case_opened" in r["message"]]
    assert {r["request_id"] for r in intake} >= {"req-from-the-qa-platform", generated}
    assert {r["case_id"] for r in intake} >= {ana_case, tom["case_id"]}
    listener = [
        r
        for r in records
        if r["logger"] == "coachloop.bolt" and "Running listener: submit_plan" in r["message"]
    ]
    assert listener and all(r.get("request_id") and r.get("case_id") == tom["case_id"] for r in listener)

    everything = log_lines.getvalue()
    for secret in (COMMENT, EXAMPLE, NOTES, REASON, ACTION, "Sensitive-"):
        assert secret not in everything
    for secret in (settings.slack_bot_token, settings.slack_signing_secret, settings.qa_webhook_secret):
        assert secret not in everything
    assert "xoxb-" not in everything and "whsec_" not in everything


def test_text_format_shows_ids_and_scrubs_tokens() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure({}, secrets=["s3cret-signing"], stream=stream)
        with logcontext.bound(request_id="r1", case_id=7):
            logging.getLogger("coachloop.test").info("token xoxb-123-abc and s3cret-signing")
        logging.getLogger("coachloop.bolt").warning("Unhandled request ({'type': 'view_submission', 'x': 1})")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO coachloop.test [request_id=r1 case_id=7]: token [hidden] and [hidden]")
    assert second.endswith("Unhandled request ([hidden]")


def test_in_the_background_lines_keep_their_order_and_ids_and_are_written_by_their_own_thread() -> None:
    class Stream(io.StringIO):
        writers: set[str] = set()

        def write(self, text: str) -> int:
            self.writers.add(threading.current_thread().name)
            return super().write(text)

    stream = Stream()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        handler = logs.configure({}, secrets=["s3cret-signing"], stream=stream, background=True)
        log = logging.getLogger("coachloop.test")
        for n in range(500):
            with logcontext.bound(request_id=f"r{n}"):
                log.info("line %d with s3cret-signing", n)
        handler.flush()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [f"line {n} with [hidden]" for n in range(500)]
    assert all(f"[request_id=r{n}]" in line for n, line in enumerate(lines))
    assert Stream.writers == {"log-writer"}


def test_a_stream_that_fails_once_loses_those_lines_only() -> None:
    class Flaky(io.StringIO):
        failed = False

        def write(self, text: str) -> int:
            if "fails" in text and not self.failed:
                self.failed = True
                raise OSError("no space left on device")
            return super().write(text)

    stream = Flaky()
    handler = logs.BackgroundHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("coachloop.test.flaky")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("this one fails")
        handler.flush()
        log.warning("this one is written")
        handler.flush()
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert stream.failed and stream.getvalue() == "this one is written\n"


def test_a_bad_log_setting_stops_the_command_with_exit_2(tmp_path: Any) -> None:
    from tests.test_cli import run

    result = run(["db", "current"], {"LOG_FORMAT": "xml"}, tmp_path)
    assert result.returncode == 2 and "LOG_FORMAT 'xml' must be text or json" in result.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.text(min_size=1, max_size=200),
    tail=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{7,40}", fullmatch=True),
    fmt=st.sampled_from(["json", "text"]),
    logger=st.sampled_from(["slack_sdk.web.base_client", "coachloop.bolt", "slack_bolt.App"]),
)
def test_no_payload_or_token_survives_into_a_line(body: str, tail: str, fmt: str, logger: str) -> None:
    """Whatever a library puts in a request body, and whatever follows a token's prefix, stays out."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    marked, tail = f"PAYLOAD:{body}", f"Zq{tail}"  # marked: text no log line holds by itself
    try:
        logs.configure({"LOG_FORMAT": fmt, "LOG_LEVEL": "DEBUG"}, stream=stream)
        logging.getLogger(logger).warning("Unhandled request (%s)", {"view": {"state": marked}})
        logging.getLogger(logger).info("body_params: %s", [marked])
        logging.getLogger("coachloop.any").error("auth failed for xoxb-%s and whsec_%s", tail, tail)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.LIBRARY_LEVELS:
            logging.getLogger(name).setLevel(logging.NOTSET)
    out = stream.getvalue()
    assert "PAYLOAD:" not in out and tail not in out
    assert out.count("[hidden]") >= 3
