"""What each timer does when it comes due: re-check the case, then queue the nudge it needs.

Nudges, escalations included, go out inside the recipient's working hours (their own time
zone, the team's working days and hours); escalations that fall due in the same sweep are
grouped into one message per recipient. When a queued nudge is about to be sent,
`skip_if_moot` checks its reason again and drops it when the reason is gone.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import digest, handover
from bot.case_state import OPEN, UNREVIEWED, CaseState
from bot.coaching import refresh_leader_dm
from bot.team_calendar import recipient_calendar
from storage.models import Case, OutboxMessage, Person, Timer
from storage.outbox import audit, enqueue


@dataclass
class EscalationBatch:
    """Breached cases found in one sweep, grouped per (reason, "person" or "channel", recipient)."""

    by_recipient: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    due: dict[tuple[str, str, str], datetime] = field(default_factory=dict)

    def add(self, case: Case, reason: str, now: datetime) -> None:
        recipients: list[tuple[str, str, Person | None]] = [
            ("person", str(p.id), p) for p in case.team.escalation_people
        ]
        recipients += [("channel", channel, None) for channel in case.team.escalation_channels]
        for kind, target, person in recipients:
            key = (reason, kind, target)
            self.by_recipient[key].append(case.id)
            opening = recipient_calendar(case.team, person).next_opening(now)
            self.due[key] = min(self.due.get(key, opening), opening)

    def flush(self, session: Session, now: datetime) -> None:
        for (reason, kind, target), case_ids in self.by_recipient.items():
            ids = sorted(set(case_ids))
            digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:12]
            enqueue(
                session,
                f"escalation:{reason}:{kind}:{target}:{now.isoformat()}:{digest}",
                "escalation",
                now=now,
                due_at=self.due.get((reason, kind, target), now),
                person_id=int(target) if kind == "person" else None,
                channel=target if kind == "channel" else None,
                payload={"case_ids": ids, "reason": reason},
            )


def _nudge(
    session: Session, case: Case, kind: str, key: str, now: datetime, person_id: int, **payload: str
) -> None:
    due = recipient_calendar(case.team, session.get(Person, person_id)).next_opening(now)
    enqueue(
        session, key, kind, now=now, due_at=due, case_id=case.id, person_id=person_id, payload=dict(payload)
    )


# timer kind -> (states in which it still matters, message kind, who gets it)
NUDGES = {
    "ack_reminder": ((CaseState.AGREED,), "agent_ack_reminder", "agent"),
    "ack_overdue": ((CaseState.AGREED,), "leader_ack_overdue", "leader"),
    "review_due": (UNREVIEWED, "review_due", "leader"),
    "review_chase": (UNREVIEWED, "review_chase", "leader"),
}


def fire(session: Session, timer: Timer, now: datetime, batch: EscalationBatch) -> None:
    """Queue what a due timer calls for, if its case still needs it."""
    if timer.kind == "digest":
        digest.fire(session, timer.dedupe_key, now)
        return
    if timer.kind == "cover_end":
        handover.end_cover(session, timer.dedupe_key, now)
        return
    case = session.get(Case, timer.case_id) if timer.case_id else None
    if case is None:
        return
    kind, awaiting = timer.kind, case.state == CaseState.AWAITING
    if kind in ("remind_day3", "remind_last_day") and awaiting:
        which = "day3" if kind == "remind_day3" else "last_day"
        _nudge(
            session,
            case,
            "leader_reminder",
            f"case:{case.id}:remind:{which}",
            now,
            case.leader_id,
            which=which,
        )
        refresh_leader_dm(session, case, now, which)
    elif kind == "escalate" and awaiting:
        first = case.breached_at is None
        if first:
            case.breached_at = now
        audit(
            session,
            now,
            "system",
            "case_breached" if first else "case_escalated_again",
            case_id=case.id,
            timer=timer.dedupe_key,
        )
        batch.add(case, "conversation", now)
        refresh_leader_dm(session, case, now, "late")
    elif kind == "review_escalate" and case.state in UNREVIEWED:
        audit(session, now, "system", "review_escalated", case_id=case.id)
        batch.add(case, "review", now)
    elif kind in NUDGES:
        states, message, who = NUDGES[kind]
        if case.state in states:
            person_id = case.agent_id if who == "agent" else case.leader_id
            _nudge(session, case, message, f"{timer.dedupe_key}:sent", now, person_id)


# message kind -> the case states in which it still has a reason to go out
STILL_DUE: dict[str, tuple[CaseState, ...]] = {
    "agent_ack_reminder": (CaseState.AGREED,),
    "leader_ack_overdue": (CaseState.AGREED,),
    "review_due": UNREVIEWED,
    "review_chase": UNREVIEWED,
    "leader_discussion": UNREVIEWED,
}
TO_THE_HOLDER = {
    "leader_case",
    "leader_reminder",
    "leader_ack_overdue",
    "review_due",
    "review_chase",
    "leader_discussion",
}


def _reason_gone(session: Session, row: OutboxMessage, now: datetime) -> str | None:
    if row.kind == "escalation":
        return _escalation_gone(session, row, now)
    # Only the case's state and holder: its evidence is read when the message renders, outside this
    # (writing) transaction.
    found = session.execute(select(Case.state, Case.leader_id).where(Case.id == row.case_id)).first()
    if found is None:
        return None
    state, leader_id = CaseState(found.state), found.leader_id
    if row.kind in TO_THE_HOLDER and row.person_id is not None and row.person_id != leader_id:
        return "the case was handed over to another leader"
    if row.kind == "leader_reminder":
        manual = (row.payload or {}).get("which") == "manual"
        if state not in (OPEN if manual else (CaseState.AWAITING,)):
            return f"the case is {state.words}"
    elif row.kind in STILL_DUE and state not in STILL_DUE[row.kind]:
        return f"the case is {state.words}"
    return None


def _escalation_gone(session: Session, row: OutboxMessage, now: datetime) -> str | None:
    """Keep only the cases still late, and still of a team this recipient defends."""
    payload = dict(row.payload or {})
    review = payload.get("reason") == "review"
    still: list[int] = []
    for case_id in payload.get("case_ids", []):
        case = session.get(Case, case_id)
        if case is None:
            continue
        late = (
            case.state in UNREVIEWED if review else (case.state == CaseState.AWAITING and now >= case.due_at)
        )
        defends = (
            any(p.id == row.person_id for p in case.team.escalation_people)
            if row.person_id is not None
            else row.channel in case.team.escalation_channels
        )
        if late and defends:
            still.append(case.id)
    if not still:
        return "no case in it is late any more"
    if still != payload.get("case_ids"):
        row.payload = {**payload, "case_ids": still}
    return None


def skip_if_moot(session: Session, row: OutboxMessage, now: datetime) -> str | None:
    """Re-check a queued nudge at send time: when its reason is gone, record it as skipped and say why."""
    why = _reason_gone(session, row, now)
    if why is not None:
        row.status, row.lease_until, row.last_error = "skipped", None, f"skipped: {why}"
    return why
