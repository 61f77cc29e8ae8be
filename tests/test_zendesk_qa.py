"""Zendesk QA: reviews pulled from the Export API stand-in reach the same intake as the webhook;
the cursor neither skips nor doubles; errors back off, show in /metrics and reach the admins."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.app.cli import main
from bot.app.server import free_port
from bot.evaluation_input import parse_evaluation
from bot.standin.client import wait_for
from bot.standin.server import SlackStandIn
from bot.standin.zendesk_qa import (
    BILLING_SCORECARD,
    INVALID_ARGUMENT,
    UNAUTHENTICATED,
    UNAVAILABLE,
    ZendeskQAStandIn,
    sample_review,
)
from bot.zendesk_qa import UnknownCategory, review_to_evaluation, scales_from
from connectors.zendesk_qa import (
    DOCUMENTED_LIMIT_PER_MINUTE,
    PAGE_SIZE,
    ExportApiError,
    Pacer,
    ZendeskQAClient,
    ZendeskQAConnection,
)
from scheduler.zendesk_qa_poll import ALERT_AFTER, END_BEHIND_NOW, ZendeskQAPoller
from storage.db import Database
from storage.models import Evaluation, OutboxMessage, PollCursor
from tests.conftest import Stack, build_stack, sample_org

WS = "101"


@pytest.fixture
def zqa() -> Iterator[ZendeskQAStandIn]:
    with ZendeskQAStandIn("zqa-test-token") as s:
        s.add_workspace(WS, "Billing QA", [BILLING_SCORECARD])
        s.add_workspace("202", "Retentions QA", [])
        yield s


def connection(zqa: ZendeskQAStandIn, **changes: object) -> ZendeskQAConnection:
    values: dict[str, object] = {"base_url": zqa.url, "token": zqa.token, "workspaces": (WS,)}
    return ZendeskQAConnection(**(values | changes))  # type: ignore[arg-type]


def poller(stack: Stack, zqa: ZendeskQAStandIn, page_size: int = 100, **client: object) -> ZendeskQAPoller:
    conn = connection(zqa, page_size=page_size)
    options: dict[str, object] = {"backoff_base": 0.001, "timeout": 2.0} | client
    return ZendeskQAPoller(stack.services, conn, ZendeskQAClient(conn.base_url, conn.token, **options))  # type: ignore[arg-type]


def stored(stack: Stack) -> list[Evaluation]:
    with stack.db.unit_of_work() as s:
        return list(s.scalars(select(Evaluation).where(Evaluation.source == "zendesk-qa")))


# -- the mapping -----------------------------------------------------------------------------


def test_a_review_maps_to_evaluation_v1_with_its_scales_decoded(stack: Stack) -> None:
    now = stack.clock.now()
    conv, review = sample_review(
        "7001", "ana.ruiz@example.com", now, acknowledge=2, verify=0, next_steps=None
    )
    payload = review_to_evaluation(conv, review, scales_from([BILLING_SCORECARD]))
    data = parse_evaluation(payload)
    assert (data.source, data.external_id, data.agent_email) == ("zendesk-qa", "7001", "ana.ruiz@example.com")
    assert (data.evaluator_email, data.scorecard_id, data.scorecard_name) == (
        "lee.park@example.com",
        "501",
        "Billing calls v3",
    )
    assert (data.score, data.max_score) == (62.5, 100.0)
    assert data.contact_id == "T-7001" and data.contact_url == "https://acme.zendesk.com/agent/tickets/7001"
    assert data.updated_at == now and data.landed_at == now
    # 9003 was not applicable: left out. 9001 is 2 on a 1..4 scale: 1 of 3. 9002 is binary: 0 of 1.
    by_key = {i.key: i for i in data.items}
    assert set(by_key) == {"9001", "9002"}
    assert (by_key["9001"].score, by_key["9001"].max_score, by_key["9001"].weight) == (1, 3, 2)
    assert by_key["9001"].comment == "Read the policy without acknowledging the frustration"
    assert by_key["9001"].good_looks_like == "Name the frustration before explaining the policy."
    assert by_key["9001"].category == "Empathy"
    assert (by_key["9002"].score, by_key["9002"].max_score, by_key["9002"].critical) == (0, 1, True)


def test_a_missing_overall_score_is_the_weighted_share_of_the_ratings(stack: Stack) -> None:
    conv, review = sample_review("7002", "ana.ruiz@example.com", stack.clock.now(), acknowledge=4, score=None)
    payload = review_to_evaluation(conv, review, scales_from([BILLING_SCORECARD]))
    assert payload["score"] == pytest.approx(100.0)


def test_an_off_scale_rating_or_an_unknown_category_is_refused(stack: Stack) -> None:
    conv, review = sample_review("7003", "ana.ruiz@example.com", stack.clock.now(), acknowledge=7)
    with pytest.raises(ValueError, match="outside the scale 1..4"):
        review_to_evaluation(conv, review, scales_from([BILLING_SCORECARD]))
    with pytest.raises(UnknownCategory):
        review_to_evaluation(conv, review, {})


# -- the client ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(per_minute=st.integers(1, DOCUMENTED_LIMIT_PER_MINUTE), n=st.integers(2, 300))
def test_the_pacer_never_lets_a_minute_hold_more_than_its_limit(per_minute: int, n: int) -> None:
    clock = [0.0]
    pacer = Pacer(per_minute, monotonic=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    stamps = []
    for _ in range(n):
        pacer.wait()
        stamps.append(clock[0])
    for i, t in enumerate(stamps):
        assert sum(1 for u in stamps[i:] if u < t + 60) <= per_minute


def test_the_pacer_refuses_a_pace_over_the_documented_limit() -> None:
    with pytest.raises(ValueError):
        Pacer(DOCUMENTED_LIMIT_PER_MINUTE + 1)


def test_the_client_retries_what_may_pass_and_not_what_cannot(zqa: ZendeskQAStandIn) -> None:
    client = ZendeskQAClient(zqa.url, zqa.token, backoff_base=0.001, retries=2)
    zqa.fail_next(2, UNAVAILABLE)
    assert [w["id"] for w in client.workspaces()] == [WS, "202"]
    assert client.requests == 3
    zqa.fail_next(3, UNAVAILABLE)
    with pytest.raises(ExportApiError, match="HTTP 503"):
        client.workspaces()
    wrong = ZendeskQAClient(zqa.url, "not-the-token", backoff_base=0.001)
    with pytest.raises(ExportApiError, match="ZENDESK_QA_TOKEN") as refused:
        wrong.workspaces()
    assert refused.value.status == 401 and refused.value.code == UNAUTHENTICATED and wrong.requests == 1
    with pytest.raises(ExportApiError, match="workspace 999 not found"):
        client.scorecards("999")


def test_the_stand_in_answers_bad_arguments_as_google_rpc_status(zqa: ZendeskQAStandIn) -> None:
    req = urllib.request.Request(
        f"{zqa.url}/api/export/workspace/{WS}/reviews?page=0",
        headers={"Authorization": f"Bearer {zqa.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(req, timeout=5)
    assert answer.value.code == 400
    assert json.loads(answer.value.read()) == {
        "code": INVALID_ARGUMENT,
        "message": "fromDate is required",
        "details": [],
    }


# -- the poller ------------------------------------------------------------------------------


def test_a_pulled_review_reaches_the_leaders_dm(stack: Stack, zqa: ZendeskQAStandIn) -> None:
    zqa.add_review(
        WS, *sample_review("7010", "ana.ruiz@example.com", stack.clock.now() - timedelta(minutes=9))
    )
    [report] = poller(stack, zqa).run_once()
    assert report.error is None and report.outcomes == {"case_opened": 1}
    stack.sweep()
    dm = json.dumps(stack.message("U0PRIYA", "leader_dm")["blocks"])
    assert "Ana Ruiz" in dm and "Acknowledges the customer" in dm


def test_pages_are_read_to_the_total_and_the_cursor_overlaps_without_doubles(
    any_stack: Stack, zqa: ZendeskQAStandIn
) -> None:
    stack = any_stack
    now = stack.clock.now()
    for i in range(23):
        zqa.add_review(
            WS, *sample_review(f"8{i:03}", "ana.ruiz@example.com", now - timedelta(minutes=30 - i))
        )
    [report] = poller(stack, zqa, page_size=10).run_once()
    asked = zqa.requests_to("/reviews")
    # Each part of the window is read in one answer: the window, split after its first page's latest
    # update, then the rest, split the same way.
    assert [r.query["page"] for r in asked] == ["0"] * 5
    assert sum(report.outcomes.values()) == 23 and len(stored(stack)) == 23

    # Later, one review is edited and one is new; a fresh process polls from the stored cursor.
    stack.clock.advance(timedelta(minutes=6))
    later = stack.clock.now()
    edited = sample_review(
        "8022",
        "ana.ruiz@example.com",
        now - timedelta(minutes=8),
        updated=later - timedelta(minutes=1),
        acknowledge=4,
    )
    zqa.add_review(WS, *edited)
    zqa.add_review(WS, *sample_review("8100", "ana.ruiz@example.com", later - timedelta(minutes=2)))
    [again] = poller(stack, zqa).run_once()
    window_start = zqa.requests_to("/reviews")[-1].query["fromDate"]
    assert window_start == (now - END_BEHIND_NOW - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert again.outcomes.get("revised") == 1 and again.outcomes.get("joined_case") == 1
    assert again.outcomes.get("repeat", 0) >= 1  # inside the overlap, answered as repeats
    assert len(stored(stack)) == 24
    with stack.db.unit_of_work() as s:
        cursor = s.scalar(select(PollCursor))
        assert cursor is not None and cursor.position == later - END_BEHIND_NOW
        assert cursor.consecutive_failures == 0


class ChangedWhileRead(ZendeskQAClient):
    """The client, with Zendesk QA changing while a poll reads: `change(page, answer)` runs after
    each page of reviews is answered, before the next is asked for."""

    def __init__(
        self, zqa: ZendeskQAStandIn, change: Callable[[int, dict[str, Any]], None], **options: Any
    ) -> None:
        super().__init__(zqa.url, zqa.token, **({"backoff_base": 0.001, "timeout": 2.0} | options))
        self.change = change

    def reviews_page(
        self, workspace: str, start: datetime, end: datetime, page: int, page_size: int = PAGE_SIZE
    ) -> dict[str, Any]:
        answer = super().reviews_page(workspace, start, end, page, page_size)
        self.change(page, answer)
        return answer


def acknowledged(stack: Stack) -> dict[str, float]:
    """Each stored review's rating of 9001 (acknowledging), by review id."""
    with stack.db.unit_of_work() as s:
        return {
            e.external_id: next(i.score for i in e.items if i.key == "9001")
            for e in s.scalars(select(Evaluation).where(Evaluation.source == "zendesk-qa"))
        }


def three_reviews_and_a_change(
    stack: Stack, zqa: ZendeskQAStandIn, conversation: dict[str, Any], review: dict[str, Any]
) -> ZendeskQAPoller:
    """Reviews 9100, 9101 and 9102 (40, 30 and 20 minutes old, a conversation each), and a poller
    reading one per page that files `review` under `conversation` once the first page is read."""
    now = stack.clock.now()
    for rid, age in (("9100", 40), ("9101", 30), ("9102", 20)):
        zqa.add_review(WS, *sample_review(rid, "ana.ruiz@example.com", now - timedelta(minutes=age)))
    change = [(conversation, review)]

    def after_page(page: int, _: dict[str, Any]) -> None:
        if page == 0 and change:
            zqa.add_review(WS, *change.pop())

    return ZendeskQAPoller(stack.services, connection(zqa, page_size=1), ChangedWhileRead(zqa, after_page))


@pytest.mark.parametrize(
    "edited", [timedelta(seconds=30), timedelta(seconds=-5)], ids=["after-the-poll-began", "clock-behind"]
)
def test_a_review_edited_while_the_pages_are_read_skips_no_other(
    stack: Stack, zqa: ZendeskQAStandIn, edited: timedelta
) -> None:
    """An edit moves a review to the end of the window's order (or past its end) while later pages
    are read: the reviews after it shift up a place, and the page read next must not step over one
    of them. Zendesk QA's clock may run a little behind ours, so an edit made during the poll may be
    stamped a few seconds before it began."""
    now = stack.clock.now()
    edit = sample_review(
        "9100", "ana.ruiz@example.com", now - timedelta(minutes=40), updated=now + edited, acknowledge=4
    )
    p = three_reviews_and_a_change(stack, zqa, *edit)
    [first] = p.run_once()
    assert first.error is None
    # 9100, last updated after the window's end, is taken by this poll as it was or by the next.
    assert {"9101", "9102"} <= set(acknowledged(stack))
    stack.clock.advance(timedelta(minutes=5))
    [second] = p.run_once()
    assert second.error is None
    assert acknowledged(stack) == {"9100": 3, "9101": 1, "9102": 1}


def test_a_review_added_to_a_conversation_while_the_pages_are_read_skips_no_other(
    stack: Stack, zqa: ZendeskQAStandIn
) -> None:
    """A second reviewer rates a conversation already read: it moves to the end of the window's
    order while staying in it (its first review still is), so the total does not change; the
    conversations after it shift up a place, and none of them may be stepped over."""
    conversation, review = sample_review(
        "9199", "ana.ruiz@example.com", stack.clock.now() - timedelta(minutes=10)
    )
    p = three_reviews_and_a_change(stack, zqa, {**conversation, "externalId": "T-9100"}, review)
    [report] = p.run_once()
    assert report.error is None
    assert set(acknowledged(stack)) == {"9100", "9101", "9102", "9199"}


def test_a_busy_window_is_read_through_without_starting_over(stack: Stack, zqa: ZendeskQAStandIn) -> None:
    """A busy workspace: while a poll reads, reviewers keep rating conversations it has read, each of
    which moves to the end of the window's order. The poll still takes every review in the window,
    rather than reading it again from the start until it gives up."""
    now = stack.clock.now()
    ids = [f"93{i:02}" for i in range(12)]
    for n, rid in enumerate(ids):
        zqa.add_review(WS, *sample_review(rid, "ana.ruiz@example.com", now - timedelta(minutes=40 - 2 * n)))
    seconds: list[str] = []  # second reviews, one given after each answer, to a conversation it held

    def change(_: int, answer: dict[str, Any]) -> None:
        conversations = answer.get("conversations") or []
        if conversations:
            seconds.append(f"94{len(seconds):02}")
            conversation, review = sample_review(seconds[-1], "ana.ruiz@example.com", stack.clock.now())
            zqa.add_review(WS, {**conversation, "externalId": conversations[0]["externalId"]}, review)

    [report] = ZendeskQAPoller(
        stack.services, connection(zqa, page_size=2), ChangedWhileRead(zqa, change)
    ).run_once()
    assert report.error is None
    assert set(acknowledged(stack)) == set(ids)


def test_a_window_that_will_not_hold_still_fails_the_poll_and_keeps_the_cursor(
    stack: Stack, zqa: ZendeskQAStandIn
) -> None:
    """Twelve reviews updated in the same second (a window that cannot be split finer, read page by
    page), and a second review given to a conversation after every answer: the poll gives up after
    a few readings, moves nothing, and the next poll reads the window again."""
    at = stack.clock.now() - timedelta(minutes=40)
    ids = [f"92{i:02}" for i in range(12)]
    for rid in ids:
        zqa.add_review(WS, *sample_review(rid, "ana.ruiz@example.com", at))
    changing = [True]

    def change(_: int, answer: dict[str, Any]) -> None:
        conversations = answer.get("conversations") or []
        if changing and conversations:
            n = len(zqa.requests_to("/reviews"))  # each one later than the last: it moves to the end
            conversation, review = sample_review(
                f"95{n:03}", "ana.ruiz@example.com", stack.clock.now() + timedelta(seconds=n)
            )
            zqa.add_review(WS, {**conversation, "externalId": conversations[0]["externalId"]}, review)

    [report] = ZendeskQAPoller(
        stack.services, connection(zqa, page_size=1), ChangedWhileRead(zqa, change)
    ).run_once()
    assert report.error and "changed while" in report.error
    with stack.db.unit_of_work() as s:
        cursor = s.scalar(select(PollCursor))
        assert cursor is not None and cursor.position is None and cursor.consecutive_failures == 1
        due = cursor.next_poll_at
    changing.clear()
    stack.clock.set(due)
    [again] = poller(stack, zqa, page_size=1).run_once()
    assert again.error is None and set(ids) <= set(acknowledged(stack))


def test_a_workspace_is_polled_by_one_process_at_a_time(any_stack: Stack, zqa: ZendeskQAStandIn) -> None:
    stack = any_stack
    a, b = poller(stack, zqa), poller(stack, zqa)
    assert a._claim(WS, stack.clock.now(), force=False) is not None
    [report] = b.run_once(force=True)
    assert not report.polled and zqa.requests_to("/reviews") == []


def test_a_poll_is_not_due_before_its_interval(stack: Stack, zqa: ZendeskQAStandIn) -> None:
    p = poller(stack, zqa)
    assert p.run_once()[0].polled
    assert not p.run_once()[0].polled
    stack.clock.advance(timedelta(minutes=5))
    assert p.run_once()[0].polled


def metrics_text(stack: Stack) -> str:
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_failures_keep_the_cursor_back_off_show_in_metrics_and_alert_the_admins_once(
    stack: Stack, zqa: ZendeskQAStandIn
) -> None:
    zqa.add_review(
        WS, *sample_review("7020", "ana.ruiz@example.com", stack.clock.now() - timedelta(minutes=3))
    )
    p = poller(stack, zqa, retries=1)
    zqa.fail_next(100, UNAVAILABLE, "the service is unavailable")
    waits = []
    for _ in range(ALERT_AFTER + 1):
        [report] = p.run_once()
        assert report.polled and report.error and "HTTP 503" in report.error
        with stack.db.unit_of_work() as s:
            cursor = s.scalar(select(PollCursor))
            assert cursor is not None and cursor.position is None
            waits.append(cursor.next_poll_at - stack.clock.now())
        stack.clock.advance(waits[-1])
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert (
        f'coachloop_poll_consecutive_failures{{connector="zendesk-qa",scope="{WS}"}} {ALERT_AFTER + 1}.0'
        in (metrics_text(stack))
    )
    with stack.db.unit_of_work() as s:
        alerts = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "connector_alert")))
        assert len(alerts) == 1  # one per admin per run of failures
    stack.sweep()
    alert = stack.message("U0SAM", "poll:zendesk-qa")
    assert "Zendesk QA" in alert["text"] and "failed 3 polls in a row" in alert["text"]

    zqa.failures.clear()
    [report] = p.run_once()
    assert report.error is None and report.outcomes == {"case_opened": 1}
    assert f'coachloop_poll_consecutive_failures{{connector="zendesk-qa",scope="{WS}"}} 0.0' in metrics_text(
        stack
    )
    assert f'coachloop_connector_lag_seconds{{connector="zendesk-qa",scope="{WS}"}}' in metrics_text(stack)


def gauge(stack: Stack, name: str) -> float | None:
    """The workspace's sample of a gauge in /metrics (None when it is not there)."""
    wanted = {"connector": "zendesk-qa", "scope": WS}
    for family in text_string_to_metric_families(metrics_text(stack)):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return sample.value
    return None


def test_lag_and_failures_are_read_from_the_cursor_at_scrape_by_every_replica(
    stack: Stack, zqa: ZendeskQAStandIn
) -> None:
    """A poller that stopped shows a lag that grows, and a replica that never polled shows the
    figures of the one that did."""
    LAG, FAILURES = "coachloop_connector_lag_seconds", "coachloop_poll_consecutive_failures"
    [report] = poller(stack, zqa).run_once()
    assert report.error is None and report.window is not None
    lag_at_poll = (stack.clock.now() - report.window[1]).total_seconds()
    stack.clock.advance(timedelta(hours=3))
    replica_db = Database(stack.db.url)
    replica = build_stack(replica_db, stack.standin, stack.clock)
    try:
        for scraped in (replica, stack):  # the replica that never polled first
            assert gauge(scraped, LAG) == pytest.approx(3 * 3600 + lag_at_poll)
            assert gauge(scraped, FAILURES) == 0

        zqa.fail_next(1)
        [failed] = poller(stack, zqa, retries=0).run_once()
        assert failed.error is not None
        stack.clock.advance(timedelta(hours=1))
        with replica_db.unit_of_work() as s:  # meanwhile another process polled, and failed twice more
            cursor = s.scalar(select(PollCursor))
            assert cursor is not None
            cursor.consecutive_failures += 2
        for scraped in (replica, stack):
            assert gauge(scraped, LAG) == pytest.approx(4 * 3600 + lag_at_poll)
            assert gauge(scraped, FAILURES) == 3
    finally:
        replica.stop()
        replica_db.dispose()


def test_a_slow_page_fails_the_poll_and_the_next_one_catches_up(stack: Stack, zqa: ZendeskQAStandIn) -> None:
    zqa.add_review(
        WS, *sample_review("7030", "ana.ruiz@example.com", stack.clock.now() - timedelta(minutes=3))
    )
    zqa.page_delay = 0.6
    [report] = poller(stack, zqa, timeout=0.2, retries=1).run_once()
    assert report.error and "could not reach" in report.error and stored(stack) == []
    zqa.page_delay = 0.0
    stack.clock.advance(timedelta(minutes=15))
    [report] = poller(stack, zqa).run_once()
    assert report.outcomes == {"case_opened": 1}


# -- coachloop connect zendesk-qa --check ----------------------------------------------------


def org_with_zendesk(tmp_path: Path, workspaces: str = f"['{WS}']") -> Path:
    org = tmp_path / "org.yml"
    org.write_text(sample_org() + f"\nzendesk_qa:\n  subdomain: acme\n  workspaces: {workspaces}\n")
    return org


def test_connect_check_proves_the_settings(
    zqa: ZendeskQAStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZENDESK_QA_API_URL", zqa.url)
    monkeypatch.setenv("ZENDESK_QA_TOKEN", zqa.token)
    org = org_with_zendesk(tmp_path)
    assert main(["connect", "zendesk-qa", "--check", "--org", str(org)]) == 0
    out = capsys.readouterr().out
    assert "101  Billing QA  (polled)" in out and "202  Retentions QA" in out
    assert len(zqa.requests) == 1

    assert (
        main(["connect", "zendesk-qa", "--check", "--org", str(org_with_zendesk(tmp_path, "['303']"))]) == 1
    )
    assert "workspace 303 from the org file is not among them" in capsys.readouterr().out

    monkeypatch.setenv("ZENDESK_QA_TOKEN", "wrong")
    assert main(["connect", "zendesk-qa", "--check", "--org", str(org)]) == 1
    assert "the token was refused" in capsys.readouterr().out

    monkeypatch.delenv("ZENDESK_QA_TOKEN")
    assert main(["connect", "zendesk-qa", "--check", "--org", str(org)]) == 2
    assert "ZENDESK_QA_TOKEN is not set" in capsys.readouterr().err


def test_serve_polls_zendesk_qa_and_the_review_reaches_the_leader(
    standin: SlackStandIn, zqa: ZendeskQAStandIn, tmp_path: Path
) -> None:
    """`coachloop serve` with the org file's zendesk_qa section and nothing else: no webhook call."""
    zqa.add_review(
        WS, *sample_review("7040", "ana.ruiz@example.com", datetime.now(UTC) - timedelta(minutes=4))
    )
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACHLOOP_", "ZENDESK_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "QA_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org_with_zendesk(tmp_path)),
        "ZENDESK_QA_TOKEN": zqa.token,
        "ZENDESK_QA_API_URL": zqa.url,
        "PORT": str(port),
    }
    upgrade = [sys.executable, "-m", "bot.app.cli", "db", "upgrade"]
    assert subprocess.run(upgrade, env=env, capture_output=True).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def leader_dm() -> dict | None:  # type: ignore[type-arg]
            for m in standin.messages(standin.dm_of("U0PRIYA")):
                if "leader_dm" in (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", ""):
                    return m
            return None

        dm = wait_for(lambda: leader_dm() or proc.poll() is not None, timeout=30, what="the leader's DM")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        assert "Ana Ruiz" in json.dumps(dm)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            lag = f'coachloop_connector_lag_seconds{{connector="zendesk-qa",scope="{WS}"}}'
            assert lag in resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


REVIEWS = st.lists(
    st.one_of(
        st.tuples(
            st.just("review"),
            st.integers(1, 14),
            st.sampled_from(["ana.ruiz@example.com", "tom.hale@example.com"]),
        ),
        st.tuples(st.just("edit"), st.integers(0, 30), st.integers(1, 4)),
        # an edit made while the next poll reads: of a review on the page just read (one a page)
        st.tuples(st.just("edit while polled"), st.integers(0, 30), st.integers(1, 4)),
        st.tuples(st.just("add while polled"), st.integers(0, 30), st.just(0)),
        st.tuples(st.just("poll"), st.booleans(), st.booleans()),
        st.tuples(st.just("fail"), st.integers(1, 3), st.just(0)),
        st.tuples(st.just("wait"), st.integers(1, 20), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=REVIEWS)
def test_no_review_is_skipped_or_doubled_whatever_happens(
    stack: Stack, zqa: ZendeskQAStandIn, steps: list[tuple[str, int, object]]
) -> None:
    """Random reviews, edits (between polls and while a poll reads its pages), second reviews of a
    conversation given while a poll reads, polls by fresh or running pollers, API failures and
    waiting. After every poll that went through, each review last updated before its window's end
    is stored once, as last edited; a poll that failed left the cursor where it was."""
    ws = str(1000 + len(zqa.workspaces))  # a fresh workspace (and cursor) per example
    zqa.add_workspace(ws, "Random", [BILLING_SCORECARD])
    conn = connection(zqa, workspaces=(ws,), page_size=1)
    latest: dict[str, tuple[datetime, datetime, int, str]] = {}  # created, updated, rating, reviewee
    pending: list[tuple[int, int]] = []  # edits to make while the next poll reads: (a, rating)
    adds: list[int] = []  # second reviews to give conversations while the next poll reads
    conversation_of: dict[str, str] = {}  # review id -> its conversation's externalId
    stamps = [stack.clock.now() - timedelta(days=1)]

    def edit(rid: str, rating: int) -> None:
        """Zendesk QA stamps edits in the order they are made, never before now."""
        created, _, _, email = latest[rid]
        stamps.append(max(stack.clock.now(), stamps[-1] + timedelta(seconds=1)))
        zqa.add_review(ws, *sample_review(rid, email, created, updated=stamps[-1], acknowledge=rating))
        latest[rid] = (created, stamps[-1], rating, email)

    def add_to(rid: str) -> None:
        """Another reviewer rates the conversation of review `rid` (stamped now: after the window)."""
        _, _, _, email = latest[rid]
        stamps.append(max(stack.clock.now(), stamps[-1] + timedelta(seconds=1)))
        new = f"{ws}-{len(latest)}"
        conversation, review = sample_review(new, email, stamps[-1], acknowledge=2)
        zqa.add_review(ws, {**conversation, "externalId": conversation_of[rid]}, review)
        latest[new], conversation_of[new] = (stamps[-1], stamps[-1], 2, email), conversation_of[rid]

    def while_polled(_: int, answer: dict[str, Any]) -> None:
        on_page = [r["id"] for c in answer.get("conversations") or [] for r in c["reviews"]]
        if pending and on_page:
            a, rating = pending.pop(0)
            edit(on_page[a % len(on_page)], rating)
        if adds and on_page:
            add_to(on_page[adds.pop(0) % len(on_page)])

    def client() -> ZendeskQAClient:
        return ChangedWhileRead(zqa, while_polled, backoff_base=0.0, retries=0)

    def position() -> datetime | None:
        with stack.db.unit_of_work() as s:
            return s.scalar(select(PollCursor.position).where(PollCursor.scope == ws))

    running = ZendeskQAPoller(stack.services, conn, client())
    opening: list[tuple[str, int, object]] = [("review", m, "ana.ruiz@example.com") for m in (12, 8, 4)]
    for op, a, b in opening + steps:  # a few reviews are there before the first poll
        now = stack.clock.now()
        if op == "review":  # reviews show up in the export at most a few minutes after their update
            rid = f"{ws}-{len(latest)}"
            at = now - timedelta(minutes=a)
            zqa.add_review(ws, *sample_review(rid, str(b), at, acknowledge=2))
            latest[rid], conversation_of[rid] = (at, at, 2, str(b)), f"T-{rid}"
        elif op == "edit" and latest:
            edit(sorted(latest)[a % len(latest)], int(str(b)))
        elif op == "edit while polled" and latest:
            pending.append((a, int(str(b))))
        elif op == "add while polled" and latest:
            adds.append(a)
        elif op == "fail":
            zqa.fail_next(a)
        elif op == "wait":
            stack.clock.advance(timedelta(minutes=a))
        elif op == "poll":
            fresh, forced = a, b
            poller = ZendeskQAPoller(stack.services, conn, client()) if fresh else running
            before = position()
            [report] = poller.run_once(force=bool(forced))
            while pending:  # edits the poll's pages did not reach are made after it
                a, rating = pending.pop(0)
                edit(sorted(latest)[a % len(latest)], rating)
            while adds:
                add_to(sorted(latest)[adds.pop(0) % len(latest)])
            if not report.polled:
                continue
            if report.error is not None:
                assert position() == before, "a failed poll moved the cursor"
                continue
            assert report.window is not None
            end = report.window[1]
            assert position() == end
            with stack.db.unit_of_work() as s:
                rows = list(s.scalars(select(Evaluation).where(Evaluation.external_id.like(f"{ws}-%"))))
                stored_ = {e.external_id: e for e in rows}
                assert len(stored_) == len(rows), "a review was stored twice"
                for rid, (_, updated, ack, _) in latest.items():
                    if updated < end:
                        assert rid in stored_, f"review {rid} was skipped"
                        item = next(i for i in stored_[rid].items if i.key == "9001")
                        assert item.score == ack - 1, f"review {rid} is not as last edited"
    zqa.failures.clear()


def test_the_org_files_zendesk_qa_section_is_checked_line_by_line() -> None:
    from bot.org import OrgFileError, parse_org

    good = parse_org(
        sample_org() + "zendesk_qa:\n  subdomain: acme\n  workspaces: [101, 202]\n  poll_every_minutes: 2\n"
    )
    assert good.zendesk_qa is not None
    assert (good.zendesk_qa.base_url, good.zendesk_qa.workspaces) == (
        "https://acme.zendesk.com/qa",
        ("101", "202"),
    )
    assert good.zendesk_qa.poll_every_minutes == 2 and good.zendesk_qa.overlap_minutes == 15
    lines = len(sample_org().splitlines())
    bad = (
        "zendesk_qa:\n  subdomain: Acme Inc\n  workspaces: [101, main]\n  poll_every_minutes: 0\n  token: x\n"
    )
    with pytest.raises(OrgFileError) as refused:
        parse_org(sample_org() + bad)
    assert refused.value.errors == [
        f"org.yml:{lines + 5}: zendesk_qa.token: is not a known setting",
        f"org.yml:{lines + 2}: zendesk_qa.subdomain: must be your Zendesk subdomain (acme)",
        f"org.yml:{lines + 3}: zendesk_qa.workspaces[1]: must be a workspace id (a number, e.g. 12345)",
        f"org.yml:{lines + 4}: zendesk_qa.poll_every_minutes: must be a whole number from 1 to 60",
    ]
