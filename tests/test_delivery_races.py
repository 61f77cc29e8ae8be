"""Delivery that a lost answer, a slow Slack, a poison row or a killed sweeper cannot double or stall."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app.services import slack_client
from bot.clock import FixedClock
from bot.standin.client import wait_for
from scheduler import delivery
from scheduler.delivery import MAX_ATTEMPTS, OutboxSweep
from storage.db import holding_connection
from storage.models import Person
from storage.outbox import LEASE, enqueue
from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import PRIYA
from tests.test_delivery_faults import delivered_keys, rows

SAM = "U0SAM"


def queue_alerts(stack: Stack, count: int) -> list[str]:
    """`count` admin messages to Sam, each with its own dedupe key (they render without a case)."""
    keys = [f"alert:test:{i}" for i in range(count)]
    with stack.db.unit_of_work() as s:
        admin = s.query(Person).filter_by(email="ops@example.com").one()
        for key in keys:
            payload = {"failed_key": key, "kind": "test", "error": "test"}
            enqueue(s, key, "admin_alert", now=stack.clock.now(), person_id=admin.id, payload=payload)
    return keys


def test_a_lost_answer_after_posting_sends_the_message_once(any_stack: Stack) -> None:
    stack = any_stack
    stack.standin.lost_answers("chat.postMessage", times=1)
    stack.post_score(evaluation())
    for _ in range(3):
        stack.sweep()
        stack.clock.advance(timedelta(minutes=10))
    assert len(stack.dm(PRIYA)) == 1
    leader_dm = next(r for r in rows(stack) if r.kind == "leader_case")
    assert leader_dm.status == "sent"
    assert len(stack.standin.calls_to("chat.postMessage", ok=None)) == 1  # never re-sent blind
    assert stack.standin.calls_to("conversations.history")  # the retry looked first


def test_a_slow_slack_never_lets_a_second_sweeper_send_twice(any_stack: Stack) -> None:
    stack = any_stack
    keys = queue_alerts(stack, 30)
    # Slack takes its time over each post; 5 s pass on the shared clock as each is carried out.
    stack.standin.slow_answers(
        "chat.postMessage", 0.03, slow_to_act=True, on_call=lambda: stack.clock.advance(timedelta(seconds=5))
    )
    first = OutboxSweep(stack.db, slack_client(stack.services.settings, interactive=False), stack.clock)
    second = OutboxSweep(stack.db, slack_client(stack.services.settings, interactive=False), stack.clock)
    done = threading.Event()
    errors: list[BaseException] = []

    def keep_sweeping() -> None:
        try:
            while not done.is_set():
                second.run_once()
                time.sleep(0.005)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    other = threading.Thread(target=keep_sweeping)
    other.start()
    try:
        first.run_once()
        wait_for(lambda: all(r.status == "sent" for r in rows(stack)), timeout=30, what="every alert sent")
    finally:
        done.set()
        other.join(timeout=30)
    assert not errors, errors
    counts = delivered_keys(stack)
    assert {k: counts[k] for k in keys if counts[k] != 1} == {}


def test_an_unexpected_error_fails_one_row_and_the_sweep_goes_on(stack: Stack) -> None:
    # Posts to Priya always get an answer no client expects (objects where ids belong).
    stack.standin.malformed_answers(
        "chat.postMessage",
        {"ok": True, "channel": {"id": "?"}, "ts": {"value": "?"}},
        when=lambda a: a.get("channel") == stack.standin.dm_of(PRIYA),
    )
    stack.post_score(evaluation())
    lena = evaluation(id="ev-lena")
    lena["agent"] = {"email": "lena.ito@example.com"}
    stack.post_score(lena)
    result = stack.sweep().outbox
    assert len(stack.dm("U0MARCUS")) == 1
    assert result.retried >= 1
    poison = next(r for r in rows(stack) if r.kind == "leader_case" and r.status != "sent")
    assert poison.status == "pending" and poison.attempts == 1
    assert "unexpected" in (poison.last_error or "")
    for _ in range(MAX_ATTEMPTS + 1):
        stack.clock.advance(timedelta(hours=2))
        stack.sweep()
    poison = next(r for r in rows(stack) if r.id == poison.id)
    assert poison.status == "failed" and poison.attempts == MAX_ATTEMPTS
    alert = stack.dm(SAM)
    assert len(alert) == 1 and "unexpected" in alert[0]["text"]


def test_a_row_that_cannot_be_started_fails_alone_and_its_batch_goes_out(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are started together in their claim's transaction. When re-checking one of them raises,
    the batch is started again one row at a time: that row fails (the admins are told) and the other
    rows of the batch are sent, each once."""
    stack.post_score(evaluation())
    lena = evaluation(id="ev-lena")
    lena["agent"] = {"email": "lena.ito@example.com"}
    stack.post_score(lena)
    with stack.db.read() as session:
        priya_id = session.query(Person.id).filter(Person.slack_id == PRIYA).scalar()
    moot = delivery.followup.skip_if_moot

    def broken_for_priya(session: Any, row: Any, now: datetime) -> str | None:
        if row.person_id == priya_id and row.kind == "leader_case":
            raise RuntimeError("a bug in the re-check")
        return moot(session, row, now)

    monkeypatch.setattr(delivery.followup, "skip_if_moot", broken_for_priya)
    stack.sweep()
    failed = [r for r in rows(stack) if r.status == "failed"]
    assert [(r.kind, r.person_id) for r in failed] == [("leader_case", priya_id)]
    assert "render_error: RuntimeError" in (failed[0].last_error or "")
    assert len(stack.dm("U0MARCUS")) == 1 and stack.dm(PRIYA) == []
    others = [r for r in rows(stack) if r.id != failed[0].id and r.kind != "admin_alert"]
    assert others and all(r.status in ("sent", "skipped") for r in others)
    assert all(n == 1 for n in delivered_keys(stack).values())


def test_a_killed_sweeper_delays_its_messages_by_one_short_lease(stack: Stack) -> None:
    """A `coachloop sweep` is SIGKILLed mid-batch; another sweeper takes its rows over once the lease
    of those rows runs out, and that delay is measured on the clock."""
    keys = queue_alerts(stack, 6)
    stack.standin.slow_answers("chat.postMessage", 5.0)
    settings = stack.services.settings
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACHLOOP_", "DATABASE_URL"))},
        "DATABASE_URL": stack.db.url,
        "SLACK_BOT_TOKEN": settings.slack_bot_token,
        "SLACK_SIGNING_SECRET": "x",
        "QA_WEBHOOK_SECRET": settings.qa_webhook_secret,
        "SLACK_API_URL": settings.slack_api_url or "",
    }
    proc = subprocess.Popen([sys.executable, "-m", "bot.app.cli", "sweep"], env=env)
    try:
        wait_for(lambda: stack.standin.calls_to("chat.postMessage"), timeout=30, what="the first post")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    killed_at = datetime.now(UTC)
    stack.standin.clear_faults()
    delay = None
    for seconds in range(0, 181, 5):
        later = FixedClock(killed_at + timedelta(seconds=seconds))
        OutboxSweep(stack.db, stack.services.slack, later).drain()
        if all(r.status == "sent" for r in rows(stack)):
            delay = seconds
            break
    print(f"messages claimed by a killed sweeper went out {delay} s after the kill (lease {LEASE})")
    assert delay is not None and delay <= 35
    counts = delivered_keys(stack)
    assert Counter(counts[k] for k in keys) == Counter({1: len(keys)})


def test_the_digest_chart_is_drawn_with_no_transaction_open(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing the chart takes about a second: it must not hold a database connection (on SQLite, the
    write lock every intake waits for) while it draws."""
    drawn_inside: list[bool] = []
    real = delivery.hit_rate_chart

    def watched(*args: Any, **kwargs: Any) -> bytes:
        drawn_inside.append(holding_connection())
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery, "hit_rate_chart", watched)
    # A case whose window passed in the week before the digest: the chart has a point to draw.
    stack.clock.set(datetime(2026, 11, 9, 10, 0, tzinfo=UTC))
    assert stack.post_score(evaluation(landed_at="2026-11-09T10:00:00Z"))[0] == 202
    while stack.clock.now() < datetime(2026, 11, 24, tzinfo=UTC) and not drawn_inside:
        stack.sweep()
        stack.clock.advance(timedelta(hours=6))
    assert drawn_inside == [False]
    assert stack.standin.calls_to("files.completeUploadExternal")
