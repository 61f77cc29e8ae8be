"""Reorganisations and who owns the conversation: permissions follow the team as it is now."""

from __future__ import annotations

import copy
import json
from typing import Any

from bot.channels import resolve_channels
from bot.org import import_org, parse_org
from bot.standin.client import wait_for
from handlers.directory import SlackChannels, SlackDirectory
from storage.models import AuditEntry, Case, Timer
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, MARCUS, PRIYA, land, open_plan, texts
from tests.test_home_and_command import coach

OLU = "U0OLU"
PRIYA_LEADS = "team_leader: {email: priya.shah@example.com, name: Priya Shah}"


def reimport(stack: Stack, text: str) -> list[str]:
    """As `coachloop org import` does: channels and people looked up, then written."""
    spec, _ = resolve_channels(parse_org(text), SlackChannels(stack.services.slack))
    return import_org(stack.db, spec, SlackDirectory(stack.services.slack), stack.clock.now()).lines()


def pending_timers(stack: Stack, case_id: int) -> set[tuple[str, Any]]:
    with stack.db.unit_of_work() as session:
        return {
            (t.dedupe_key, t.due_at)
            for t in session.query(Timer).filter_by(case_id=case_id, status="pending")
        }


def refusals(stack: Stack, n: int) -> list[str]:
    calls = wait_for(
        lambda: (
            len(stack.standin.calls_to("chat.postEphemeral")) >= n
            and stack.standin.calls_to("chat.postEphemeral")
        ),
        what=f"{n} ephemeral answer(s)",
    )
    return [c.args["text"] for c in calls]


def leader_dms(stack: Stack, user: str) -> list[dict[str, Any]]:
    return [
        m
        for m in stack.dm(user)
        if ":leader_dm" in (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")
    ]


# --- 3. a new team leader --------------------------------------------------------------------------


def test_a_new_team_leader_takes_over_every_open_case(stack: Stack) -> None:
    stack.standin.add_user(OLU, "olu.ade@example.com", "Olu Ade", "Europe/London")
    case_id = land(stack)
    timers = pending_timers(stack, case_id)
    lines = reimport(
        stack, sample_org().replace(PRIYA_LEADS, "team_leader: {email: olu.ade@example.com, name: Olu Ade}")
    )
    assert f"handed over case #{case_id} (Ana Ruiz) from Priya Shah to Olu Ade" in lines
    stack.sweep()

    (olu_dm,) = leader_dms(stack, OLU)
    assert "Plan the conversation" in texts(olu_dm)
    priya_dm = stack.message(PRIYA, "leader_dm")
    assert priya_dm.get("edited") and "Olu Ade" in texts(priya_dm) and "open_plan" not in texts(priya_dm)
    assert pending_timers(stack, case_id) == timers

    # The old leader, who held the case, is told who has it now; the new one plans.
    stack.people.click(PRIYA, stack.standin.dm_of(PRIYA), olu_dm, "open_plan")
    assert "Only Olu Ade" in refusals(stack, 1)[0]
    view = stack.people.open_modal(OLU, stack.standin.dm_of(OLU), olu_dm, "open_plan")
    assert stack.people.submit(OLU, view) == (200, None)
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.state == "agreed" and case.leader.email == "olu.ade@example.com"
        assert case.agreed_by_id == case.leader_id
        handed = session.query(AuditEntry).filter_by(action="case_handed_over").one()
        assert handed.detail["reason"] == "new team leader" and handed.case_id == case_id


def test_an_agent_who_moves_team_takes_the_awaiting_case_along(stack: Stack) -> None:
    case_id = land(stack)
    moved = (
        sample_org()
        .replace("      - {email: ana.ruiz@example.com, name: Ana Ruiz}\n", "")
        .replace(
            "agents: [{email: lena.ito@example.com}]",
            "agents: [{email: lena.ito@example.com}, {email: ana.ruiz@example.com}]",
        )
    )
    reimport(stack, moved)
    stack.sweep()
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert (
            case is not None
            and case.team.name == "Retentions"
            and case.leader.email == "marcus.bell@example.com"
        )
    assert "Plan the conversation" in texts(leader_dms(stack, MARCUS)[0])


def test_an_agent_removed_from_the_org_has_open_cases_waived(stack: Stack) -> None:
    case_id = land(stack)
    reimport(stack, sample_org().replace("      - {email: ana.ruiz@example.com, name: Ana Ruiz}\n", ""))
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None and (case.state, case.waived_reason) == ("waived", "left the team")
        assert not session.query(Timer).filter_by(case_id=case_id, status="pending").count()


# --- 9. the leader owns the conversation; leadership defends it ---------------------------------------


def test_an_escalation_contact_cannot_plan_or_review(stack: Stack) -> None:
    land(stack)
    dm = stack.message(PRIYA, "leader_dm")
    stack.people.click(DANA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert "Only Priya Shah" in refusals(stack, 1)[0]
    assert not stack.standin.calls_to("views.open")
    view = open_plan(stack)
    status, answer = stack.people.submit(DANA, view)
    assert answer is not None and "Only Priya Shah" in json.dumps(answer["view"])


def test_an_escalation_contact_waives_and_hands_over(stack: Stack) -> None:
    case_id = land(stack)
    dm = copy.deepcopy(stack.message(PRIYA, "leader_dm"))  # as Priya's client showed it before
    answer = coach(stack, DANA, f"handover {case_id} <@{MARCUS}>")
    assert f"Case #{case_id} (Ana Ruiz) is now with Marcus Bell" in json.dumps(answer)
    stack.sweep()
    (marcus_dm,) = leader_dms(stack, MARCUS)
    assert "Handed over from Priya Shah to Marcus Bell today (by Dana Okafor)" in texts(marcus_dm)
    view = stack.people.open_modal(MARCUS, stack.standin.dm_of(MARCUS), marcus_dm, "open_plan")
    assert view["callback_id"] == "coaching_plan"
    # Priya no longer holds it; an agent cannot hand cases over.
    stack.people.click(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert "Only Marcus Bell" in refusals(stack, 1)[0]
    assert "escalation contacts" in json.dumps(coach(stack, ANA, f"handover {case_id} <@{PRIYA}>"))
    waive = stack.people.open_modal(DANA, stack.standin.dm_of(MARCUS), marcus_dm, "waive_case")
    assert stack.people.submit(DANA, waive, {"reason": "Covered in the team huddle."}) == (200, None)
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.state == "waived"
        assert session.query(AuditEntry).filter_by(action="case_handed_over", case_id=case_id).count() == 1


def test_holiday_cover_hands_a_leaders_queue_for_a_period(stack: Stack) -> None:
    first = land(stack)
    answer = coach(stack, DANA, f"cover <@{PRIYA}> <@{MARCUS}> until 2026-12-04")
    assert "Marcus Bell covers Priya Shah's queue until Fri 4 Dec" in json.dumps(answer)
    tom = evaluation(id="ev-tom")
    tom["agent"] = {"email": "tom.hale@example.com"}
    status, body = stack.post_score(tom)
    with stack.db.unit_of_work() as session:
        holders = {c.id: c.leader.email for c in session.query(Case)}
    assert holders == {first: "marcus.bell@example.com", body["case_id"]: "marcus.bell@example.com"}
