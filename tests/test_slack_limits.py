"""Slack's limits, a rate-limited listener call, and text that Slack would read as markup.

The stand-in rejects what Slack rejects (block and view limits via slack_sdk.models), so a
message or modal that goes through here is one Slack would accept."""

from __future__ import annotations

import json
from datetime import timedelta

from slack_sdk import WebClient

from bot.org import apply_org, parse_org
from bot.standin.client import wait_for
from bot.standin.server import Fault, SlackStandIn
from handlers.directory import SlackDirectory
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import PRIYA, block, land, open_plan
from tests.test_followup import at, escalations, run_until

LONG_NAME = "Anastasia Maria Guadalupe de los Ángeles Ruiz-Villanueva y Castellanos"


def add_agents(stack: Stack, lines: list[str]) -> None:
    anchor = "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}"
    spec = parse_org(sample_org().replace(anchor, anchor + "\n" + "\n".join(lines)))
    with stack.db.unit_of_work() as s:
        apply_org(s, spec, {}, stack.clock.now())


def test_long_names_and_a_hundred_and_twenty_criteria_stay_inside_slack_limits(stack: Stack) -> None:
    stack.standin.add_user("U0LONG", "long@example.com", LONG_NAME)
    add_agents(stack, [f"      - {{email: long@example.com, name: {LONG_NAME}, slack_id: U0LONG}}"])
    payload = evaluation(id="long")
    payload["agent"] = {"email": "long@example.com"}
    payload["items"] = [
        {
            "key": f"c{i:03d}",
            "name": f"Criterion {i} " + "x" * 120,
            "score": 0,
            "max_score": 5,
            "weight": 1 + i % 3,
            "comment": "y" * 2900,
        }
        for i in range(120)
    ]
    assert stack.post_score(payload)[0] == 202
    stack.sweep()
    assert stack.standin.calls_to("chat.postMessage", ok=False) == []
    dm = stack.message(PRIYA, "leader_dm")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert len(view["title"]["text"]) <= 24
    options = block(view, "behaviour")["options"]
    assert len(options) == 100 and options[-1]["value"] == "development-goal"
    assert all(len(o["text"]["text"]) <= 75 for o in options)
    assert stack.people.submit(PRIYA, view) == (200, None)
    stack.sweep()
    assert stack.standin.calls_to("chat.postMessage", ok=False) == []  # the agent's agreement fits too


def test_more_breaches_than_one_message_shows_say_how_many_more(stack: Stack) -> None:
    emails = [f"agent{i}@example.com" for i in range(18)]
    add_agents(stack, [f"      - {{email: {e}, slack_id: U0AG{i:02d}}}" for i, e in enumerate(emails)])
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    for i, email in enumerate(emails):
        payload = evaluation(id=f"many-{i}")
        payload["agent"] = {"email": email}
        assert stack.post_score(payload)[0] == 202
    run_until(stack, at("2026-11-30T17:30:00+00:00"), step=timedelta(hours=1) / 2)
    sent = escalations(stack)
    assert len(sent) == 1
    assert sent[0]["text"].startswith("18 coaching conversations past the deadline")
    assert len(sent[0]["blocks"]) <= 50
    assert "…and 3 more." in json.dumps(sent[0]["blocks"], ensure_ascii=False)


def test_a_rate_limited_views_open_is_retried_inside_the_listener(stack: Stack) -> None:
    land(stack)
    stack.standin.add_fault(Fault("views.open", "ratelimited", times=1, retry_after=1))
    view = open_plan(stack)
    assert view["callback_id"] == "coaching_plan"

    def both_on_record() -> list[bool] | None:
        """The modal shows as soon as Slack opens it; the call is on record as its answer leaves."""
        oks = [c.ok for c in stack.standin.calls_to("views.open", ok=None)]
        return oks if len(oks) >= 2 else None

    assert wait_for(both_on_record, what="the retried views.open on record") == [False, True]


def test_evaluator_text_cannot_ping_a_channel_or_break_the_markup(stack: Stack) -> None:
    payload = evaluation()
    payload["items"][0]["comment"] = "Said <!channel> & promised a refund <https://x.test|here>."
    land(stack, items=payload["items"])
    view = open_plan(stack)
    assert "Said <!channel> & promised" in block(view, "example")["initial_value"]  # plain text: as typed
    assert stack.people.submit(PRIYA, view) == (200, None)
    stack.sweep()
    agreement = json.dumps(stack.message("U0ANA", "agent_agreement")["blocks"])
    assert "Said &lt;!channel&gt; &amp; promised a refund &lt;https://x.test|here&gt;." in agreement
    assert "<!channel>" not in agreement


def test_the_org_import_waits_out_slacks_lookup_limit(standin: SlackStandIn) -> None:
    """users.lookupByEmail is Tier 3 (about 50 a minute): an org of more people than that is
    looked up at Slack's pace, every one of them found, rather than failing halfway."""
    people = [(f"U0MANY{n:02}", f"many{n:02}@example.com", f"Many {n}") for n in range(55)]
    for user in people:
        standin.add_user(*user)
    directory = SlackDirectory(WebClient(token=standin.token, base_url=standin.url))
    found = [directory.lookup(email) for _, email, _ in people]
    assert [f.slack_id if f else None for f in found] == [sid for sid, _, _ in people]
    assert standin.calls_to("users.lookupByEmail", ok=False)  # Slack did say to wait
