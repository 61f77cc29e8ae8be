"""What each timer does when it comes due: re-check the case, then queue the nudge it needs.

Nudges go out inside the recipient team's business hours; escalations that fall
due in the same sweep are grouped into one message per recipient.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from bot import digest
from bot.coaching import refresh_leader_dm
from bot.team_calendar import calendar_for
from storage.models import Case, Timer
from storage.outbox import audit, enqueue
from storage.queries import UNREVIEWED


@dataclass
class EscalationBatch:
    """Breached cases found in one sweep, grouped per (reason, "person" or "channel", recipient)."""

    by_recipient: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, case: Case, reason: str) -> None:
        for person in case.team.escalation_people:
            self.by_recipient[(reason, "person", str(person.id))].append(case.id)
        for channel in case.team.escalation_channels:
            self.by_recipient[(reason, "channel", channel)].append(case.id)

    def flush(self, session: Session, now: datetime) -> None:
        for (reason, kind, target), case_ids in self.by_recipient.items():
            ids = sorted(set(case_ids))
            digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:12]
            enqueue(
                session,
                f"escalation:{reason}:{kind}:{target}:{now.isoformat()}:{digest}",
                "escalation",
                now=now,
                person_id=int(target) if kind == "person" else None,
                channel=target if kind == "channel" else None,
                payload={"case_ids": ids, "reason": reason},
            )


def _nudge(
    session: Session, case: Case, kind: str, key: str, now: datetime, person_id: int, **payload: str
) -> None:
    due = calendar_for(case.team).next_opening(now)
    enqueue(
        session, key, kind, now=now, due_at=due, case_id=case.id, person_id=person_id, payload=dict(payload)
    )


# timer kind -> (states in which it still matters, message kind, who gets it)
NUDGES = {
    "ack_reminder": (("agreed",), "agent_ack_reminder", "agent"),
    "ack_overdue": (("agreed",), "leader_ack_overdue", "leader"),
    "review_due": (UNREVIEWED, "review_due", "leader"),
    "review_chase": (UNREVIEWED, "review_chase", "leader"),
}


def fire(session: Session, timer: Timer, now: datetime, batch: EscalationBatch) -> None:
    """Queue what a due timer calls for, if its case still needs it."""
    if timer.kind == "digest":
        digest.fire(session, timer.dedupe_key, now)
        return
    case = session.get(Case, timer.case_id) if timer.case_id else None
    if case is None:
        return
    kind, awaiting = timer.kind, case.state == "awaiting_conversation"
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
        batch.add(case, "conversation")
        refresh_leader_dm(session, case, now, "late")
    elif kind == "review_escalate" and case.state in UNREVIEWED:
        audit(session, now, "system", "review_escalated", case_id=case.id)
        batch.add(case, "review")
    elif kind in NUDGES:
        states, message, who = NUDGES[kind]
        if case.state in states:
            person_id = case.agent_id if who == "agent" else case.leader_id
            _nudge(session, case, message, f"{timer.dedupe_key}:sent", now, person_id)
