"""Nudges re-checked when sent and delivered inside the recipient's hours; deadlines in the reader's zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from bot.standin.server import Fault
from storage.models import OutboxMessage, Person
from tests.conftest import Stack, sample_org
from tests.payloads import evaluation
from tests.test_core_loop import ANA, DANA, MARCUS, PRIYA, open_plan, texts
from tests.test_reorganisation import reimport


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def rows(stack: Stack, kind: str) -> list[OutboxMessage]:
    with stack.db.unit_of_work() as session:
        return list(session.query(OutboxMessage).filter_by(kind=kind).order_by(OutboxMessage.id))


def escalations_to(stack: Stack, user: str) -> list[dict]:
    return [
        m for m in stack.dm(user) if m["metadata"]["event_payload"]["dedupe_key"].startswith("escalation:")
    ]


# --- 6. every nudge re-checks its reason when it is sent ------------------------------------------------


def test_an_acknowledged_agreement_drops_a_queued_reminder(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    stack.post_score(evaluation())
    stack.sweep()
    stack.clock.set(at("2026-11-24T10:00:00+00:00"))
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    stack.clock.set(at("2026-11-25T10:00:00+00:00"))  # one working day on: the reminder is due
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=1))
    stack.sweep()
    (reminder,) = rows(stack, "agent_ack_reminder")
    assert reminder.status == "pending" and reminder.attempts == 1
    stack.people.click(ANA, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "ack_agreement")
    stack.clock.advance(timedelta(minutes=5))
    stack.sweep()
    assert not any("ack:remind" in m["metadata"]["event_payload"]["dedupe_key"] for m in stack.dm(ANA))
    (reminder,) = rows(stack, "agent_ack_reminder")
    assert reminder.status == "skipped" and "acknowledged" in (reminder.last_error or "")


def _two_late_cases(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    for ev_id, email in (("e-ana", "ana.ruiz@example.com"), ("e-tom", "tom.hale@example.com")):
        payload = evaluation(id=ev_id)
        payload["agent"] = {"email": email}
        assert stack.post_score(payload)[0] == 202
    stack.sweep()
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))  # the reminders go out
    stack.sweep()
    stack.clock.set(at("2026-11-30T17:30:00+00:00"))
    stack.standin.add_fault(Fault("chat.postMessage", "server_error", times=1))
    stack.sweep()
    assert escalations_to(stack, DANA) == []


def test_an_escalation_lists_only_cases_still_late_when_it_is_sent(stack: Stack) -> None:
    _two_late_cases(stack)
    ana_dm = next(m for m in stack.dm(PRIYA) if "Ana Ruiz" in texts(m))
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), ana_dm, "open_plan")
    assert stack.people.submit(PRIYA, view) == (200, None)
    stack.clock.advance(timedelta(minutes=5))
    stack.sweep()
    (sent,) = escalations_to(stack, DANA)
    assert sent["text"] == "1 coaching conversation past the deadline: Tom Hale"


def test_an_escalation_with_nothing_late_left_is_not_sent(stack: Stack) -> None:
    _two_late_cases(stack)
    for name in ("Ana Ruiz", "Tom Hale"):
        dm = next(m for m in stack.dm(PRIYA) if name in texts(m) and "open_plan" in texts(m))
        view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
        assert stack.people.submit(PRIYA, view) == (200, None)
    stack.clock.advance(timedelta(minutes=5))
    stack.sweep()
    assert escalations_to(stack, DANA) == []
    (row,) = rows(stack, "escalation")
    assert row.status == "skipped"


# --- 7. escalations inside the recipient's working hours -----------------------------------------------


def test_a_friday_evening_breach_reaches_leadership_on_monday_morning(stack: Stack) -> None:
    dana = "{email: dana.okafor@example.com, name: Dana Okafor}"
    marcus = "{email: marcus.bell@example.com}"
    both = sample_org().replace(f"escalate_to: [{dana}]", f"escalate_to: [{dana}, {marcus}]")
    reimport(stack, both)
    stack.clock.set(at("2026-11-20T10:00:00+00:00"))  # Friday: the window ends Friday 27 Nov, 17:30
    assert stack.post_score(evaluation(landed_at="2026-11-20T10:00:00Z"))[0] == 202
    stack.sweep()
    stack.clock.set(at("2026-11-27T17:45:00+00:00"))
    stack.sweep()
    assert escalations_to(stack, DANA) == []
    # Marcus reads Slack in New York, where it is 12:45 on Friday: inside his working hours.
    assert len(escalations_to(stack, MARCUS)) == 1
    stack.clock.set(at("2026-11-30T08:59:00+00:00"))
    stack.sweep()
    assert escalations_to(stack, DANA) == []
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    assert len(escalations_to(stack, DANA)) == 1 and len(escalations_to(stack, MARCUS)) == 1


# --- 8. the deadline in the reader's zone -------------------------------------------------------------


def test_the_deadline_is_shown_in_the_readers_zone(stack: Stack) -> None:
    with stack.db.unit_of_work() as session:
        session.query(Person).filter_by(email="priya.shah@example.com").one().timezone = "Asia/Tokyo"
    stack.post_score(evaluation())
    stack.sweep()
    shown = json.dumps(stack.message(PRIYA, "leader_dm")["blocks"], ensure_ascii=False)
    # Mon 30 Nov 17:30 in London is Tue 1 Dec 02:30 in Tokyo.
    assert "Tue 1 Dec, 02:30" in shown and "Mon 30 Nov, 02:30" not in shown
    assert "Mon 30 Nov, 17:30 Europe/London" in shown


def test_an_escalation_shows_each_deadline_in_its_readers_zone(stack: Stack) -> None:
    marcus = "{email: marcus.bell@example.com}"
    dana = "{email: dana.okafor@example.com, name: Dana Okafor}"
    reimport(stack, sample_org().replace(f"escalate_to: [{dana}]", f"escalate_to: [{dana}, {marcus}]"))
    stack.clock.set(at("2026-11-20T10:00:00+00:00"))  # the window ends Friday 27 Nov, 17:30 London
    assert stack.post_score(evaluation(landed_at="2026-11-20T10:00:00Z"))[0] == 202
    stack.sweep()
    stack.clock.set(at("2026-11-30T15:00:00+00:00"))  # inside both readers' working hours
    stack.sweep()
    (to_marcus,) = escalations_to(stack, MARCUS)
    (to_dana,) = escalations_to(stack, DANA)
    shown_to_marcus = json.dumps(to_marcus["blocks"], ensure_ascii=False)
    assert "Fri 27 Nov, 12:30 pm (Fri 27 Nov, 17:30 Europe/London)" in shown_to_marcus  # New York
    shown_to_dana = json.dumps(to_dana["blocks"], ensure_ascii=False)
    assert "Fri 27 Nov, 17:30" in shown_to_dana and "Europe/London)" not in shown_to_dana
