"""The timers a case's state needs, written in the transaction that moves it (see bot/case_state.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.calendar import WorkCalendar
from storage.models import Case, Evaluation, Timer
from storage.outbox import cancel_keys, schedule_timers

CONVERSATION = ("remind_day3", "remind_last_day", "escalate")
ACKNOWLEDGEMENT = ("ack_reminder", "ack_overdue")
REVIEW = ("review_due", "review_chase", "review_escalate")
SECOND_ESCALATION_AFTER = 3
ACK_REMINDER_AFTER, ACK_OVERDUE_AFTER = 1, 2
REVIEW_CHASE_AFTER, REVIEW_ESCALATE_AFTER = 2, 5


def _set_all(session: Session, case: Case, wanted: list[tuple[str, str, datetime]]) -> None:
    """Write these pending timers of a case, or move those still pending to their new times: one read and
    at most one insert, however many."""
    existing = {
        t.dedupe_key: t
        for t in session.scalars(select(Timer).where(Timer.dedupe_key.in_([key for key, _, _ in wanted])))
    }
    new = []
    for key, kind, due in wanted:
        timer = existing.get(key)
        if timer is None:
            new.append((key, kind, case.id, due))
        elif timer.status == "pending":
            timer.due_at = due
    schedule_timers(session, new)


def evaluation_start(ev: Evaluation) -> datetime:
    """When a score starts its case's window: when it landed, or (for a score kept for an agent the org
    file did not know) when the import named the agent, whichever is later."""
    return max(ev.window_from, ev.landed_at) if ev.window_from else ev.landed_at


def window_opens(case: Case) -> datetime:
    """When the case's window started: the earliest start among its scores, or the follow-on that
    opened it."""
    starts = [evaluation_start(ev) for ev in case.evaluations]
    if case.window_from is not None:
        starts.append(case.window_from)
    return min(starts, default=case.opened_at)


def conversation_timers(
    case_id: int, due_at: datetime, window_opened: datetime, cal: WorkCalendar
) -> tuple[list[tuple[str, str, datetime]], list[str]]:
    """The timers (key, kind, due) a case awaiting its conversation needs, and the keys it must not
    have: the day-3 reminder only when day 3 comes before the last day."""
    due_day = cal.local(due_at).date()
    day3 = cal.add_working_days(cal.effective_landing_day(window_opened), 3)
    wanted, unwanted = [], []
    if day3 < due_day:
        wanted.append((f"case:{case_id}:remind:day3", "remind_day3", cal.start_of_business(day3)))
    else:
        unwanted.append(f"case:{case_id}:remind:day3")
    second = cal.end_of_business(cal.add_working_days(due_day, SECOND_ESCALATION_AFTER))
    wanted += [
        (f"case:{case_id}:remind:last_day", "remind_last_day", cal.start_of_business(due_day)),
        (f"case:{case_id}:escalate:1", "escalate", due_at),
        (f"case:{case_id}:escalate:2", "escalate", second),
    ]
    return wanted, unwanted


def schedule_conversation(session: Session, case: Case, cal: WorkCalendar) -> None:
    wanted, unwanted = conversation_timers(case.id, case.due_at, window_opens(case), cal)
    if unwanted:
        cancel_keys(session, unwanted)
    _set_all(session, case, wanted)


def rearm(session: Session, case: Case, kinds: tuple[str, ...]) -> None:
    """Timers of these kinds that already fired go back to pending (their times are rewritten next)."""
    for timer in session.scalars(select(Timer).where(Timer.case_id == case.id, Timer.kind.in_(kinds))):
        if timer.status == "done":
            timer.status, timer.fired_at = "pending", None


def after_working_days(cal: WorkCalendar, at: datetime, n: int) -> datetime:
    """The same moment `n` working days later, brought inside business hours."""
    local = cal.local(at)
    day = cal.add_working_days(local.date(), n)
    wall = min(max(local.time(), cal.start), cal.end)
    return cal.next_opening(cal.at_local(day, wall))


def schedule_acknowledgement(session: Session, case: Case, cal: WorkCalendar) -> None:
    assert case.agreed_at is not None
    key = f"case:{case.id}:ack"
    remind = after_working_days(cal, case.agreed_at, ACK_REMINDER_AFTER)
    overdue = after_working_days(cal, case.agreed_at, ACK_OVERDUE_AFTER)
    _set_all(
        session, case, [(f"{key}:remind", "ack_reminder", remind), (f"{key}:overdue", "ack_overdue", overdue)]
    )


def schedule_review(session: Session, case: Case, cal: WorkCalendar) -> None:
    assert case.action_date is not None
    day = case.action_date if cal.is_working_day(case.action_date) else cal.next_working_day(case.action_date)
    chase, escalate = (cal.add_working_days(day, n) for n in (REVIEW_CHASE_AFTER, REVIEW_ESCALATE_AFTER))
    days = {"due": day, "chase": chase, "escalate": escalate}
    wanted = [
        (f"case:{case.id}:review:{n}", f"review_{n}", cal.start_of_business(d)) for n, d in days.items()
    ]
    _set_all(session, case, wanted)
