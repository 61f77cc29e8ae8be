"""Sweeps driven by an injected clock across whole weeks: exactly which messages go out, and when."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.slack.views import behaviour_value
from bot.standin.client import wait_for
from storage.models import AuditEntry, Case, Timer
from tests.conftest import Stack
from tests.payloads import evaluation, perfect
from tests.test_core_loop import ANA, DANA, PRIYA, case_state, open_plan

MARCUS = "U0MARCUS"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def posts(stack: Stack) -> list[tuple[str, str]]:
    """(channel, dedupe key) of each message about cases posted so far, in order (digests and calibration
    requests, which are about the week, left out)."""
    found = [
        (c.args["channel"], c.args["metadata"]["event_payload"]["dedupe_key"])
        for c in stack.standin.calls_to("chat.postMessage")
    ]
    return [(channel, key) for channel, key in found if not key.startswith(("digest:", "calibration:"))]


def escalations(stack: Stack) -> list[dict[str, Any]]:
    return [
        m for m in stack.dm(DANA) if m["metadata"]["event_payload"]["dedupe_key"].startswith("escalation:")
    ]


def run_until(
    stack: Stack, end: datetime, step: timedelta = timedelta(minutes=30)
) -> list[tuple[str, str, str]]:
    """Sweep twice at every step (a repeat must send nothing); return (time, channel, key) of each post."""
    sent: list[tuple[str, str, str]] = []
    while stack.clock.now() <= end:
        before = len(posts(stack))
        stack.sweep()
        stack.sweep()
        for channel, key in posts(stack)[before:]:
            sent.append((stack.clock.now().strftime("%a %d %b %H:%M"), channel, key))
        stack.clock.advance(step)
    return sent


def kinds(sent: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Keys without the variable parts (escalations carry the time and a digest)."""
    return [
        (when, ch, key.split(":2026")[0] if key.startswith("escalation") else key) for when, ch, key in sent
    ]


def test_a_score_nobody_acts_on(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    status, body = stack.post_score(evaluation())
    case = body["case_id"]
    sent = run_until(stack, at("2026-12-08T18:00:00+00:00"))
    dm_priya, dm_dana = stack.standin.dm_of(PRIYA), stack.standin.dm_of(DANA)
    assert kinds(sent) == [
        ("Mon 23 Nov 14:30", dm_priya, f"case:{case}:leader_dm"),
        ("Thu 26 Nov 09:00", dm_priya, f"case:{case}:remind:day3"),
        ("Mon 30 Nov 09:00", dm_priya, f"case:{case}:remind:last_day"),
        (
            "Mon 30 Nov 17:30",
            dm_dana,
            f"escalation:conversation:person:{_id(stack, 'dana.okafor@example.com')}",
        ),
        (
            "Thu 03 Dec 17:30",
            dm_dana,
            f"escalation:conversation:person:{_id(stack, 'dana.okafor@example.com')}",
        ),
    ]
    reminders = [m["text"] for m in stack.dm(PRIYA)[1:]]
    assert reminders == [
        "Reminder: coach Ana Ruiz — 2 working days left.",
        "Last day to coach Ana Ruiz: due today, 17:30.",
    ]
    escalation = escalations(stack)[0]
    body_text = json.dumps(escalation["blocks"], ensure_ascii=False)
    assert escalation["text"] == "1 coaching conversation past the deadline: Ana Ruiz"
    assert "leader Priya Shah" in body_text
    assert "score landed Mon 23 Nov · deadline Mon 30 Nov, 17:30 · passed today" in body_text
    assert "deadline Mon 30 Nov, 17:30 · 3 working days late" in json.dumps(
        escalations(stack)[1]["blocks"], ensure_ascii=False
    )
    leader_dm = stack.message(PRIYA, "leader_dm")
    # Refreshed at each reminder and escalation: the last one, three working days after the deadline.
    assert "*Late* — 3 working days past Mon 30 Nov, 17:30" in json.dumps(
        leader_dm["blocks"], ensure_ascii=False
    )
    with stack.db.unit_of_work() as s:
        c = s.get(Case, case)
        assert (
            c is not None
            and c.breached_at == at("2026-11-30T17:30:00+00:00")
            and c.state == "awaiting_conversation"
        )


def _id(stack: Stack, email: str) -> int:
    from storage.models import Person

    with stack.db.unit_of_work() as s:
        return s.query(Person).filter_by(email=email).one().id


def test_escalations_are_grouped_per_recipient(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    for ev_id, email in (("e1", "ana.ruiz@example.com"), ("e2", "tom.hale@example.com")):
        payload = evaluation(id=ev_id)
        payload["agent"] = {"email": email}
        assert stack.post_score(payload)[0] == 202
    run_until(stack, at("2026-11-30T18:00:00+00:00"))
    sent = escalations(stack)
    assert len(sent) == 1
    text = json.dumps(sent[0]["blocks"])
    assert "2 coaching conversations past the deadline" in text and "Ana Ruiz" in text and "Tom Hale" in text
    buttons = [e["action_id"] for b in sent[0]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["remind_leader", "waive_case"] * 2  # leadership may waive; the leader plans


def test_two_time_zones_a_bank_holiday_and_friday_evening(stack: Stack) -> None:
    stack.clock.set(at("2026-11-25T23:30:00+00:00"))
    lena = evaluation(id="lena-1", landed_at="2026-11-25T23:30:00Z")  # 18:30 in New York, before Thanksgiving
    lena["agent"] = {"email": "lena.ito@example.com"}
    assert stack.post_score(lena)[0] == 202
    stack.clock.set(at("2026-11-27T18:00:00+00:00"))
    assert stack.post_score(evaluation(landed_at="2026-11-27T18:00:00Z"))[0] == 202  # Friday evening, London
    sent = kinds(run_until(stack, at("2026-12-10T00:00:00+00:00")))
    london = [(w, k.split(":", 2)[2]) for w, ch, k in sent if ch == stack.standin.dm_of(PRIYA)]
    new_york = [(w, k.split(":", 2)[2]) for w, ch, k in sent if ch == stack.standin.dm_of(MARCUS)]
    channel = [w for w, ch, k in sent if ch == "C0LEADERS"]
    assert london == [
        ("Fri 27 Nov 18:00", "leader_dm"),
        ("Thu 03 Dec 09:00", "remind:day3"),
        ("Mon 07 Dec 09:00", "remind:last_day"),
    ]
    # New York: effective landing day Fri 27 Nov (Thanksgiving skipped); 09:00 EST is 14:00 UTC.
    assert new_york[1:] == [("Wed 02 Dec 14:00", "remind:day3"), ("Fri 04 Dec 14:00", "remind:last_day")]
    assert channel == ["Fri 04 Dec 22:30", "Wed 09 Dec 22:30"]
    assert (
        stack.standin.messages("C0LEADERS")[0]["text"]
        == "1 coaching conversation past the deadline: Lena Ito"
    )


def test_across_a_dst_change(stack: Stack) -> None:
    stack.clock.set(at("2026-03-26T10:00:00+00:00"))
    assert stack.post_score(evaluation(landed_at="2026-03-26T10:00:00Z"))[0] == 202
    sent = kinds(run_until(stack, at("2026-04-03T00:00:00+00:00")))
    times = [w for w, ch, k in sent]
    # Clocks go forward on 29 March: 09:00 and 17:30 BST are 08:00 and 16:30 UTC.
    assert times == ["Thu 26 Mar 10:00", "Tue 31 Mar 08:00", "Thu 02 Apr 08:00", "Thu 02 Apr 16:30"]


def test_a_bank_holiday_fortnight(stack: Stack) -> None:
    stack.clock.set(at("2026-12-21T10:00:00+00:00"))
    assert stack.post_score(evaluation(landed_at="2026-12-21T10:00:00Z"))[0] == 202
    sent = kinds(run_until(stack, at("2027-01-07T00:00:00+00:00"), step=timedelta(hours=1) / 2))
    assert [w for w, ch, k in sent] == [
        "Mon 21 Dec 10:00",
        "Tue 29 Dec 09:00",
        "Thu 31 Dec 09:00",
        "Thu 31 Dec 17:30",
        "Wed 06 Jan 17:30",
    ]


def test_a_held_conversation_cancels_what_is_pending(stack: Stack) -> None:
    stack.clock.set(at("2026-11-23T14:30:00+00:00"))
    status, body = stack.post_score(evaluation())
    stack.sweep()
    stack.clock.set(at("2026-11-24T10:00:00+00:00"))
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    sent = kinds(run_until(stack, at("2026-12-10T18:00:00+00:00")))
    case = body["case_id"]
    assert [(w, k) for w, ch, k in sent] == [
        ("Tue 24 Nov 10:00", f"case:{case}:agent_agreement"),
        ("Wed 25 Nov 10:00", f"case:{case}:ack:remind:sent"),  # 1 working day, not acknowledged
        ("Thu 26 Nov 10:00", f"case:{case}:ack:overdue:sent"),  # 2 working days: the leader is told
        ("Tue 01 Dec 09:00", f"case:{case}:review:due:sent"),  # the action's date (5 working days on)
        ("Thu 03 Dec 09:00", f"case:{case}:review:chase:sent"),  # 2 working days overdue
        ("Tue 08 Dec 09:00", f"escalation:review:person:{_id(stack, 'dana.okafor@example.com')}"),  # 5
    ]
    with stack.db.unit_of_work() as s:
        cancelled = {t.dedupe_key for t in s.query(Timer).filter_by(case_id=case, status="cancelled")}
    assert cancelled == {
        f"case:{case}:remind:day3",
        f"case:{case}:remind:last_day",
        f"case:{case}:escalate:1",
        f"case:{case}:escalate:2",
    }


def test_acknowledging_cancels_the_agent_reminders(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.sweep()
    stack.people.click(ANA, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "ack_agreement")
    wait_for(lambda: case_state(stack, body["case_id"]) == "acknowledged", what="ack")
    sent = kinds(run_until(stack, at("2026-11-27T18:00:00+00:00")))
    assert sent == []


def test_review_opens_the_next_behaviour(stack: Stack) -> None:
    payload = evaluation()
    payload["items"].append(
        {
            "key": "next-steps",
            "name": "Confirms next steps",
            "score": 2,
            "max_score": 5,
            "comment": "Said 'soon'.",
            "good_looks_like": "Give the date.",
        }
    )
    status, body = stack.post_score(payload)
    case = body["case_id"]
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    # Two evaluations after the conversation: the criterion passed in both.
    stack.clock.set(at("2026-11-26T12:00:00+00:00"))
    for i in (1, 2):
        later = perfect(f"after-{i}", landed_at=f"2026-11-2{4 + i}T11:00:00Z")
        later["items"].append(
            {"key": "next-steps", "name": "Confirms next steps", "score": 2, "max_score": 5}
        )
        assert stack.post_score(later)[0] == 202
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    review_dm = stack.message(PRIYA, f"case:{case}:review:due")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), review_dm, "open_review")
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert "passed 2 of 2 since 23 Nov" in shown and "Thu 26 Nov 5/5 ✓" in shown

    status, answer = stack.people.submit(PRIYA, view)
    assert answer is not None and set(answer["errors"]) == {"happened", "worked", "next"}
    assert stack.people.submit(
        PRIYA, view, {"happened": "yes", "worked": "Named it on every call.", "next": "next"}
    ) == (200, None)
    stack.sweep()
    with stack.db.unit_of_work() as s:
        closed = s.get(Case, case)
        follow_on = s.query(Case).filter_by(previous_case_id=case).one()
        assert closed is not None and (closed.state, closed.review_next) == ("closed", "next")
        assert (follow_on.state, follow_on.suggested_key) == ("awaiting_conversation", "next-steps")
        new_id = follow_on.id
    dm = stack.message(PRIYA, f"case:{new_id}:leader_dm")
    assert "Confirms next steps" in json.dumps(dm["blocks"])
    plan = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    behaviour = next(b for b in plan["blocks"] if b.get("block_id") == "behaviour")["element"]
    assert behaviour["initial_option"]["value"] == behaviour_value("next-steps")
    assert [o["value"] for o in behaviour["options"]] == [behaviour_value("next-steps"), "development-goal"]


def test_waive_with_a_reason(stack: Stack) -> None:
    status, body = stack.post_score(evaluation())
    stack.sweep()
    dm = stack.message(PRIYA, "leader_dm")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "waive_case")
    status, answer = stack.people.submit(PRIYA, view)
    assert answer is not None and "reason" in answer["errors"]
    assert case_state(stack, body["case_id"]) == "awaiting_conversation"
    assert stack.people.submit(PRIYA, view, {"reason": "Ana leaves on Friday."}) == (200, None)
    sent = run_until(stack, at("2026-12-08T18:00:00+00:00"))
    assert sent == []  # no reminders, no escalation
    assert "*Waived*: Ana leaves on Friday." in json.dumps(stack.message(PRIYA, "leader_dm")["blocks"])
    with stack.db.unit_of_work() as s:
        assert s.query(AuditEntry).filter_by(action="case_waived").one().detail == {
            "reason": "Ana leaves on Friday."
        }


def test_an_escalation_contact_reminds_the_leader_once_a_day(stack: Stack) -> None:
    stack.post_score(evaluation())
    run_until(stack, at("2026-11-30T18:00:00+00:00"))
    escalation: dict[str, Any] = escalations(stack)[0]
    stack.people.click(DANA, stack.standin.dm_of(DANA), escalation, "remind_leader")
    wait_for(lambda: stack.standin.calls_to("chat.postEphemeral"), what="confirmation")
    stack.people.click(DANA, stack.standin.dm_of(DANA), escalation, "remind_leader")
    confirmations = wait_for(
        lambda: (
            len(stack.standin.calls_to("chat.postEphemeral")) == 2
            and stack.standin.calls_to("chat.postEphemeral")
        ),
        what="second confirmation",
    )
    assert [c.args["text"] for c in confirmations] == [
        "Reminder sent to Priya Shah.",
        "Priya Shah was already reminded today.",
    ]
    stack.sweep()
    assert "asked you" not in stack.dm(PRIYA)[-1]["text"]  # 18:00: it waits for Priya's working hours
    stack.clock.set(at("2026-12-01T09:00:00+00:00"))
    stack.sweep()
    assert stack.dm(PRIYA)[-1]["text"] == "Dana Okafor asked you to coach Ana Ruiz (1 working day late)."
    # A leader cannot use the escalation button on themselves.
    stack.people.click(PRIYA, stack.standin.dm_of(DANA), escalation, "remind_leader")
    refusal = wait_for(
        lambda: (
            len(stack.standin.calls_to("chat.postEphemeral")) == 3
            and stack.standin.calls_to("chat.postEphemeral")[-1]
        ),
        what="refusal",
    )
    assert "escalation contacts" in refusal.args["text"]


def test_next_behaviour_with_an_empty_backlog_is_a_plan_ready_to_submit(stack: Stack) -> None:
    """'Next behaviour' with nothing left in the backlog opens a developmental case with no score of its
    own; its plan, submitted unchanged, is valid (the example comes from the agent's latest score)."""
    status, body = stack.post_score(evaluation())
    case = body["case_id"]
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    stack.clock.set(at("2026-11-30T09:00:00+00:00"))
    stack.sweep()
    review_dm = stack.message(PRIYA, f"case:{case}:review:due")
    view = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), review_dm, "open_review")
    assert stack.people.submit(PRIYA, view, {"happened": "yes", "worked": "Every call.", "next": "next"}) == (
        200,
        None,
    )
    stack.sweep()
    with stack.db.unit_of_work() as s:
        follow_on = s.query(Case).filter_by(previous_case_id=case).one()
        assert (follow_on.kind, len(follow_on.evaluations)) == ("developmental", 0)
        new_id = follow_on.id
    dm = stack.message(PRIYA, f"case:{new_id}:leader_dm")
    plan = stack.people.open_modal(PRIYA, stack.standin.dm_of(PRIYA), dm, "open_plan")
    assert stack.people.submit(PRIYA, plan) == (200, None)
    assert case_state(stack, new_id) == "agreed"
