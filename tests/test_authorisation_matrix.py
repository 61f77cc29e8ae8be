"""Every interaction the bot offers, tried as every role: who may act, a clear refusal for everyone
else (naming nobody to people outside the case's team), and nothing changed by a refusal."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest

from bot.coaching import STRANGER_REFUSAL
from bot.standin.client import wait_for
from tests.conftest import Stack
from tests.test_core_loop import land, open_plan, snapshot

ROLES = {
    "leader": "U0PRIYA",
    "other_leader": "U0MARCUS",
    "agent": "U0ANA",
    "other_agent": "U0LENA",
    "escalation": "U0DANA",
    "outsider": "U0OUTSIDER",
}
INSIDERS = {"leader", "agent", "escalation"}
# Who may act on Ana's case (team Billing: leader Priya, escalation contact Dana). The leader holding
# the case plans and reviews it; escalation contacts may waive it and remind the leader.
BUTTONS = {
    "open_plan": {"leader"},
    "waive_case": {"leader", "escalation"},
    "open_review": {"leader"},
    "remind_leader": {"escalation"},
    "ack_agreement": {"agent"},
    "discuss_agreement": {"agent"},
}
MODALS = {
    "coaching_plan": {"leader"},
    "followup_review": {"leader"},
    "waive_case": {"leader", "escalation"},
}
CHANGES = {"ack_agreement", "discuss_agreement"}  # allowed presses that change the case at once
COACH_ANA = {"leader", "agent", "escalation"}
NAMES = ("Priya", "Ana", "Ruiz", "Shah", "Dana")


@pytest.fixture
def agreed_case(stack: Stack) -> tuple[Stack, int, dict[str, Any]]:
    stack.standin.add_user("U0OUTSIDER", "someone@elsewhere.example", "Someone Elsewhere")
    case_id = land(stack)
    view = open_plan(stack)
    assert stack.people.submit("U0PRIYA", view) == (200, None)
    stack.sweep()
    return stack, case_id, view


def ephemerals(stack: Stack, user: str) -> list[str]:
    return [
        c.args["text"] for c in stack.standin.calls_to("chat.postEphemeral") if c.args.get("user") == user
    ]


def press(stack: Stack, user: str, action_id: str, case_id: int, *, changes: bool = False) -> str:
    """Press a button naming the case; returns what they were told or shown (or "changed", when the
    press is expected to change the case and says nothing)."""
    said, opened = len(ephemerals(stack, user)), len(stack.standin.calls_to("views.open"))
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user, "name": user, "team_id": "T0STANDIN"},
        "api_app_id": "A0COACH",
        "team": {"id": "T0STANDIN"},
        "trigger_id": f"{int(time.time())}.{secrets.token_hex(6)}",
        "channel": {"id": "C0LEADERS"},  # a button forwarded to a shared channel
        "container": {"type": "message", "channel_id": "C0LEADERS"},
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b", "value": str(case_id)}],
    }
    before = snapshot(stack)
    assert stack.people.interact(payload)[0] == 200

    def answered() -> str | None:
        if changes and snapshot(stack) != before:
            return "changed"
        told = ephemerals(stack, user)
        if len(told) > said:
            return "told: " + told[-1]
        views = stack.standin.calls_to("views.open")
        if len(views) > opened:
            return "opened: " + json.dumps(views[-1].args["view"])
        return None

    return wait_for(answered, timeout=15, what=f"an answer to {action_id}")


@pytest.mark.parametrize("action_id", sorted(BUTTONS))
def test_buttons_as_every_role(agreed_case: tuple[Stack, int, dict[str, Any]], action_id: str) -> None:
    stack, case_id, _ = agreed_case
    for role, user in ROLES.items():
        if role in BUTTONS[action_id]:
            continue
        before = snapshot(stack)
        answer = press(stack, user, action_id, case_id)
        assert answer.startswith("told: "), (role, answer)
        if role in INSIDERS:
            assert "Only" in answer, (role, answer)
        else:
            assert answer == "told: " + STRANGER_REFUSAL, (role, answer)
        time.sleep(0.05)
        assert snapshot(stack) == before, role
    for role in sorted(BUTTONS[action_id]):
        answer = press(stack, ROLES[role], action_id, case_id, changes=action_id in CHANGES)
        assert "can't act" not in answer and "Only " not in answer, (role, answer)


@pytest.mark.parametrize("callback_id", sorted(MODALS))
def test_modal_submissions_as_every_role(
    agreed_case: tuple[Stack, int, dict[str, Any]], callback_id: str
) -> None:
    stack, case_id, plan_view = agreed_case
    view = {**plan_view, "callback_id": callback_id, "private_metadata": json.dumps({"case_id": case_id})}
    for role, user in ROLES.items():
        before = snapshot(stack)
        status, answer = stack.people.submit(user, view)
        assert status == 200
        shown = json.dumps(answer or {})
        if role in MODALS[callback_id]:
            assert "can't act" not in shown and "Only " not in shown, (role, shown)
            continue
        assert answer is not None and answer["response_action"] == "update", (role, answer)
        if role in INSIDERS:
            assert "Only " in shown, (role, shown)
        else:
            assert STRANGER_REFUSAL in shown and not any(n in shown for n in NAMES), (role, shown)
        assert snapshot(stack) == before, role


def test_coach_command_about_an_agent_as_every_role(agreed_case: tuple[Stack, int, dict[str, Any]]) -> None:
    stack, _, _ = agreed_case
    for role, user in ROLES.items():
        before = snapshot(stack)
        replies = len(stack.standin.calls_to("response_url"))
        assert stack.people.command(user, "/coach", "<@U0ANA>")[0] == 200
        reply = wait_for(
            lambda: stack.standin.calls_to("response_url")[replies:] or None,  # noqa: B023
            timeout=15,
            what="the /coach answer",
        )[0].args
        shown = json.dumps(reply)
        if role in COACH_ANA:
            assert "blocks" in reply and "Ana" in shown, (role, shown)
        else:
            assert "Ruiz" not in shown and "blocks" not in reply, (role, shown)
        assert snapshot(stack) == before, role


def test_home_shows_each_role_only_its_own(agreed_case: tuple[Stack, int, dict[str, Any]]) -> None:
    stack, _, _ = agreed_case
    for role, user in ROLES.items():
        assert stack.people.event({"type": "app_home_opened", "user": user, "tab": "home"})[0] == 200
        home = wait_for(lambda: stack.standin.views.get(f"VHOME{user}"), timeout=15, what="a Home")  # noqa: B023
        shown = json.dumps(home)
        sees_case = any(mark in shown for mark in ("Ana Ruiz", "Acknowledges the customer", "*Billing*"))
        assert sees_case == (role in INSIDERS), (role, shown[:300])
