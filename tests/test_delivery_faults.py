"""Delivery when Slack misbehaves: nothing lost, nothing sent twice, nothing retried forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, text

from bot.app.services import slack_client
from bot.clock import FixedClock
from bot.standin.server import Fault, SlackStandIn
from scheduler import pacing
from scheduler.delivery import MAX_ATTEMPTS, OutboxSweep
from scheduler.pacing import Pace
from storage.db import Database
from storage.models import OutboxMessage, Person
from storage.outbox import enqueue_homes
from tests.conftest import Stack, build_stack, make_database, sample_org
from tests.payloads import evaluation
from tests.scenario import ANA, TOM
from tests.test_core_loop import MARCUS, PRIYA, texts


def rows(stack: Stack) -> list[OutboxMessage]:
    """Outbox rows of messages (App Home publishes are left out: they carry no dedupe metadata)."""
    with stack.db.unit_of_work() as s:
        return list(s.query(OutboxMessage).filter(OutboxMessage.kind != "home").order_by(OutboxMessage.id))


def delivered_keys(stack: Stack) -> Counter[str]:
    """How many messages carry each dedupe key across every conversation of the stand-in."""
    found: Counter[str] = Counter()
    for channel in stack.standin.channels:
        for m in stack.standin.messages(channel):
            found[(m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")] += 1
    return found


def test_429_waits_retry_after(stack: Stack) -> None:
    stack.standin.add_fault(Fault("chat.postMessage", "ratelimited", times=1, retry_after=7))
    stack.post_score(evaluation())
    first = stack.sweep().outbox
    assert first.retried == 1 and stack.dm(PRIYA) == []
    row = rows(stack)[0]
    assert (
        row.status == "pending"
        and row.due_at == stack.clock.now() + timedelta(seconds=7)
        and row.attempts == 0
    )
    stack.sweep()
    assert stack.dm(PRIYA) == []
    stack.clock.advance(timedelta(seconds=7))
    stack.sweep()
    assert len(stack.dm(PRIYA)) == 1 and rows(stack)[0].status == "sent"


def test_a_dm_held_back_by_a_429_keeps_the_conversation_it_opened(stack: Stack) -> None:
    """conversations.open (Tier 3, about 50 a minute) is asked once per person, not again for each
    post Slack holds back, nor for each message to the same person in one sweep."""
    stack.standin.add_fault(Fault("chat.postMessage", "ratelimited", times=1, retry_after=7))
    stack.post_score(evaluation(id="ev-ana"))
    stack.post_score(evaluation(id="ev-tom", agent={"email": TOM}))
    assert stack.sweep().outbox.retried == 2 and stack.dm(PRIYA) == []
    assert len(stack.standin.calls_to("conversations.open")) == 1
    with stack.db.unit_of_work() as s:
        kept = s.scalar(select(Person.dm_channel).where(Person.slack_id == PRIYA))
    assert kept is not None
    stack.clock.advance(timedelta(seconds=7))
    stack.sweep()
    assert len(stack.dm(PRIYA)) == 2 and {r.slack_channel for r in rows(stack)} == {kept}
    assert len(stack.standin.calls_to("conversations.open")) == 1


def test_a_message_slack_would_hold_back_is_not_rendered_until_it_may_go(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering a coaching DM reads the case, its evidence and the ranking: not done for a message
    that would only meet Slack's Retry-After."""
    from scheduler import delivery

    rendered: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        rendered.append(args[1])
        return render(*args, **kwargs)

    render = delivery.render
    monkeypatch.setattr(delivery, "render", counting)
    stack.standin.add_fault(Fault("chat.postMessage", "ratelimited", times=1, retry_after=7))
    stack.post_score(evaluation(id="ev-ana"))
    stack.post_score(evaluation(id="ev-tom", agent={"email": TOM}))
    assert stack.sweep().outbox.retried == 2
    assert rendered == ["leader_case"]  # the second one waits for the channel, unrendered
    stack.clock.advance(timedelta(seconds=7))
    stack.sweep()
    assert len(stack.dm(PRIYA)) == 2 and rendered.count("leader_case") == 3


def test_server_errors_back_off_then_deliver(stack: Stack) -> None:
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=2))
    stack.post_score(evaluation())
    assert stack.sweep().outbox.retried == 1
    for _ in range(2):
        stack.clock.advance(timedelta(hours=1))
        stack.sweep()
    row = rows(stack)[0]
    assert row.status == "sent" and row.attempts == 3
    assert len(stack.dm(PRIYA)) == 1


def test_persistent_server_errors_give_up_and_tell_an_admin(stack: Stack) -> None:
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=MAX_ATTEMPTS))
    stack.post_score(evaluation())
    for _ in range(MAX_ATTEMPTS + 2):
        stack.sweep()
        stack.clock.advance(timedelta(hours=2))
    first = rows(stack)[0]
    assert (
        first.status == "failed" and first.attempts == MAX_ATTEMPTS and "gave up" in (first.last_error or "")
    )
    alert = stack.dm("U0SAM")
    assert (
        len(alert) == 1
        and "could not be delivered" in alert[0]["text"]
        and "internal_error" in alert[0]["text"]
    )
    assert stack.dm(PRIYA) == []


def test_permanent_errors_fail_at_once_and_are_surfaced(stack: Stack) -> None:
    stack.standin.add_fault(Fault("conversations.open", "user_not_found", times=1))
    stack.post_score(evaluation())
    result = stack.sweep().outbox
    assert result.failed == 1
    failed = rows(stack)[0]
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 1, "user_not_found")
    assert "user_not_found" in stack.dm("U0SAM")[0]["text"]
    stack.clock.advance(timedelta(days=1))
    stack.sweep()
    assert len(stack.standin.calls_to("conversations.open", ok=False)) == 1  # never retried


def test_a_person_without_slack_id_is_reported_not_lost(stack: Stack) -> None:
    with stack.db.unit_of_work() as s:
        s.query(Person).filter_by(email="priya.shah@example.com").update(
            {"slack_id": None, "dm_channel": None}
        )
    stack.post_score(evaluation())
    stack.sweep()
    assert rows(stack)[0].last_error == "no_slack_id"
    assert "no_slack_id" in stack.dm("U0SAM")[0]["text"]


def lose_the_next_posts_answer(stack: Stack) -> None:
    """Slack posts the next message, but its answer never arrives (a timeout on our side)."""
    stack.services.slack = slack_client(stack.services.settings, interactive=False)
    stack.services.slack.timeout = 1
    stack.sweeps.outbox = OutboxSweep(stack.db, stack.services.slack, stack.clock)
    stack.standin.add_fault(Fault("chat.postMessage", "slow", times=1, delay=1.5))


def test_a_lost_response_is_found_in_history_not_sent_again(stack: Stack) -> None:
    lose_the_next_posts_answer(stack)
    stack.post_score(evaluation())
    assert stack.sweep().outbox.retried == 1
    stack.clock.advance(timedelta(hours=1))
    assert stack.sweep().outbox.recovered == 1
    assert len(stack.dm(PRIYA)) == 1 and rows(stack)[0].status == "sent"
    assert stack.standin.calls_to("conversations.history")[0].args["include_all_metadata"] in (
        "1",
        "true",
        True,
    )


def test_a_score_that_joins_while_the_dm_answer_is_lost_still_reaches_the_dm(stack: Stack) -> None:
    """The DM went out but its answer was lost; a second score joins the case before the retry. The
    retry finds the DM as first posted: it is then updated to show both scores, not left as it was."""
    lose_the_next_posts_answer(stack)
    stack.post_score(evaluation())
    assert stack.sweep().outbox.retried == 1
    later = evaluation(id="ev-2", score=80.0)
    assert stack.post_score(later)[1]["status"] == "joined_case"
    stack.sweep()  # the refresh is due now; the DM's retry is not
    stack.clock.advance(timedelta(hours=1))
    for _ in range(3):
        stack.sweep()
        stack.clock.advance(timedelta(minutes=5))
    dm = stack.message(PRIYA, "leader_dm")
    assert "2 scores for one conversation" in texts(dm) and "80/100" in texts(dm)
    assert len(stack.dm(PRIYA)) == 1 and len(stack.standin.calls_to("chat.postMessage")) == 1


def crash_after_the_post(stack: Stack) -> None:
    """A sweep posts the leader's DM and dies before it records it: the row is left 'sending'."""
    sweep = stack.sweeps.outbox

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed")

    original = sweep._mark_sent
    sweep._mark_sent = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        stack.sweep()
    sweep._mark_sent = original  # type: ignore[method-assign]
    assert rows(stack)[0].status == "sending" and len(stack.dm(PRIYA)) == 1


def test_a_crash_between_the_slack_call_and_the_commit_sends_at_most_once(stack: Stack) -> None:
    stack.post_score(evaluation())
    crash_after_the_post(stack)
    stack.sweep()  # the lease has not expired: nothing happens
    assert len(stack.standin.calls_to("chat.postMessage")) == 1
    stack.clock.advance(timedelta(minutes=3))
    assert stack.sweep().outbox.recovered == 1
    assert len(stack.dm(PRIYA)) == 1 and rows(stack)[0].status == "sent"


def test_a_post_is_found_again_when_this_hosts_clock_runs_ahead_of_slacks(stack: Stack) -> None:
    """Message times are Slack's; the row's is this host's. Ten minutes apart, the DM is still found."""
    bot_clock = stack.standin.now
    stack.standin.now = lambda: bot_clock() - 600  # Slack's clock, ten minutes behind this host's
    stack.post_score(evaluation())
    crash_after_the_post(stack)
    stack.clock.advance(timedelta(minutes=3))
    assert stack.sweep().outbox.recovered == 1
    assert len(stack.dm(PRIYA)) == 1 and rows(stack)[0].status == "sent"


def test_a_post_is_found_again_behind_a_page_of_later_messages(stack: Stack) -> None:
    """The history check reads on past the first page Slack gives (100 messages) to the row's time."""
    stack.post_score(evaluation())
    crash_after_the_post(stack)
    channel = stack.standin.calls_to("chat.postMessage")[0].args["channel"]
    for n in range(150):  # the leader writes in the bot's DM meanwhile
        stack.standin.user_says(channel, PRIYA, f"note {n}")
    stack.clock.advance(timedelta(minutes=3))
    assert stack.sweep().outbox.recovered == 1
    assert len(stack.dm(PRIYA)) == 151 and rows(stack)[0].status == "sent"
    assert len(stack.standin.calls_to("chat.postMessage")) == 1


def test_a_history_check_slack_rate_limits_waits_and_still_finds_the_post(stack: Stack) -> None:
    """A 429 on the history check is not an attempt that might have posted, nor one that shows the post
    absent: the row waits for Retry-After and checks again."""
    stack.post_score(evaluation())
    crash_after_the_post(stack)
    stack.standin.add_fault(Fault("conversations.history", "ratelimited", times=1, retry_after=5))
    stack.clock.advance(timedelta(minutes=3))
    assert stack.sweep().outbox.retried == 1
    assert len(stack.standin.calls_to("chat.postMessage")) == 1 and rows(stack)[0].status == "pending"
    stack.clock.advance(timedelta(seconds=5))
    assert stack.sweep().outbox.recovered == 1
    assert len(stack.dm(PRIYA)) == 1 and rows(stack)[0].status == "sent"


def test_a_post_that_cannot_be_told_apart_from_a_long_history_is_not_sent_again(stack: Stack) -> None:
    """Past HISTORY_PAGES pages, whether the earlier attempt posted it cannot be told: it is not sent
    again (that could double it), and an admin is told."""
    from scheduler.delivery import HISTORY_PAGE, HISTORY_PAGES

    stack.post_score(evaluation())
    crash_after_the_post(stack)
    channel = stack.standin.calls_to("chat.postMessage")[0].args["channel"]
    for n in range(HISTORY_PAGES * HISTORY_PAGE):
        stack.standin.user_says(channel, PRIYA, f"note {n}")
    stack.clock.advance(timedelta(minutes=3))
    assert stack.sweep().outbox.failed == 1
    row = rows(stack)[0]
    assert row.status == "failed" and (row.last_error or "").startswith("history_too_long")
    assert len(stack.standin.calls_to("chat.postMessage", ok=None)) == 2  # the DM, and the admin's alert
    assert "history_too_long" in stack.dm("U0SAM")[0]["text"]


def test_a_share_of_every_fault_still_delivers_each_message_once(stack: Stack) -> None:
    stack.standin.add_fault(Fault("chat.postMessage", "ratelimited", rate=0.2, retry_after=1))
    stack.standin.add_fault(Fault("*", "server_error", rate=0.2))
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", rate=0.2, after_effect=True))
    for i, email in enumerate(["ana.ruiz@example.com", "tom.hale@example.com", "lena.ito@example.com"] * 4):
        payload = evaluation(id=f"ev-{i}")
        payload["agent"] = {"email": email}
        assert stack.post_score(payload)[0] == 202
    for _ in range(40):
        stack.sweep()
        stack.clock.advance(timedelta(minutes=30))
    statuses = Counter(r.status for r in rows(stack))
    assert statuses["pending"] == statuses["sending"] == 0
    sent_keys = [r.dedupe_key for r in rows(stack) if r.status == "sent" and r.updates_key is None]
    counts = delivered_keys(stack)
    assert all(counts[k] == 1 for k in sent_keys), {k: counts[k] for k in sent_keys if counts[k] != 1}
    assert sum(statuses.values()) == len(rows(stack))


@pytest.mark.postgres
def test_two_processes_sweeping_postgres_send_nothing_twice(
    request: pytest.FixtureRequest, tmp_path: Path, standin: object, clock: object
) -> None:
    db = make_database("postgres", tmp_path, request)
    stack = build_stack(db, standin, clock)  # type: ignore[arg-type]
    try:
        for i, email in enumerate(
            ["ana.ruiz@example.com", "tom.hale@example.com", "lena.ito@example.com"] * 10
        ):
            payload = evaluation(id=f"ev-{i}")
            payload["agent"] = {"email": email}
            assert stack.post_score(payload)[0] == 202
        with db.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
        url = db.engine.url.render_as_string(hide_password=False) + f"?options=-csearch_path%3D{schema}"
        settings = stack.services.settings
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SLACK_BOT_TOKEN": settings.slack_bot_token,
            "SLACK_SIGNING_SECRET": "x",
            "QA_WEBHOOK_SECRET": settings.qa_webhook_secret,
            "SLACK_API_URL": settings.slack_api_url or "",
        }
        env.pop("COACHLOOP_ORG", None)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot.app.cli", "sweep"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        due = [
            r for r in rows(stack) if r.due_at <= datetime.now(UTC)
        ]  # `coachloop sweep` runs at the real time
        assert {r.status for r in due} <= {"sent", "skipped"}
        posted = [r.dedupe_key for r in due if r.updates_key is None]
        counts = delivered_keys(stack)
        assert sorted(k for k, n in counts.items() if n) == sorted(posted)
        assert max(counts.values()) == 1
        # One leader DM per agent's case (the later scores joined them), plus what the timers queued.
        assert sum(k.endswith(":leader_dm") for k in posted) == 3
    finally:
        stack.server.stop()
        db.dispose()


def test_an_update_waits_for_a_post_still_in_flight(stack: Stack) -> None:
    stack.post_score(evaluation())
    with stack.db.unit_of_work() as s:
        post = s.query(OutboxMessage).filter_by(kind="leader_case").one()
        post.status, post.lease_until = "sending", stack.clock.now() + timedelta(minutes=2)
    later = evaluation(id="ev-2", score=90.0)
    assert stack.post_score(later)[1]["status"] == "joined_case"
    stack.sweep()
    refresh = next(r for r in rows(stack) if r.updates_key)
    assert refresh.status == "pending" and refresh.due_at == stack.clock.now() + timedelta(seconds=30)
    stack.clock.advance(timedelta(minutes=3))  # the post's lease expires: it goes out, then the update
    stack.sweep()
    assert [r.status for r in rows(stack)] == ["sent", "sent"]
    assert "90/100" in json.dumps(stack.message(PRIYA, "leader_dm")["blocks"])


def org_with_three_more_agents_for_priya() -> str:
    """The sample org with agent0-2@example.com added to Priya's team (five agents: five leader DMs)."""
    return sample_org().replace(
        "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}\n",
        "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}\n"
        + "".join(f"      - {{email: agent{n}@example.com, name: Agent {n}}}\n" for n in range(3)),
    )


def test_a_channel_slack_rate_limits_is_left_alone_until_retry_after(
    sqlite_db: Database, standin: SlackStandIn, clock: FixedClock
) -> None:
    """Slack posts about one message a second to a channel. Once it answers 429 for Priya's DM, the
    sweep sends her nothing more until Retry-After has passed (as Slack asks), while Marcus's DM still
    goes out; every message then arrives once."""
    stack = build_stack(sqlite_db, standin, clock, org_with_three_more_agents_for_priya())
    try:
        limits = standin.rate_limits
        assert limits is not None
        # One post, then one every ten seconds: slow enough that real time alone frees none here.
        limits.channel_burst, limits.channel_per_second = 1, 0.1
        priya_agents = [ANA, TOM] + [f"agent{n}@example.com" for n in range(3)]
        for n, agent in enumerate([*priya_agents, "lena.ito@example.com"]):
            payload = evaluation(id=f"ev-{n}")
            payload["agent"] = {"email": agent}
            assert stack.post_score(payload)[0] == 202
        priya = standin.dm_of(PRIYA)

        def posts_to_priya(*, ok: bool) -> int:
            return sum(c.args.get("channel") == priya for c in standin.calls_to("chat.postMessage", ok=ok))

        stack.sweep()
        assert posts_to_priya(ok=True) == 1 and posts_to_priya(ok=False) == 1  # then held back, not tried
        assert len(stack.dm(MARCUS)) == 1
        for _ in range(len(priya_agents)):
            stack.clock.advance(timedelta(seconds=10))
            stack.sweep()
        assert posts_to_priya(ok=True) == len(priya_agents)
        assert posts_to_priya(ok=False) <= len(priya_agents)  # at most one refusal each time
        assert all(n == 1 for n in delivered_keys(stack).values())
        assert all(r.status == "sent" for r in rows(stack))
    finally:
        stack.stop()


def slack_client_for(standin: SlackStandIn) -> WebClient:
    return WebClient(token=standin.token, base_url=standin.url)


def calls_until_refused(call: Callable[[], object], most: int) -> tuple[int, SlackApiError]:
    """How many calls Slack carried out before it refused one, and its refusal."""
    for done in range(most):
        try:
            call()
        except SlackApiError as exc:
            return done, exc
    raise AssertionError(f"{most} calls in a row were all carried out")


def test_the_stand_in_holds_the_bot_to_slacks_documented_limits(
    standin: SlackStandIn, clock: FixedClock
) -> None:
    """Tier 3 (conversations.open): 50 a minute; chat.postMessage: about one a second per channel after
    a burst. Over a limit: 429 `ratelimited` with Retry-After, and nothing carried out."""
    client = slack_client_for(standin)
    standin.add_user("U0RATE", "rate@example.com", "Rate")
    opened, refused = calls_until_refused(lambda: client.conversations_open(users="U0RATE"), 60)
    assert 50 <= opened <= 52  # real time frees about one call in 1.2 s
    assert refused.response.status_code == 429 and refused.response["error"] == "ratelimited"
    assert int(refused.response.headers["Retry-After"]) >= 1
    clock.advance(timedelta(seconds=2))
    client.conversations_open(users="U0RATE")  # the minute's allowance comes back a little at a time
    channel = standin.dm_of("U0RATE")
    assert standin.rate_limits is not None
    burst = standin.rate_limits.channel_burst
    posted, limited = calls_until_refused(lambda: client.chat_postMessage(channel=channel, text="hi"), 30)
    assert burst <= posted <= burst + 2 and limited.response.status_code == 429
    assert len(standin.messages(channel)) == posted  # the refused one was not posted
    clock.advance(timedelta(seconds=1))
    client.chat_postMessage(channel=channel, text="a second later")


def test_home_re_publishes_keep_to_a_pace_that_leaves_slacks_limit_to_people(stack: Stack) -> None:
    """A burst of Home re-publishes goes out at the outbox's pace (each rendered once, when its
    turn comes), none refused by Slack; meanwhile a person opening their Home is answered at once."""
    stack.sweep()  # what the org import queued
    stack.sweeps.outbox.limits.paces["views.publish"] = Pace(2)  # two a minute, so five take a while
    with stack.db.unit_of_work() as session:
        people = list(session.scalars(select(Person.id).where(Person.slack_id.is_not(None)).limit(5)))
        enqueue_homes(session, people, stack.clock.now())
    published = lambda: len(stack.standin.calls_to("views.publish"))  # noqa: E731
    before = published()
    stack.sweep()
    assert published() == before + 2
    assert stack.standin.calls_to("views.publish", ok=False) == []
    waiting = [r for r in home_rows(stack) if r.status == "pending"]
    assert len(waiting) == 3 and all(r.attempts == 0 and r.due_at > stack.clock.now() for r in waiting)
    status, _ = stack.people.event({"type": "app_home_opened", "user": PRIYA, "tab": "home"})
    assert status == 200 and wait_for(lambda: published() == before + 3)  # not paced
    for _ in range(3):
        stack.clock.advance(timedelta(seconds=30))
        stack.sweep()
    assert published() == before + 3 + 3 and all(r.status == "sent" for r in home_rows(stack))


@pytest.mark.parametrize("pace", ["workspace", "channel"])
def test_a_backlog_under_the_post_pace_is_deferred_once_per_row_and_goes_in_order(
    sqlite_db: Database, standin: SlackStandIn, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, pace: str
) -> None:
    """More posts than the workspace's pace, or the pace of the leader's DM, lets through: those it
    lets through go, each other one is given its place (not rendered, no attempt counted) and is not
    claimed again before it; at its place it goes, in the order the posts were queued, and Slack
    refuses none."""
    stack = build_stack(sqlite_db, standin, clock, org_with_three_more_agents_for_priya())
    try:
        stack.sweep()  # what the org import queued
        # Two a minute, so that three of the five DMs to Priya wait.
        if pace == "workspace":
            stack.sweeps.outbox.limits.paces["chat.postMessage"] = Pace(2)
        else:
            monkeypatch.setattr(pacing, "CHANNEL_POSTS_PER_MINUTE", 2)
            monkeypatch.setattr(pacing, "CHANNEL_BURST", 2)
            stack.sweeps.outbox.limits = pacing.SlackLimits()
        for n, agent in enumerate([ANA, TOM] + [f"agent{n}@example.com" for n in range(3)]):
            payload = evaluation(id=f"ev-{n}")
            payload["agent"] = {"email": agent}
            assert stack.post_score(payload)[0] == 202
        posts = lambda ok: len(standin.calls_to("chat.postMessage", ok=ok))  # noqa: E731
        before = posts(True)
        stack.sweep()
        assert posts(True) == before + 2
        waiting = sorted((r for r in rows(stack) if r.status == "pending"), key=lambda r: r.id)
        assert len(waiting) == 3 and all(r.attempts == 0 for r in waiting)
        places = [r.due_at for r in waiting]
        assert places == sorted(places) and len(set(places)) == 3 and places[0] > stack.clock.now()
        stack.sweep()  # nothing due: none of them is claimed again
        still = [(r.due_at, r.attempts) for r in rows(stack) if r.status == "pending"]
        assert still == [(place, 0) for place in places]
        for place in places:
            stack.clock.set(place)
            stack.sweep()
        assert posts(True) == before + 5 and posts(False) == 0
        dms = [(r.sent_at, r.id) for r in rows(stack) if r.kind == "leader_case" and r.sent_at is not None]
        assert len(dms) == 5 and [i for _, i in sorted(dms)] == sorted(i for _, i in dms)
        assert all(n == 1 for n in delivered_keys(stack).values())
    finally:
        stack.stop()


def home_rows(stack: Stack) -> list[OutboxMessage]:
    with stack.db.unit_of_work() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "home")))


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_person_given_another_slack_account_gets_their_dms_there(stack: Stack) -> None:
    """The DM conversation kept on a person is the one with their Slack account: when the org file
    names another account for them, their messages go to it, never to the previous account."""
    from tests.scenario import import_org

    stack.post_score(evaluation(id="ev-ana"))
    stack.sweep()
    assert len(stack.dm(PRIYA)) == 1
    stack.standin.add_user("U0PRIYA2", "priya.new@example.com", "Priya Shah")
    moved = sample_org().replace(
        "{email: priya.shah@example.com, name: Priya Shah}",
        "{email: priya.shah@example.com, name: Priya Shah, slack_id: U0PRIYA2}",
    )
    assert "U0PRIYA2" in moved
    import_org(stack.db, stack.clock.now(), moved)
    stack.post_score(evaluation(id="ev-tom", agent={"email": TOM}))
    stack.sweep()
    assert len(stack.dm(PRIYA)) == 1
    moved_dms = stack.dm("U0PRIYA2")
    assert [m["metadata"]["event_payload"]["dedupe_key"] for m in moved_dms] == ["case:2:leader_dm"]
