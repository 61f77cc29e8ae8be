"""What an agent can open never shows a waive reason or a leader's note."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, PRIYA
from tests.test_home_and_command import coach, open_home

REASON = "HR matter: bereavement leave"
NOTE = "Private: struggling since the team change"


def test_an_agent_sees_no_waive_reason_or_leader_note(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    stack.sweep()
    waive = stack.people.open_modal(
        PRIYA, stack.standin.dm_of(PRIYA), stack.message(PRIYA, "leader_dm"), "waive_case"
    )
    assert stack.people.submit(PRIYA, waive, {"reason": REASON}) == (200, None)
    stack.clock.advance(timedelta(days=1))
    status, body = stack.post_score(evaluation(id="ev-2", landed_at="2026-11-24T14:00:00Z"))
    stack.sweep()
    dm = [
        m
        for m in stack.dm(PRIYA)
        if m["metadata"]["event_payload"]["dedupe_key"].endswith(f"{body['case_id']}:leader_dm")
    ][0]
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert stack.people.submit(PRIYA, view, {"notes": NOTE}) == (200, None)
    stack.sweep()

    # Every surface Ana can open: her DMs, her App Home, /coach and /coach about herself.
    surfaces = {
        "dm": json.dumps(stack.dm(ANA)),
        "home": open_home(stack, ANA),
        "coach": json.dumps(coach(stack, ANA)),
        "coach_self": json.dumps(coach(stack, ANA, f"<@{ANA}>")),
    }
    for name, shown in surfaces.items():
        assert REASON not in shown and NOTE not in shown, name
    assert "Acknowledges the customer" in surfaces["coach_self"] and "waived" in surfaces["coach_self"]
    # The case's leader and the team's escalation contacts still see the reason.
    assert REASON in json.dumps(coach(stack, PRIYA, f"<@{ANA}>"))
    assert REASON in json.dumps(coach(stack, DANA, f"<@{ANA}>"))
