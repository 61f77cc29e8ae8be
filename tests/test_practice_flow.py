"""End to end through signed Slack payloads against the stand-in: coaching blocks and squeezed-out
counting under an injected clock, QA-lead advice (button and message shortcut), calibration sampling
and rating, and the agent's development prep reaching the leader's modal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest

from bot.clock import FixedClock
from bot.standin.client import wait_for
from bot.standin.server import SlackStandIn
from storage.models import (
    AuditEntry,
    CaseAdvice,
    CoachingBlockRun,
    LeaderBlocks,
    Person,
)
from tests.conftest import Stack, build_stack, make_database, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, PRIYA, TOM, open_plan, texts
from tests.test_home_and_command import home_of, open_home

LEE = "U0LEE"
BLOCKS_ORG = sample_org().replace(
    "    closed: [2026-12-24]\n", '    closed: [2026-12-24]\n    coaching_blocks: ["tue 14:00-15:00"]\n'
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blocks_stack(
    request: pytest.FixtureRequest, tmp_path: Path, standin: SlackStandIn, clock: FixedClock
) -> Iterator[Stack]:
    database = make_database(request.param, tmp_path, request)
    s = build_stack(database, standin, clock, BLOCKS_ORG)
    yield s
    s.server.stop()
    database.dispose()


def ephemeral_to(stack: Stack, user: str) -> list[str]:
    return [c.args["text"] for c in stack.standin.calls_to("chat.postEphemeral") if c.args["user"] == user]


def keyed(stack: Stack, user: str, prefix: str) -> list[dict[str, Any]]:
    return [
        m
        for m in stack.dm(user)
        if (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "").startswith(prefix)
    ]


# --- protected coaching time ----------------------------------------------------------------------


def test_blocks_are_named_opened_and_squeezed_out_through_the_sweeps(blocks_stack: Stack) -> None:
    stack = blocks_stack
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))  # Mon
    status, first = stack.post_score(evaluation())
    assert status == 202
    status, second = stack.post_score(evaluation(id="ev-tom", agent={"email": "tom.hale@example.com"}))
    assert status == 202
    stack.sweep()
    dm = stack.message(PRIYA, f"case:{first['case_id']}:leader_dm")
    assert "Tue 24 Nov, 14:00 — your coaching block" in texts(dm)

    # The leader asks for the calendar file: an .ics is uploaded to their DM, once.
    stack.people.click(PRIYA, stack.standin.dm_of(PRIYA), dm, "block_ics")
    stack.people.click(PRIYA, stack.standin.dm_of(PRIYA), dm, "block_ics")
    wait_for(lambda: len(ephemeral_to(stack, PRIYA)) == 2, what="the answers to the clicks")
    assert "already" in ephemeral_to(stack, PRIYA)[1]
    stack.sweep()
    files = [f for f in stack.standin.files.values() if f.get("name") == "coaching-blocks.ics"]
    assert len(files) == 1 and files[0]["channel"] == stack.standin.dm_of(PRIYA)
    ical = icalendar.Calendar.from_ical(files[0]["data"])
    (event,) = ical.walk("VEVENT")
    assert event["rrule"]["FREQ"] == ["WEEKLY"] and event["rrule"]["BYDAY"] == ["TU"]
    assert str(event["dtstart"].params["TZID"]) == "Europe/London"
    assert event.decoded("dtstart").hour == 14

    # Tuesday 14:00: the block starts; the leader gets what waits, most urgent first, each with its button.
    stack.clock.set(at("2026-11-24T14:00:00+00:00"))
    stack.sweep()
    (start,) = keyed(stack, PRIYA, "block:")
    body = texts(start)
    assert "2 conversations waiting" in body and body.index("Ana Ruiz") < body.index("Tom Hale")
    buttons = [b["accessory"] for b in start["blocks"] if b.get("accessory")]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("open_plan", str(first["case_id"])),
        ("open_plan", str(second["case_id"])),
    ]
    stack.sweep()
    assert len(keyed(stack, PRIYA, "block:")) == 1  # a repeat sweep sends nothing again

    # 15:00 passes with nothing logged: squeezed out, shown to leadership.
    stack.clock.set(at("2026-11-24T15:01:00+00:00"))
    stack.sweep()
    stack.sweep()
    with stack.db.unit_of_work() as s:
        runs = s.query(CoachingBlockRun).all()
        assert [(r.status, r.waiting, r.held) for r in runs] == [("squeezed", 2, 0)]
        assert s.query(AuditEntry).filter_by(action="coaching_block_squeezed").count() == 1
    assert "blocks squeezed out 1/1" in open_home(stack, DANA)

    # Next Tuesday the leader holds a conversation during the block: held, not squeezed.
    stack.clock.set(at("2026-12-01T14:00:00+00:00"))
    stack.sweep()
    stack.clock.set(at("2026-12-01T14:20:00+00:00"))
    dm = stack.message(PRIYA, f"case:{first['case_id']}:leader_dm")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert stack.people.submit(PRIYA, view) == (200, None)
    stack.clock.set(at("2026-12-01T15:00:30+00:00"))
    stack.sweep()
    with stack.db.unit_of_work() as s:
        runs = s.query(CoachingBlockRun).order_by(CoachingBlockRun.starts_at).all()
        assert [(r.status, r.waiting, r.held) for r in runs] == [("squeezed", 2, 0), ("held", 2, 1)]
    assert "blocks squeezed out 1/2" in open_home(stack, DANA)


def test_the_leader_edits_their_blocks_from_home(stack: Stack) -> None:
    home = open_home(stack, PRIYA)
    assert "Your coaching blocks" in home and "none yet" in home
    trigger = stack.people.click_home(PRIYA, "edit_blocks")
    view = stack.people.opened_with(trigger, "edit_blocks")
    status, answer = stack.people.submit(PRIYA, view, {"blocks": "tue 14:00-15:00\nwed 25:00-26:00"})
    assert status == 200 and answer is not None and answer["response_action"] == "errors"
    assert "HH:MM" in answer["errors"]["blocks"]
    with stack.db.unit_of_work() as s:
        assert s.query(LeaderBlocks).count() == 0  # refused whole: nothing changed
    assert stack.people.submit(PRIYA, view, {"blocks": "thu 10:00-10:30, tue 14:00-15:00"}) == (200, None)
    with stack.db.unit_of_work() as s:
        priya = s.query(Person).filter_by(slack_id=PRIYA).one()
        own = s.get(LeaderBlocks, priya.id)
        assert own is not None and own.home_blocks == ["tue 14:00-15:00", "thu 10:00-10:30"]
    stack.sweep()
    assert "tue 14:00-15:00, thu 10:00-10:30" in home_of(stack, PRIYA)
    # An agent has no blocks to edit.
    trigger = stack.people.click_home(ANA, "edit_blocks") if "edit_blocks" in open_home(stack, ANA) else None
    assert trigger is None


# --- QA leads as advisors -------------------------------------------------------------------------


def test_a_qa_lead_adds_evidence_a_focus_and_a_note_from_the_case_button(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    case_id = body["case_id"]
    stack.sweep()
    home = open_home(stack, LEE)
    assert "open cases with no evidence beyond the score" in home and "Ana Ruiz" in home
    # An agent cannot open the advice form for a case.
    open_home(stack, TOM)
    trigger = stack.people.click_home(LEE, "open_advice", value=str(case_id))
    view = stack.people.opened_with(trigger, "open_advice")
    focus = next(b for b in view["blocks"] if b.get("block_id") == "focus")["element"]["options"]
    assert [o["text"]["text"] for o in focus][0] == "Acknowledges the customer's concern"

    status, answer = stack.people.submit(LEE, view, {"focus": focus[0]["value"]})
    assert answer is not None and "reason" in answer["errors"]  # a focus needs its reason
    note = "Ana told me she struggles when customers raise their voice"
    status, answer = stack.people.submit(
        LEE,
        view,
        {
            "evidence": "On C-90001 this morning she explained the refund policy before acknowledging.",
            "link": "https://qa.example.com/c/90001",
            "focus": focus[0]["value"],
            "reason": "Missed in the last 3 evaluations, and customers escalate after it.",
            "note": note,
        },
    )
    assert (status, answer) == (200, None)
    with stack.db.unit_of_work() as s:
        rows = s.query(CaseAdvice).filter_by(case_id=case_id).order_by(CaseAdvice.id).all()
        assert [(r.kind, r.source) for r in rows] == [
            ("evidence", "button"),
            ("focus", "button"),
            ("note", "button"),
        ]
        assert rows[1].behaviour_key == "acknowledge"
        logged = s.query(AuditEntry).filter_by(action="advice_added").one()
        assert note not in json.dumps(logged.detail)  # the audit names what was added, not its words
    stack.sweep()
    (told,) = keyed(stack, PRIYA, f"case:{case_id}:advice:")
    assert "Lee Park added advice" in texts(told) and "C-90001" in texts(told)
    assert "Ana Ruiz" not in open_home(stack, LEE).split("Advising")[1]  # it has evidence now

    # The leader's modal shows the suggestion and the evidence; the leader decides.
    plan = open_plan(stack)
    shown = texts(plan)
    assert "suggests the focus *Acknowledges the customer" in shown and "C-90001" in shown and note in shown
    assert stack.people.submit(PRIYA, plan) == (200, None)
    stack.sweep()
    # The agent never sees the QA lead's words unless the leader put them in the agreed example.
    agent_side = json.dumps(stack.dm(ANA)) + open_home(stack, ANA)
    assert note not in agent_side and "C-90001" not in agent_side


def test_the_message_shortcut_turns_a_message_into_evidence(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    case_id = body["case_id"]
    stack.sweep()
    message = {
        "type": "message",
        "user": "U0DANA",
        "ts": "1764000000.000200",
        "text": "Listen to C-77123: Ana talked over the customer twice.",
    }
    trigger = stack.people.message_shortcut(LEE, "C0LEADERS", message, "add_to_coaching_case")
    view = stack.people.opened_with(trigger, "the shortcut's form")
    evidence = next(b for b in view["blocks"] if b.get("block_id") == "evidence")["element"]
    link = next(b for b in view["blocks"] if b.get("block_id") == "link")["element"]
    assert evidence["initial_value"] == message["text"]
    assert link["initial_value"] == "https://standin.slack.com/archives/C0LEADERS/p1764000000000200"
    status, answer = stack.people.submit(LEE, view)
    assert answer is not None and "case" in answer["errors"]
    assert stack.people.submit(LEE, view, {"case": str(case_id)}) == (200, None)
    with stack.db.unit_of_work() as s:
        (row,) = s.query(CaseAdvice).all()
        assert (row.kind, row.source, row.text, row.link) == (
            "evidence",
            "shortcut",
            message["text"],
            link["initial_value"],
        )

    # Someone who is not a QA lead: a notice, and a forged submission changes nothing.
    trigger = stack.people.message_shortcut(TOM, "C0LEADERS", message, "add_to_coaching_case")
    notice = stack.people.opened_with(trigger, "the shortcut's notice")
    assert "Only a QA lead" in texts(notice)
    status, answer = stack.people.submit(TOM, view, {"case": str(case_id)})
    assert answer is not None and answer["response_action"] == "update"
    assert "Only the QA leads of team Billing" in json.dumps(answer["view"])
    with stack.db.unit_of_work() as s:
        assert s.query(CaseAdvice).count() == 1
