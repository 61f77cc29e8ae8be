"""App Home for each role and /coach, over signed HTTP against the stand-in."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.standin.client import wait_for
from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, PRIYA, TOM, open_plan


def home_of(stack: Stack, user: str) -> str:
    view = stack.standin.views.get(f"VHOME{user}")
    return json.dumps(view["blocks"], ensure_ascii=False) if view else ""


def open_home(stack: Stack, user: str) -> str:
    before = len(stack.standin.calls_to("views.publish"))
    status, _ = stack.people.event({"type": "app_home_opened", "user": user, "channel": "D0", "tab": "home"})
    assert status == 200
    wait_for(lambda: len(stack.standin.calls_to("views.publish")) > before, what="views.publish")
    return home_of(stack, user)


def coach(stack: Stack, user: str, text: str = "") -> dict[str, Any]:
    before = len(stack.standin.calls_to("response_url"))
    status, _ = stack.people.command(user, "/coach", text)
    assert status == 200
    calls = wait_for(
        lambda: (
            len(stack.standin.calls_to("response_url")) > before and stack.standin.calls_to("response_url")
        ),
        what="the /coach answer",
    )
    return calls[-1].args


def test_each_role_sees_its_part(stack: Stack) -> None:
    for i, email in enumerate(["ana.ruiz@example.com", "tom.hale@example.com"]):
        payload = evaluation(id=f"ev-{i}")
        payload["agent"] = {"email": email}
        stack.post_score(payload)
    stack.sweep()
    leader = home_of(stack, PRIYA)  # published by the sweep when the cases opened
    assert "Your coaching queue" in leader and "Ana Ruiz" in leader and "Tom Hale" in leader
    assert leader.count('"action_id": "open_plan"') == 2
    assert "Billing* this month" in leader
    assert "Your teams, last 4 weeks" in home_of(stack, DANA)
    assert "No agreement open right now." in home_of(stack, ANA)

    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    agent = home_of(stack, ANA)
    assert "*Focus:* Acknowledges the customer's concern" in agent and '"action_id": "ack_agreement"' in agent
    leader = home_of(stack, PRIYA)
    assert leader.count('"action_id": "open_plan"') == 1 and "has not acknowledged" in leader


def test_opening_home_publishes_it_and_strangers_get_a_pointer(stack: Stack) -> None:
    stack.post_score(evaluation())
    assert "Ana Ruiz" in open_home(stack, PRIYA)
    stack.standin.add_user("U0STRANGER", "who@example.com", "Who Ever")
    assert "not in the org file" in open_home(stack, "U0STRANGER")


def test_home_stays_inside_the_block_limit(stack: Stack) -> None:
    for i in range(60):
        payload = evaluation(id=f"many-{i}")
        payload["agent"] = {"email": f"agent{i}@example.com"}
        stack.post_score(payload)
    org_agents = "\n".join(f"      - {{email: agent{i}@example.com}}" for i in range(60))
    from bot.org import apply_org, parse_org
    from tests.conftest import sample_org

    spec = parse_org(
        sample_org().replace(
            "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}",
            "      - {email: tom.hale@example.com, name: Tom Hale, slack_id: U0TOMHALE}\n" + org_agents,
        )
    )
    with stack.db.unit_of_work() as s:
        apply_org(s, spec, {}, stack.clock.now())
    view = json.loads(open_home(stack, PRIYA) or "[]")
    assert len(view) <= 100
    assert any("and 48 more" in json.dumps(b) for b in view)


def test_coach_summary_help_and_agent_picture(stack: Stack) -> None:
    payload = evaluation()
    payload["items"].append({"key": "next-steps", "name": "Confirms next steps", "score": 2, "max_score": 5})
    stack.post_score(payload)
    stack.sweep()
    own = json.dumps(coach(stack, PRIYA), ensure_ascii=False)
    assert "1 conversation to hold (0 late)" in own and '"response_type": "ephemeral"' in own
    assert "/coach @agent" in json.dumps(coach(stack, PRIYA, "help"))
    picture = json.dumps(coach(stack, PRIYA, f"<@{ANA}|ana.ruiz>"), ensure_ascii=False)
    assert "Open case #1" in picture and "Backlog" in picture and "Confirms next steps" in picture
    assert "missed on this evaluation" in picture
    # The agent may see their own picture; another agent may not.
    assert "Open case #1" in json.dumps(coach(stack, ANA, f"<@{ANA}>"))
    refused = coach(stack, TOM, f"<@{ANA}>")
    assert refused["text"].startswith("Only the agent, their team leader") and "blocks" not in refused
    assert "Mention one agent" in coach(stack, PRIYA, "ana")["text"]


def test_leadership_sees_a_leader_who_runs_only_one_kind(stack: Stack) -> None:
    for i, email in enumerate(["ana.ruiz@example.com", "tom.hale@example.com"]):
        payload = evaluation(id=f"ev-{i}")
        payload["agent"] = {"email": email}
        stack.post_score(payload)
    stack.sweep()
    for m in [m for m in stack.dm(PRIYA) if "leader_dm" in m["metadata"]["event_payload"]["dedupe_key"]]:
        view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), m, "open_plan")
        assert stack.people.submit(PRIYA, view) == (200, None)
    stack.clock.advance(timedelta(minutes=1))
    stack.sweep()
    assert "Only one kind of conversation (performance or developmental) in 8 weeks: Priya Shah" in home_of(
        stack, DANA
    )
