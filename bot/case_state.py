"""The case lifecycle in one place: states, the allowed transitions, and the timers each sets or cancels.

Every change of a case's state goes through `transition`; a transition the table does not allow
raises `IllegalTransition` (a CoachingError, so the Slack glue shows its message).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from bot import timers
from bot.calendar import WorkCalendar
from bot.errors import CaseMovedOn
from bot.team_calendar import calendar_for
from storage.models import Case
from storage.outbox import cancel_timers


class CaseState(StrEnum):
    AWAITING = "awaiting_conversation"
    AGREED = "agreed"
    DISCUSSION_REQUESTED = "discussion_requested"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    WAIVED = "waived"

    @property
    def words(self) -> str:
        return self.value.replace("_", " ")


UNREVIEWED = (CaseState.AGREED, CaseState.ACKNOWLEDGED, CaseState.DISCUSSION_REQUESTED)
OPEN = (CaseState.AWAITING, *UNREVIEWED)
FINISHED = (CaseState.CLOSED, CaseState.WAIVED)


class Event(StrEnum):
    OPEN = "open"
    AGREE = "agree"
    REQUEST_DISCUSSION = "request_discussion"
    ACKNOWLEDGE = "acknowledge"
    REVIEW = "review"
    WAIVE = "waive"
    LEAVE = "leave"  # the agent left the org, or the case lost its only evidence: closed as waived


# Timer groups: the kinds in each, and the function that (re)writes them for a case.
CONVERSATION, ACKNOWLEDGEMENT, REVIEW = "conversation", "acknowledgement", "review"
GROUP_KINDS: dict[str, tuple[str, ...]] = {
    CONVERSATION: timers.CONVERSATION,
    ACKNOWLEDGEMENT: timers.ACKNOWLEDGEMENT,
    REVIEW: timers.REVIEW,
}
_SETTERS: dict[str, Callable[[Session, Case, WorkCalendar], None]] = {
    CONVERSATION: timers.schedule_conversation,
    ACKNOWLEDGEMENT: timers.schedule_acknowledgement,
    REVIEW: timers.schedule_review,
}


@dataclass(frozen=True)
class Transition:
    sources: tuple[CaseState | None, ...]
    target: CaseState
    sets: tuple[str, ...] = ()
    cancels: tuple[str, ...] = ()


TRANSITIONS: dict[Event, Transition] = {
    Event.OPEN: Transition((None,), CaseState.AWAITING, sets=(CONVERSATION,)),
    Event.AGREE: Transition(
        (CaseState.AWAITING,), CaseState.AGREED, sets=(ACKNOWLEDGEMENT, REVIEW), cancels=(CONVERSATION,)
    ),
    Event.REQUEST_DISCUSSION: Transition(
        (CaseState.AGREED,), CaseState.DISCUSSION_REQUESTED, cancels=(ACKNOWLEDGEMENT,)
    ),
    Event.ACKNOWLEDGE: Transition(
        (CaseState.AGREED, CaseState.DISCUSSION_REQUESTED), CaseState.ACKNOWLEDGED, cancels=(ACKNOWLEDGEMENT,)
    ),
    Event.REVIEW: Transition(UNREVIEWED, CaseState.CLOSED, cancels=(ACKNOWLEDGEMENT, REVIEW)),
    Event.WAIVE: Transition((CaseState.AWAITING,), CaseState.WAIVED, cancels=(CONVERSATION,)),
    Event.LEAVE: Transition(OPEN, CaseState.WAIVED, cancels=(CONVERSATION, ACKNOWLEDGEMENT, REVIEW)),
}

# The timer groups a case in each state keeps pending (what the transitions into it set, minus cancels).
NEEDS: dict[CaseState, tuple[str, ...]] = {
    CaseState.AWAITING: (CONVERSATION,),
    CaseState.AGREED: (ACKNOWLEDGEMENT, REVIEW),
    CaseState.DISCUSSION_REQUESTED: (REVIEW,),
    CaseState.ACKNOWLEDGED: (REVIEW,),
    CaseState.CLOSED: (),
    CaseState.WAIVED: (),
}


class IllegalTransition(CaseMovedOn):
    """The case is not in a state this step applies to; nothing was changed."""


def state_of(case: Case) -> CaseState | None:
    return CaseState(case.state) if case.state else None


def allowed(case: Case, event: Event) -> bool:
    return state_of(case) in TRANSITIONS[event].sources


def check(case: Case, event: Event, message: str | None = None) -> None:
    if not allowed(case, event):
        current = state_of(case)
        said = current.words if current else "not open"
        raise IllegalTransition(
            message or f"This coaching case has moved on (it is now {said}); nothing was changed."
        )


def transition(session: Session, case: Case, event: Event, message: str | None = None) -> CaseState:
    """Move the case by `event`: check the table, set the state, cancel and write the timers."""
    check(case, event, message)
    rule = TRANSITIONS[event]
    case.state = rule.target
    if case.id is None:
        session.add(case)
        session.flush()
    for group in rule.cancels:
        cancel_timers(session, case.id, GROUP_KINDS[group])
    cal = calendar_for(case.team)
    for group in rule.sets:
        _SETTERS[group](session, case, cal)
    return rule.target


def reschedule(session: Session, case: Case, now: datetime) -> None:
    """Rewrite the timers the case's current state needs (after its deadline or dates moved)."""
    current = state_of(case)
    if current is None:
        return
    if current is CaseState.AWAITING and case.due_at > now and case.breached_at is not None:
        case.breached_at = None  # the deadline moved past now: not late any more
        timers.rearm(session, case, GROUP_KINDS[CONVERSATION])
    cal = calendar_for(case.team)
    for group in NEEDS[current]:
        _SETTERS[group](session, case, cal)
