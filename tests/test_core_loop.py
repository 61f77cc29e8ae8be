"""End to end: a signed score lands, the leader plans the conversation in Slack, the agent acknowledges.

Everything goes over HTTP: the webhook, Slack-signed payloads to /slack/events, and
the real WebClient talking to the Slack stand-in.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.standin.client import wait_for
from storage.models import AuditEntry, Case, OutboxMessage
from tests.conftest import Stack
from tests.payloads import evaluation

PRIYA, ANA, TOM, DANA, MARCUS = "U0PRIYA", "U0ANA", "U0TOMHALE", "U0DANA", "U0MARCUS"


def case_state(stack: Stack, case_id: int) -> str:
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.state


def texts(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def open_plan(stack: Stack, user: str = PRIYA) -> dict[str, Any]:
    return stack.people.open_modal(
        user, stack.standin.dm_of(PRIYA), stack.message(PRIYA, "leader_dm"), "open_plan"
    )


def land(stack: Stack, **changes: Any) -> int:
    status, body = stack.post_score(evaluation(**changes))
    assert status == 202, body
    stack.sweep()
    return int(body["case_id"])


def test_score_to_acknowledged_agreement(any_stack: Stack) -> None:
    stack = any_stack
    case_id = land(stack)

    dm = stack.message(PRIYA, "leader_dm")
    body = texts(dm)
    assert "Ana Ruiz" in body and "68/100" in body and "Billing calls v3" in body and "C-88912" in body
    assert "By *Mon 30 Nov, 17:30* — 5 working days left" in body
    assert "Acknowledges the customer's concern" in body
    button = dm["blocks"][-2]["elements"][0]
    assert (button["action_id"], button["style"], button["value"]) == ("open_plan", "primary", str(case_id))
    assert dm["metadata"]["event_payload"]["dedupe_key"] == f"case:{case_id}:leader_dm"

    view = open_plan(stack)
    assert json.loads(view["private_metadata"]) == {"case_id": case_id}
    example = next(b for b in view["blocks"] if b.get("block_id") == "example")["element"]["initial_value"]
    assert example.startswith(
        "On the call at 11:23 yesterday (C-88912), 4:12 in: Customer asked why the refund"
    )
    assert example.endswith("The better move: Name the frustration before explaining the policy.")
    behaviour = next(b for b in view["blocks"] if b.get("block_id") == "behaviour")["element"]
    assert behaviour["initial_option"]["value"] == "acknowledge"
    by_when = next(b for b in view["blocks"] if b.get("block_id") == "by_when")["element"]["initial_date"]
    assert by_when == "2026-11-30"
    questions = view["blocks"][0]["text"]["text"]
    assert "How do you think that contact went" in questions

    status, answer = stack.people.submit(PRIYA, view)
    assert (status, answer) == (200, None)
    assert case_state(stack, case_id) == "agreed"

    stack.sweep()
    agreement = stack.message(ANA, "agent_agreement")
    body = texts(agreement)
    assert "Acknowledges the customer's concern" in body and "by Mon 30 Nov" in body
    assert "Check the criterion in the next evaluations" in body
    ack_button = agreement["blocks"][-1]["elements"][0]
    assert (ack_button["action_id"], ack_button["style"]) == ("ack_agreement", "primary")
    assert agreement["blocks"][-1]["elements"][1]["action_id"] == "discuss_agreement"
    leader_dm = stack.message(PRIYA, "leader_dm")
    assert (
        leader_dm.get("edited")
        and "Coached" in texts(leader_dm)
        and "Plan the conversation" not in texts(leader_dm)
    )

    stack.people.click(ANA, stack.standin.dm_of(ANA), agreement, "ack_agreement")
    wait_for(lambda: case_state(stack, case_id) == "acknowledged", what="acknowledgement")
    stack.sweep()
    assert "You acknowledged this today" in texts(stack.message(ANA, "agent_agreement"))
    assert "Ana Ruiz acknowledged the action" in texts(stack.message(PRIYA, "leader_dm"))
    # One post per person; everything else was an update in place.
    assert len(stack.dm(PRIYA)) == 1 and len(stack.dm(ANA)) == 1

    with stack.db.unit_of_work() as session:
        actions = [
            a.action for a in session.query(AuditEntry).filter_by(case_id=case_id).order_by(AuditEntry.id)
        ]
    assert actions == ["case_opened", "plan_agreed", "agreement_acknowledged"]


def test_second_score_joins_the_open_case_and_updates_the_dm(stack: Stack) -> None:
    case_id = land(stack)
    later = evaluation(id="ev-2", landed_at="2026-11-24T10:00:00Z", score=80.0)
    stack.clock.advance(timedelta(days=1))
    status, body = stack.post_score(later)
    assert (status, body["case_id"], body["status"]) == (202, case_id, "joined_case")
    stack.sweep()
    dm = stack.message(PRIYA, "leader_dm")
    assert "2 scores for one conversation" in texts(dm) and "80/100" in texts(dm)
    # The deadline stays the earliest.
    assert "Mon 30 Nov, 17:30" in texts(dm)
    assert len(stack.dm(PRIYA)) == 1


def test_a_perfect_score_asks_for_a_developmental_conversation(stack: Stack) -> None:
    payload = evaluation(score=100.0)
    for item in payload["items"]:
        item["score"] = item["max_score"]
    case_id = land(stack, **{k: payload[k] for k in ("score", "items")})
    assert "developmental" in texts(stack.message(PRIYA, "leader_dm"))
    view = open_plan(stack)
    assert "Where do you want to be in 12 months?" in view["blocks"][0]["text"]["text"]
    assert stack.people.submit(PRIYA, view) == (200, None)
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None and (case.kind, case.behaviour_key) == ("developmental", "development-goal")


def test_changing_the_behaviour_refreshes_example_and_action(stack: Stack) -> None:
    payload = evaluation()
    payload["items"].append(
        {
            "key": "next-steps",
            "name": "Confirms next steps",
            "score": 3,
            "max_score": 5,
            "comment": "Said 'soon' without a date.",
            "good_looks_like": "Give the date.",
        }
    )
    land(stack, items=payload["items"])
    view = open_plan(stack)
    stack.people.choose(PRIYA, view, "behaviour", "next-steps")
    updated = wait_for(
        lambda: (v := stack.standin.views[view["id"]]) and v["hash"] != view["hash"] and v,
        what="views.update",
    )
    example = next(b for b in updated["blocks"] if b.get("block_id") == "example")["element"]["initial_value"]
    action = next(b for b in updated["blocks"] if b.get("block_id") == "action")["element"]["initial_value"]
    assert "Said 'soon' without a date." in example and action == "Give the date."


def modal_update(stack: Stack, view: dict[str, Any]) -> dict[str, Any]:
    return wait_for(
        lambda: (v := stack.standin.views[view["id"]]) and v["hash"] != view["hash"] and v,
        what="views.update",
    )


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)["element"]


def test_changing_the_behaviour_keeps_what_the_leader_entered(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    entered = {
        "by_when": "2026-12-02",
        "review_method": "observe",
        "notes": "Ask about the queue.",
        "agent_proposed": ["yes"],
        "kind": "developmental",
    }
    stack.people.choose(PRIYA, view, "behaviour", "development-goal", entered)
    updated = modal_update(stack, view)
    assert block(updated, "behaviour")["initial_option"]["value"] == "development-goal"
    assert block(updated, "example")["initial_value"].startswith(
        "On the call at 11:23 yesterday (C-88912) you scored"
    )
    assert block(updated, "by_when")["initial_date"] == "2026-12-02"
    assert block(updated, "review_method")["initial_option"]["value"] == "observe"
    assert block(updated, "notes")["initial_value"] == "Ask about the queue."
    assert block(updated, "agent_proposed")["initial_options"][0]["value"] == "yes"
    assert block(updated, "kind")["initial_option"]["value"] == "developmental"
    assert stack.people.submit(PRIYA, updated) == (200, None)
    with stack.db.unit_of_work() as session:
        case = session.query(Case).one()
        assert (case.behaviour_key, case.review_method, case.agent_proposed) == (
            "development-goal",
            "observe",
            True,
        )


def test_the_agent_can_ask_to_discuss(stack: Stack) -> None:
    case_id = land(stack)
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    stack.people.click(
        ANA, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "discuss_agreement"
    )
    wait_for(lambda: case_state(stack, case_id) == "discussion_requested", what="discussion")
    stack.sweep()
    assert "would like to discuss" in texts(stack.message(PRIYA, f"case:{case_id}:discussion"))
    assert "You asked to discuss this" in texts(stack.message(ANA, "agent_agreement"))


# --- refusals: each leaves the database as it was ------------------------------------------------


def snapshot(stack: Stack) -> tuple[Any, ...]:
    with stack.db.unit_of_work() as session:
        cases = [(c.id, c.state, c.action, c.acknowledged_at) for c in session.query(Case).order_by(Case.id)]
        outbox = session.query(OutboxMessage).count()
        audit = session.query(AuditEntry).count()
    return tuple(cases), outbox, audit


def test_someone_else_cannot_submit_the_plan(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    before = snapshot(stack)
    status, answer = stack.people.submit(TOM, view)
    assert status == 200 and answer is not None and answer["response_action"] == "update"
    assert "Only Priya Shah" in json.dumps(answer["view"])
    assert snapshot(stack) == before


def test_someone_else_cannot_open_the_plan(stack: Stack) -> None:
    land(stack)
    stack.people.click(TOM, stack.standin.dm_of(PRIYA), stack.message(PRIYA, "leader_dm"), "open_plan")
    refusal = wait_for(lambda: stack.standin.calls_to("chat.postEphemeral"), what="ephemeral refusal")
    assert refusal[0].args["user"] == TOM and "Only Priya Shah" in refusal[0].args["text"]
    assert not stack.standin.calls_to("views.open")


def test_private_metadata_is_not_trusted(stack: Stack) -> None:
    land(stack)
    # A case of another team: Lena's (Retentions, led by Marcus).
    lena = evaluation(id="ev-lena")
    lena["agent"] = {"email": "lena.ito@example.com"}
    status, body = stack.post_score(lena)
    other_case = body["case_id"]
    view = open_plan(stack)
    before = snapshot(stack)
    status, answer = stack.people.submit(PRIYA, view, private_metadata=json.dumps({"case_id": other_case}))
    # Priya is outside Lena's team: she is refused without being told who may act.
    refused = json.dumps(answer["view"]) if answer is not None else ""
    assert "belongs to a team you are not part of" in refused and "Marcus" not in refused
    status, answer = stack.people.submit(PRIYA, view, private_metadata="{not json")
    assert answer is not None and "lost its coaching case" in json.dumps(answer["view"])
    assert snapshot(stack) == before


def test_a_modal_whose_case_moved_on_changes_nothing(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    assert stack.people.submit(PRIYA, view) == (200, None)
    before = snapshot(stack)
    status, answer = stack.people.submit(PRIYA, view, {"action": "Something else"})
    assert (
        answer is not None
        and answer["response_action"] == "update"
        and "moved on" in json.dumps(answer["view"])
    )
    assert snapshot(stack) == before


def test_invalid_plans_get_errors_on_the_right_blocks(stack: Stack) -> None:
    land(stack)
    view = open_plan(stack)
    before = snapshot(stack)
    cases = [
        ({"example": ""}, "example", "Write the example"),
        ({"action": "   "}, "action", "Write the action"),
        ({"by_when": "2026-11-20"}, "by_when", "in the past"),
        ({"by_when": "2026-12-24"}, "by_when", "within 30 days"),
        ({"behaviour": None}, "behaviour", "Choose one behaviour"),
        ({"notes": "x" * 3001}, "notes", "under 3000"),
    ]
    for overrides, block, words in cases:
        status, answer = stack.people.submit(PRIYA, view, overrides)
        assert answer is not None and answer["response_action"] == "errors", overrides
        assert set(answer["errors"]) == {block} and words in answer["errors"][block], answer
    assert snapshot(stack) == before


def test_only_the_agent_can_acknowledge(stack: Stack) -> None:
    case_id = land(stack)
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    before = snapshot(stack)
    stack.people.click(TOM, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "ack_agreement")
    refusal = wait_for(lambda: stack.standin.calls_to("chat.postEphemeral"), what="refusal")
    assert "Only Ana Ruiz" in refusal[0].args["text"]
    assert snapshot(stack) == before and case_state(stack, case_id) == "agreed"


def test_unsigned_or_stale_slack_requests_are_rejected(stack: Stack) -> None:
    land(stack)
    dm = stack.message(PRIYA, "leader_dm")
    payload = {
        "type": "block_actions",
        "user": {"id": PRIYA},
        "trigger_id": "1.x",
        "actions": [{"action_id": "open_plan", "value": "1", "block_id": "b"}],
    }
    assert stack.people.interact(payload, sign=False)[0] == 401
    assert stack.people.interact(payload, timestamp=1_000_000_000)[0] == 401
    assert not stack.standin.calls_to("views.open")
    assert dm == stack.message(PRIYA, "leader_dm")
