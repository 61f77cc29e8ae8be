"""End to end through signed Slack payloads against the stand-in: coaching blocks and squeezed-out
counting under an injected clock, QA-lead advice (button and message shortcut), calibration sampling
and rating, and the agent's development prep reaching the leader's modal."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import yaml

from bot import calibration, report
from bot.clock import FixedClock
from bot.measures import Period
from bot.org import apply_org, parse_org
from bot.slack.digest import digest_message
from bot.standin.client import wait_for
from bot.standin.server import SlackStandIn
from storage.db import Database
from storage.models import (
    AuditEntry,
    CalibrationRating,
    CalibrationSample,
    Case,
    CaseAdvice,
    CoachingBlockRun,
    DevelopmentGoal,
    LeaderBlocks,
    Person,
    Team,
    Timer,
)
from tests.conftest import Stack, build_stack, make_database, sample_org
from tests.payloads import evaluation, perfect
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
    answers = ephemeral_to(stack, PRIYA)  # the two clicks run at once: either may answer first
    assert sum("on its way" in a for a in answers) == 1 and sum("already" in a for a in answers) == 1
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
    # Monday's digest (week of 23 Nov) and the report show the same count.
    (digest,) = keyed(stack, DANA, "digest:")
    assert "*Priya Shah*: blocks squeezed out 1/1" in texts(digest)
    with stack.db.unit_of_work() as s:
        period = Period(at("2026-11-23T00:00:00+00:00"), at("2026-12-07T00:00:00+00:00"))
        (priya,) = [lp for lp in report.practice(s, period) if lp.leader == "Priya Shah"]
        assert report.practice_cells(priya)["squeezed"] == "1 of 2"
        html, _ = report.render(s, period, stack.clock.now(), "html")
    assert "Each leader's coaching practice" in html and "<td>1 of 2</td>" in html


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

    # The QA lead advises; they never plan the conversation.
    stack.people.click(LEE, stack.standin.dm_of(PRIYA), stack.message(PRIYA, "leader_dm"), "open_plan")
    wait_for(lambda: ephemeral_to(stack, LEE), what="the refusal")
    assert "Only" in ephemeral_to(stack, LEE)[0]
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


# --- calibration on coaching itself -------------------------------------------------------------------


def test_calibration_samples_a_week_of_plans_and_raters_rate_them(any_stack: Stack) -> None:
    stack = any_stack
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    cases = []
    for n, email in enumerate(["ana.ruiz@example.com", "tom.hale@example.com"]):
        status, body = stack.post_score(evaluation(id=f"ev-{n}", agent={"email": email}))
        cases.append(body["case_id"])
    stack.sweep()
    for case_id in cases:
        dm = stack.message(PRIYA, f"case:{case_id}:leader_dm")
        view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
        overrides = {"agent_proposed": ["yes"]} if case_id == cases[0] else {}
        assert stack.people.submit(PRIYA, view, overrides) == (200, None)

    # Monday: last week's agreements are sampled once, and the raters are asked.
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    stack.sweep()
    with stack.db.unit_of_work() as s:
        samples = s.query(CalibrationSample).order_by(CalibrationSample.id).all()
        assert sorted(x.case_id for x in samples) == sorted(cases)  # 2 agreed, fewer than 3: both
        assert {str(x.week_of) for x in samples} == {"2026-11-23"}
    (request,) = keyed(stack, LEE, "calibration:")
    assert len(keyed(stack, DANA, "calibration:")) == 1
    assert "2 plans agreed in Billing last week" in texts(request)
    assert len(keyed(stack, TOM, "calibration:")) == 0

    # Lee rates the first plan: three parts of four, with a suggestion the leader receives.
    first = next(x for x in samples if x.case_id == cases[0])
    view = stack.people.open_modal(LEE, stack.standin.dm_of(LEE), request, "rate_plan", value=str(first.id))
    assert "Acknowledges the customer" in texts(view)
    suggestion = "Let Ana find the example herself before you read it out."
    overrides = {
        "structure": ["one_behaviour", "specific_example", "dated_action"],
        "suggestion": suggestion,
    }
    assert stack.people.submit(LEE, view, overrides) == (200, None)
    # Dana rates it with all four parts.
    dana_request = keyed(stack, DANA, "calibration:")[0]
    view = stack.people.open_modal(
        DANA, stack.standin.dm_of(DANA), dana_request, "rate_plan", value=str(first.id)
    )
    assert stack.people.submit(DANA, view, {"structure": list(calibration.CHECKS)}) == (200, None)
    # The agent cannot rate, even with the button.
    stack.people.click(TOM, stack.standin.dm_of(LEE), request, "rate_plan", value=str(first.id))
    wait_for(lambda: ephemeral_to(stack, TOM), what="the refusal")
    assert "QA leads and escalation contacts" in ephemeral_to(stack, TOM)[0]
    with stack.db.unit_of_work() as s:
        ratings = s.query(CalibrationRating).order_by(CalibrationRating.id).all()
        assert [(r.agents_action, r.suggestion) for r in ratings] == [(False, suggestion), (True, None)]

    stack.sweep()
    (told,) = keyed(stack, PRIYA, "calibration:rating:")
    assert suggestion in texts(told)
    # Leadership sees the share meeting the structure, rater agreement, and the agent-proposed share.
    stack.clock.set(at("2026-11-30T10:00:00+00:00"))
    home = open_home(stack, DANA)
    assert (
        "plans meeting the structure 0% (0/1) · rater agreement 75% · actions the agent proposed 50% (1/2)"
        in home
    )
    assert "Calibration sample, week of Mon 23 Nov" in home
    # The digest and the report carry the same figures.
    with stack.db.unit_of_work() as s:
        dana = s.query(Person).filter_by(slack_id=DANA).one()
        _, blocks = digest_message(s, dana, {"week_of": "2026-11-30"}, stack.clock.now())
        period = Period(at("2026-11-23T00:00:00+00:00"), at("2026-11-30T00:00:00+00:00"))
        cells = report.practice_cells(report.practice(s, period, "Billing")[0])
    digest_text = json.dumps(blocks, ensure_ascii=False)
    assert "rater agreement 75% · actions the agent proposed 50% (1/2)" in digest_text
    assert (cells["structure"], cells["agreement"], cells["proposed"]) == (
        "0% (0 of 1 rated)",
        "75%",
        "50% (1 of 2)",
    )
    # The QA lead's Home shows the week's sample, the rated one marked.
    lee_home = open_home(stack, LEE)
    assert "Calibration sample" in lee_home and "rated" in lee_home


def test_the_sample_is_random_sized_and_drawn_once(db: Database) -> None:
    """Drawn from the week's agreements at random, `calibration_sample` per team, once per week."""
    org = sample_org().replace(
        "    closed: [2026-12-24]\n", "    closed: [2026-12-24]\n    calibration_sample: 2\n"
    )
    now = at("2026-11-16T09:00:00+00:00")
    with db.unit_of_work() as s:
        apply_org(s, parse_org(org), {}, now)
        team = s.query(Team).filter_by(name="Billing").one()
        emails = ["ana.ruiz@example.com", "tom.hale@example.com"]
        agents = s.query(Person).filter(Person.email.in_(emails)).all()
        for i in range(5):
            s.add(
                Case(
                    agent_id=agents[i % 2].id,
                    team_id=team.id,
                    leader_id=team.leader_id,
                    kind="performance",
                    state="agreed",
                    opened_at=now,
                    due_at=now + timedelta(days=7),
                    agreed_at=now + timedelta(days=1, hours=i),
                )
            )
        team_id = team.id
    seen: set[frozenset[int]] = set()
    for seed in range(6):
        with db.unit_of_work() as s:
            s.query(CalibrationSample).delete()
            s.query(Timer).filter(Timer.kind == "calibration").delete()
        with db.unit_of_work() as s:
            drawn = calibration.sample(s, at("2026-11-23T08:00:00+00:00"), random.Random(seed))
            billing_drawn = frozenset(x.case_id for x in drawn if x.team_id == team_id)
            assert len(billing_drawn) == 2
            seen.add(billing_drawn)
        with db.unit_of_work() as s:
            assert calibration.sample(s, at("2026-11-23T12:00:00+00:00"), random.Random(seed)) == []
    assert len(seen) > 1  # not always the same plans


# --- developmental coaching, led by the agent ------------------------------------------------------


def test_the_agents_prep_reaches_the_plan_and_the_goal_spans_conversations(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    status, body = stack.post_score(perfect("ev-tom-1", email="tom.hale@example.com"))
    case_id = body["case_id"]
    stack.sweep()
    (prep,) = keyed(stack, TOM, f"case:{case_id}:agent_prep")
    assert "Where do you want to be in 12 months?" in texts(prep)
    # Only the agent answers.
    stack.people.click(PRIYA, stack.standin.dm_of(TOM), prep, "answer_prep")
    wait_for(lambda: ephemeral_to(stack, PRIYA), what="the refusal")
    view = stack.people.open_modal(TOM, stack.standin.dm_of(TOM), prep, "answer_prep")
    status, answer = stack.people.submit(TOM, view)
    assert answer is not None and "work_on_next" in answer["errors"]  # nothing answered
    answers = {
        "in_12_months": "Leading the complex-billing queue",
        "work_on_next": "Explaining pro-rata refunds clearly",
        "would_help": "Shadowing Ana on two escalations",
    }
    assert stack.people.submit(TOM, view, answers) == (200, None)
    stack.sweep()
    assert keyed(stack, PRIYA, f"case:{case_id}:prep_answered")

    dm = stack.message(PRIYA, f"case:{case_id}:leader_dm")
    plan = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    shown = texts(plan)
    assert "Tom Hale's own answers" in shown and "Shadowing Ana on two escalations" in shown
    goal = next(b for b in plan["blocks"] if b.get("block_id", "").startswith("goal."))["element"]
    assert goal["initial_value"] == (
        "Explaining pro-rata refunds clearly; towards: Leading the complex-billing queue"
    )
    assert stack.people.submit(PRIYA, plan, {"goal": "Explain pro-rata refunds in one sentence"}) == (
        200,
        None,
    )
    with stack.db.unit_of_work() as s:
        case = s.get(Case, case_id)
        assert case is not None and case.development_goal_id is not None
        goal_row = s.get(DevelopmentGoal, case.development_goal_id)
        assert goal_row is not None
        assert (goal_row.wording, goal_row.status) == ("Explain pro-rata refunds in one sentence", "open")

    # The review keeps the goal open for the next conversation; the agent prepares again.
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    review_dm = stack.message(PRIYA, f"case:{case_id}:review:due")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), review_dm, "open_review")
    overrides = {"happened": "yes", "worked": "Used it on three calls.", "next": "continue_goal"}
    assert stack.people.submit(PRIYA, view, overrides) == (200, None)
    stack.sweep()
    with stack.db.unit_of_work() as s:
        follow_on = s.query(Case).filter(Case.previous_case_id == case_id).one()
        assert follow_on.development_goal_id == goal_row.id and follow_on.kind == "developmental"
        assert s.get(DevelopmentGoal, goal_row.id).status == "open"  # type: ignore[union-attr]
        follow_on_id = follow_on.id
    assert keyed(stack, TOM, f"case:{follow_on_id}:agent_prep")
    home = open_home(stack, TOM)
    assert "Development goal* (open): Explain pro-rata refunds in one sentence" in home
    assert "Yes, as agreed" in home and "next conversation: to come" in home
    # Pre-filled from the goal carried over.
    dm = stack.message(PRIYA, f"case:{follow_on_id}:leader_dm")
    plan = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    goal = next(b for b in plan["blocks"] if b.get("block_id", "").startswith("goal."))["element"]
    assert goal["initial_value"] == "Explain pro-rata refunds in one sentence"


def test_picking_a_development_goal_asks_the_agent_to_prepare(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    stack.sweep()
    assert not keyed(stack, ANA, f"case:{body['case_id']}:agent_prep")  # a performance case: no prep
    view = open_plan(stack)
    stack.people.choose(PRIYA, view, "behaviour", "development-goal")
    wait_for(lambda: "goal." in json.dumps(stack.standin.view(view["id"])), what="the modal to update")
    stack.sweep()
    (prep,) = keyed(stack, ANA, f"case:{body['case_id']}:agent_prep")
    assert "Where do you want to be in 12 months?" in texts(prep)


def test_keeping_a_goal_open_needs_a_goal(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    review_dm = stack.message(PRIYA, f"case:{body['case_id']}:review:due")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), review_dm, "open_review")
    overrides = {"happened": "yes", "worked": "Better.", "next": "continue_goal"}
    status, answer = stack.people.submit(PRIYA, view, overrides)
    assert answer is not None and "no development goal" in answer["errors"]["next"]
    with stack.db.unit_of_work() as s:
        assert s.get(Case, body["case_id"]).state == "agreed"  # type: ignore[union-attr]


def test_the_manifest_declares_the_message_shortcut_and_its_scope() -> None:
    manifest = yaml.safe_load((Path(__file__).parent.parent / "manifest.yml").read_text())
    shortcuts = manifest["features"]["shortcuts"]
    assert {
        "name": "Add to coaching case",
        "type": "message",
        "callback_id": "add_to_coaching_case",
    }.items() <= (shortcuts[0].items())
    assert len(shortcuts[0]["description"]) <= 150
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]  # shortcuts need the commands scope
