"""Keeping what should be kept, and no more.

`purge` removes the free text of old evaluations and finished cases (raw payloads, evaluator
comments, examples) and keeps every figure the measures count (scores, items, states, dates).
`forget` removes one person's personal data (an agent who left): their identity becomes a
pseudonym, the text written about them goes, and their figures stay anonymous. Both write an
audit entry that names counts and ids, never the removed text or the email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from bot.errors import CoachingError
from storage.models import (
    AuditEntry,
    Case,
    Evaluation,
    EvaluationItem,
    OutboxMessage,
    Person,
    Team,
    TeamAgent,
    TeamEscalation,
    Timer,
)
from storage.outbox import audit

OPEN_STATES = ("awaiting_conversation", "agreed", "acknowledged", "discussion_requested")
CASE_TEXT = ("example", "action", "notes", "review_worked", "waived_reason")


class PrivacyError(CoachingError):
    """Refused; nothing was changed."""


@dataclass
class Removed:
    """What was removed, as counts per kind, in the order it was counted."""

    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, what: str, n: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def lines(self) -> list[str]:
        out = [f"  {what}: {n}" for what, n in self.counts.items()]
        return out + [f"  note: {n}" for n in self.notes]


def _count(session: Session, stmt: object) -> int:
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[call-overload]


def purge(session: Session, before: datetime, now: datetime, actor: str) -> Removed:
    """Remove raw payloads and evaluator comments of evaluations that landed before `before`, and the
    examples of cases finished before it. Evaluations of a case still open keep their text."""
    if before > now:
        raise PrivacyError("--before must not be in the future: it would purge what is still being coached.")
    removed = Removed()
    open_case_ids = select(Case.id).where(Case.state.in_(OPEN_STATES))
    old = (
        select(Evaluation.id)
        .where(Evaluation.landed_at < before)
        .where(or_(Evaluation.case_id.is_(None), Evaluation.case_id.not_in(open_case_ids)))
    )
    removed.add(
        "raw evaluation payloads",
        _count(
            session,
            update(Evaluation)
            .where(Evaluation.id.in_(old), cast(Evaluation.raw, String) != "{}")
            .values(raw={}),
        ),
    )
    removed.add(
        "evaluator comments",
        _count(
            session,
            update(EvaluationItem)
            .where(EvaluationItem.evaluation_id.in_(old), EvaluationItem.comment.is_not(None))
            .values(comment=None),
        ),
    )
    finished_before = or_(Case.closed_at < before, Case.waived_at < before)
    removed.add(
        "case examples",
        _count(
            session,
            update(Case)
            .where(Case.state.in_(("closed", "waived")), finished_before, Case.example.is_not(None))
            .values(example=None),
        ),
    )
    kept = session.scalar(
        select(func.count())
        .select_from(Evaluation)
        .where(Evaluation.landed_at < before, Evaluation.case_id.in_(open_case_ids))
    )
    if kept:
        removed.notes.append(f"{kept} older evaluations kept their text: their case is still open")
    audit(session, now, actor, "data_purged", before=before.isoformat(), **removed.counts)
    return removed


def forget(session: Session, email: str, now: datetime, actor: str) -> Removed:
    """Remove a person's personal data; refuses (changing nothing) while they lead a team."""
    email = email.strip().lower()
    person = session.scalar(select(Person).where(func.lower(Person.email) == email))
    as_agent = select(Evaluation.id).where(func.lower(Evaluation.agent_email) == email)
    as_evaluator = select(Evaluation.id).where(func.lower(Evaluation.evaluator_email) == email)
    if (
        person is None
        and session.scalar(select(func.count()).select_from(as_agent.union(as_evaluator).subquery())) == 0
    ):
        raise PrivacyError(f"No one with the email {email} is known: nothing was changed.")
    if person is not None:
        leads = list(session.scalars(select(Team.name).where(Team.leader_id == person.id)))
        if leads:
            raise PrivacyError(
                f"{email} leads {', '.join(leads)}: name another team leader in the org file and import it "
                "(coachloop org import), then forget them. Nothing was changed."
            )
    removed = Removed()
    pseudonym = f"forgotten-{person.id}@invalid" if person is not None else "forgotten@invalid"
    agent_evaluations = list(session.scalars(as_agent))
    removed.add(
        "evaluations about them made anonymous (payload, contact, agent email)",
        _count(
            session,
            update(Evaluation)
            .where(Evaluation.id.in_(agent_evaluations))
            .values(raw={}, agent_email=pseudonym, contact_id=None, contact_url=None),
        ),
    )
    removed.add(
        "evaluator comments about them",
        _count(
            session,
            update(EvaluationItem)
            .where(EvaluationItem.evaluation_id.in_(agent_evaluations), EvaluationItem.comment.is_not(None))
            .values(comment=None),
        ),
    )
    removed.add(
        "evaluations they scored (evaluator name and email)",
        _count(
            session,
            update(Evaluation)
            .where(func.lower(Evaluation.evaluator_email) == email)
            .values(evaluator_email=None, evaluator_name=None),
        ),
    )
    if person is not None:
        _forget_person(session, person, pseudonym, removed)
    audit(
        session,
        now,
        actor,
        "person_forgotten",
        person_id=person.id if person is not None else None,
        **removed.counts,
    )
    return removed


def _forget_person(session: Session, person: Person, pseudonym: str, removed: Removed) -> None:
    case_ids = list(session.scalars(select(Case.id).where(Case.agent_id == person.id)))
    removed.add(
        "texts of their coaching cases (example, action, notes, review, waive reason)",
        _count(
            session,
            update(Case).where(Case.id.in_(case_ids)).values(**dict.fromkeys(CASE_TEXT)),
        ),
    )
    removed.add(
        "reminders cancelled",
        _count(
            session,
            update(Timer)
            .where(Timer.case_id.in_(case_ids), Timer.status == "pending")
            .values(status="cancelled"),
        ),
    )
    removed.add(
        "queued messages dropped",
        _count(
            session,
            update(OutboxMessage)
            .where(
                or_(OutboxMessage.person_id == person.id, OutboxMessage.case_id.in_(case_ids)),
                OutboxMessage.status.in_(("pending", "sending")),
            )
            .values(status="skipped", lease_until=None),
        ),
    )
    # Messages already sent to them: forget where they went (their DM); nothing will update them again.
    theirs = OutboxMessage.person_id == person.id
    if person.dm_channel:  # in-place updates of their messages name the DM too
        theirs = or_(theirs, OutboxMessage.slack_channel == person.dm_channel)
    session.execute(
        update(OutboxMessage).where(theirs, OutboxMessage.status == "sent").values(status="forgotten")
    )
    session.execute(update(OutboxMessage).where(theirs).values(payload={}, slack_channel=None, slack_ts=None))
    removed.add(
        "team memberships",
        _count(session, delete(TeamAgent).where(TeamAgent.person_id == person.id))
        + _count(session, delete(TeamEscalation).where(TeamEscalation.person_id == person.id)),
    )
    renamed = 0
    if person.slack_id:
        renamed = _count(
            session,
            update(AuditEntry)
            .where(AuditEntry.actor == f"slack:{person.slack_id}")
            .values(actor=f"person:{person.id}"),
        )
    for entry in session.scalars(
        select(AuditEntry).where(AuditEntry.case_id.in_(case_ids), AuditEntry.action == "case_waived")
    ):
        entry.detail = {k: v for k, v in entry.detail.items() if k != "reason"}
    removed.add("audit entries now naming them by id only", renamed)
    person.email, person.name = pseudonym, ""
    person.slack_id = person.timezone = person.dm_channel = None
    person.is_admin = False
    removed.add("their name, email, Slack id, time zone and DM channel", 1)
    removed.notes.append(
        "remove them from the org file too, or the next `coachloop org import` adds them back"
    )
    open_cases = session.scalar(
        select(func.count()).select_from(Case).where(Case.id.in_(case_ids), Case.state.in_(OPEN_STATES))
    )
    if open_cases:
        removed.notes.append(f"{open_cases} of their cases are still open: their reminders were cancelled")
