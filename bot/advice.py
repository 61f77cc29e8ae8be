"""QA leads as advisors: they add evidence, suggest the focus with a reason, or leave the leader a note.

They never agree a plan or acknowledge one: the leader decides. What they write reaches the agent only
when the leader puts it in the agreed example.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching
from bot.errors import CaseMovedOn, InvalidInput, NotAllowed
from storage import queries
from storage.models import Case, CaseAdvice, Person, Team, TeamQALead
from storage.outbox import audit, enqueue, enqueue_home

EVIDENCE, FOCUS, NOTE = "evidence", "focus", "note"
OPEN_STATES = (queries.AWAITING, *queries.UNREVIEWED)
MAX_TEXT = 3000


@dataclass(frozen=True)
class AdviceForm:
    evidence: str | None = None
    link: str | None = None
    focus_key: str | None = None
    reason: str | None = None
    note: str | None = None


def qa_lead_teams(session: Session, person: Person) -> list[Team]:
    return list(
        session.scalars(
            select(Team).join(TeamQALead).where(TeamQALead.person_id == person.id).order_by(Team.name)
        )
    )


def qa_leads_of(session: Session, team_id: int) -> list[Person]:
    return list(session.scalars(select(Person).join(TeamQALead).where(TeamQALead.team_id == team_id)))


def is_qa_lead(session: Session, person: Person | None, team: Team) -> bool:
    if person is None:
        return False
    row = session.get(TeamQALead, (team.id, person.id))
    return row is not None


def check_may_advise(session: Session, person: Person | None, case: Case) -> None:
    if not is_qa_lead(session, person, case.team):
        raise NotAllowed(f"Only the QA leads of team {case.team.name} can add advice to this case.")
    if case.state not in OPEN_STATES:
        raise CaseMovedOn(
            f"{case.agent.display}'s case is {case.state.replace('_', ' ')}: advice is for open cases."
        )


def open_cases(session: Session, person: Person) -> list[Case]:
    """Open cases of the teams this person advises, by deadline."""
    team_ids = [t.id for t in qa_lead_teams(session, person)]
    if not team_ids:
        return []
    return list(
        session.scalars(
            select(Case)
            .where(Case.team_id.in_(team_ids), Case.state.in_(OPEN_STATES))
            .order_by(Case.due_at, Case.id)
        )
    )


def advice_for(session: Session, case_id: int) -> list[CaseAdvice]:
    return list(
        session.scalars(select(CaseAdvice).where(CaseAdvice.case_id == case_id).order_by(CaseAdvice.id))
    )


def has_evidence(session: Session, case_id: int) -> bool:
    found = select(CaseAdvice.id).where(CaseAdvice.case_id == case_id, CaseAdvice.kind == EVIDENCE)
    return session.scalar(found.limit(1)) is not None


def _clean(text: str | None) -> str:
    return (text or "").strip()


def validate(form: AdviceForm, focus_keys: set[str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    evidence, reason, note = _clean(form.evidence), _clean(form.reason), _clean(form.note)
    if not (evidence or form.focus_key or note):
        errors["evidence"] = "Add evidence, suggest a focus, or leave a note: the form is empty."
    for block, text in (("evidence", evidence), ("reason", reason), ("note", note)):
        if len(text) > MAX_TEXT:
            errors[block] = f"Keep it under {MAX_TEXT} characters (it has {len(text)})."
    link = _clean(form.link)
    if link:
        parsed = urlparse(link)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            errors["link"] = "The link must start with https:// (the contact or message it points at)."
        elif not evidence:
            errors["evidence"] = "Say what happened in the contact the link points at."
    if form.focus_key:
        if form.focus_key not in focus_keys:
            errors["focus"] = "Choose the focus from the list."
        elif not reason:
            errors["reason"] = "Give the reason for the focus you suggest: the leader decides with it."
    elif reason:
        errors["focus"] = "Choose the focus the reason is for."
    return errors


def add_advice(
    session: Session,
    case_id: int,
    actor: Person | None,
    form: AdviceForm,
    now: datetime,
    *,
    source: str = "button",
) -> list[CaseAdvice]:
    """Record what the QA lead adds; the leader is told, and sees it in the plan modal."""
    case = coaching.load_case(session, case_id, lock=True)
    check_may_advise(session, actor, case)
    assert actor is not None
    keys = {p.key for p in coaching.ranked_picks(session, case)} | {coaching.DEVELOPMENT_GOAL}
    errors = validate(form, keys)
    if errors:
        raise InvalidInput(errors)
    added = []
    if _clean(form.evidence):
        added.append(CaseAdvice(kind=EVIDENCE, text=_clean(form.evidence), link=_clean(form.link) or None))
    if form.focus_key:
        added.append(CaseAdvice(kind=FOCUS, text=_clean(form.reason), behaviour_key=form.focus_key))
    if _clean(form.note):
        added.append(CaseAdvice(kind=NOTE, text=_clean(form.note)))
    for row in added:
        row.case_id, row.author_id, row.source, row.created_at = case.id, actor.id, source, now
        session.add(row)
    session.flush()
    # The audit names what was added, never its words.
    audit(
        session,
        now,
        coaching.actor_label(actor),
        "advice_added",
        case_id=case.id,
        kinds=[r.kind for r in added],
        source=source,
    )
    enqueue(
        session,
        f"case:{case.id}:advice:{added[0].id}",
        "leader_advice",
        now=now,
        case_id=case.id,
        person_id=case.leader_id,
        payload={"advice_ids": [r.id for r in added]},
    )
    coaching.refresh_leader_dm(session, case, now, "advice")
    enqueue_home(session, actor.id, now)
    return added
