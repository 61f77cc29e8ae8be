"""/metrics: the figures the README's Metrics table documents, read over HTTP."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from bot.standin.server import Fault
from tests.conftest import Stack
from tests.payloads import evaluation


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_describe_scores_cases_outbox_and_acks(any_stack: Stack) -> None:
    stack = any_stack
    before = scrape(stack)

    def grew(after: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    stack.standin.add_fault(Fault("chat.postMessage", "channel_not_found", times=1))
    assert stack.post_score(evaluation())[0] == 202
    assert stack.post_score(evaluation())[0] == 200
    stack.sweep()  # Ana's DM fails for good
    # Tom's DM is queued but not yet sent, an hour after it fell due.
    stack.post_score(evaluation(id="ev-tom", agent={"email": "tom.hale@example.com"}))
    stack.clock.advance(timedelta(hours=1))
    assert stack.people.command("U0PRIYA", "/coach")[0] == 200
    after = scrape(stack)

    assert grew(after, "coachloop_webhooks_total", outcome="case_opened") == 2
    assert grew(after, "coachloop_webhooks_total", outcome="repeat") == 1
    assert after[("coachloop_cases", (("state", "awaiting_conversation"),))] == 2
    assert after[("coachloop_cases", (("state", "closed"),))] == 0
    assert grew(after, "coachloop_outbox_failures_total", error="channel_not_found") == 1
    assert after[("coachloop_outbox_queued", ())] >= 1
    assert after[("coachloop_outbox_lag_seconds", ())] >= 3600
    assert grew(after, "coachloop_listener_ack_seconds_count", kind="command") == 1
    assert ("coachloop_sweep_seconds_count", (("sweep", "outbox"),)) in after


def test_every_response_carries_a_request_id(stack: Stack) -> None:
    req = urllib.request.Request(f"{stack.url}/healthz", headers={"X-Request-Id": "lb-7f00:1"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["X-Request-Id"] == "lb-7f00:1"
    bad = urllib.request.Request(f"{stack.url}/healthz", headers={"X-Request-Id": "no spaces <script>"})
    with urllib.request.urlopen(bad, timeout=5) as resp:
        made = resp.headers["X-Request-Id"]
    assert 17 <= len(made) <= 32 and made.isalnum()  # a fresh token, not the caller's
    with urllib.request.urlopen(f"{stack.url}/healthz", timeout=5) as resp:
        assert resp.headers["X-Request-Id"] not in (made, "")
