"""The follow-up review, waiving a conversation, and nudging a leader by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching, wording
from bot.case_state import OPEN, CaseState, Event, check, transition
from bot.errors import CaseMovedOn, InvalidInput
from bot.team_calendar import calendar_for, recipient_calendar
from storage import queries
from storage.models import Case, Evaluation, Person
from storage.outbox import audit, enqueue

HAPPENED = {"yes": "Yes, as agreed", "partly": "Partly", "no": "No"}
NEXT = {
    "close": "Close the loop: it worked",
    "recoach": "Coach the same behaviour again",
    "next": "Move to the next behaviour in the backlog",
}


@dataclass(frozen=True)
class CriterionResult:
    landed_on: date
    score: float
    max_score: float

    @property
    def passed(self) -> bool:
        return self.score >= self.max_score


@dataclass(frozen=True)
class ReviewDraft:
    case_id: int
    agent_name: str
    behaviour: str
    action: str
    action_date: date | None
    results: list[CriterionResult]
    summary: str


@dataclass(frozen=True)
class ReviewForm:
    happened: str | None
    worked: str | None
    next_step: str | None


def criterion_results(session: Session, case: Case) -> list[CriterionResult]:
    """The agreed criterion as scored in every evaluation of the agent since the conversation."""
    if case.agreed_at is None or not case.behaviour_key:
        return []
    tz = calendar_for(case.team).tz
    evaluations = session.scalars(
        select(Evaluation)
        .where(Evaluation.agent_id == case.agent_id, Evaluation.landed_at > case.agreed_at)
        .order_by(Evaluation.landed_at)
    )
    return [
        CriterionResult(ev.landed_at.astimezone(tz).date(), item.score, item.max_score)
        for ev in evaluations
        for item in ev.items
        if item.key == case.behaviour_key
    ]


def summarise(results: list[CriterionResult], since: date) -> str:
    when = f"{since.day} {since.strftime('%b')}"
    if not results:
        return f"not scored in any evaluation since {when}"
    passed = sum(r.passed for r in results)
    return f"passed {passed} of {len(results)} since {when}"


def draft_review(session: Session, case: Case) -> ReviewDraft:
    results = criterion_results(session, case)
    assert case.agreed_at is not None, "only an agreed case has a review"
    since = case.agreed_at.astimezone(calendar_for(case.team).tz).date()
    return ReviewDraft(
        case_id=case.id,
        agent_name=case.agent.display,
        behaviour=case.behaviour_name or "",
        action=case.action or "",
        action_date=case.action_date,
        results=results,
        summary=summarise(results, since)
        if case.behaviour_key != coaching.DEVELOPMENT_GOAL
        else "a development goal: no scorecard criterion to follow",
    )


def check_reviewable(case: Case) -> None:
    state = CaseState(case.state)
    check(case, Event.REVIEW, f"This case has no review pending (it is {state.words}); nothing changed.")


def record_review(
    session: Session, case_id: int, actor: Person | None, form: ReviewForm, now: datetime
) -> Case:
    """Record the review and close the case; re-coach or open the next behaviour when asked."""
    case = coaching.load_case(session, case_id, lock=True)
    coaching.check_may_plan(actor, case)
    check_reviewable(case)
    assert actor is not None
    errors = {}
    if form.happened not in HAPPENED:
        errors["happened"] = "Say whether the agreed action happened."
    if not form.worked or not form.worked.strip():
        errors["worked"] = "Say whether it worked: what changed, in the results or on the calls."
    elif len(form.worked) > coaching.MAX_TEXT:
        errors["worked"] = f"Keep it under {coaching.MAX_TEXT} characters."
    if form.next_step not in NEXT:
        errors["next"] = "Choose what happens next."
    if errors:
        raise InvalidInput(errors)
    case.review_happened, case.review_worked, case.review_next = form.happened, form.worked, form.next_step
    case.reviewed_at = case.closed_at = now
    transition(session, case, Event.REVIEW)
    audit(
        session,
        now,
        coaching.actor_label(actor),
        "review_recorded",
        case_id=case.id,
        happened=form.happened,
        next=form.next_step,
    )
    coaching.refresh_leader_dm(session, case, now, "reviewed")
    if form.next_step in ("recoach", "next"):
        session.flush()
        follow_on, opened = continue_after(session, case, now, same_behaviour=form.next_step == "recoach")
        audit(
            session,
            now,
            coaching.actor_label(actor),
            "case_opened" if opened else "follow_on_joined",
            case_id=follow_on.id,
            previous_case=case.id,
            reason=form.next_step,
        )
    return case


def continue_after(
    session: Session, previous: Case, now: datetime, *, same_behaviour: bool
) -> tuple[Case, bool]:
    """The next conversation: the agent's awaiting case, re-targeted to what the review chose, or a new
    one whose window starts now. True when a case was opened."""
    queries.lock_people(session, [previous.agent_id])
    case = queries.awaiting_case(session, previous.agent_id)
    opened = case is None
    if case is None:
        team = previous.team
        case = Case(
            agent_id=previous.agent_id,
            team_id=team.id,
            leader_id=coaching.holder_for(session, team).id,
            kind=coaching.PERFORMANCE,
            opened_at=now,
            due_at=calendar_for(team).deadline(now, team.window_days),
            previous_case_id=previous.id,
            window_from=now,
            leader_dm_version=0,
        )
        transition(session, case, Event.OPEN)
        session.refresh(case)
    elif case.previous_case_id is None:
        case.previous_case_id = previous.id
    if same_behaviour:
        case.suggested_key = previous.behaviour_key
        case.kind = coaching.PERFORMANCE
    else:
        picks = coaching.ranked_picks(session, case)
        case.suggested_key = picks[0].key if picks else None
        if not picks:
            case.kind = coaching.DEVELOPMENTAL
    if opened:
        enqueue(
            session,
            coaching.leader_dm_key(case),
            "leader_case",
            now=now,
            case_id=case.id,
            person_id=case.leader_id,
        )
        coaching.homes_changed(session, case, now)
    else:
        coaching.refresh_leader_dm(session, case, now, f"follow-on-{previous.id}")
    return case, opened


def check_may_waive(person: Person | None, case: Case) -> None:
    if not (coaching.may_lead(person, case) or coaching.may_defend(person, case)):
        raise coaching.refusal(
            person,
            case,
            f"Only {case.leader.display}, who holds {case.agent.display}'s coaching, or "
            f"{case.team.name}'s escalation contacts can waive it.",
        )


def waive(session: Session, case_id: int, actor: Person | None, reason: str | None, now: datetime) -> Case:
    case = coaching.load_case(session, case_id, lock=True)
    check_may_waive(actor, case)
    check(case, Event.WAIVE)
    assert actor is not None
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise InvalidInput({"reason": "Give the reason this conversation is not needed."})
    if len(reason) > 500:
        raise InvalidInput({"reason": "Keep the reason under 500 characters."})
    case.waived_reason, case.waived_at = reason, now
    transition(session, case, Event.WAIVE)
    audit(session, now, coaching.actor_label(actor), "case_waived", case_id=case.id, reason=reason)
    coaching.refresh_leader_dm(session, case, now, "waived")
    return case


def remind_leader(session: Session, case_id: int, actor: Person | None, now: datetime) -> bool:
    """An escalation contact nudges the leader now; at most once a day per case. True when queued."""
    case = coaching.load_case(session, case_id)
    if actor is None or not any(p.id == actor.id for p in case.team.escalation_people):
        raise coaching.refusal(
            actor, case, f"Only {case.team.name}'s escalation contacts can send this reminder."
        )
    if case.state not in OPEN:
        raise CaseMovedOn(f"{case.agent.display}'s case needs nothing from {case.leader.display} now.")
    today = calendar_for(case.team).local(now).date()
    queued = enqueue(
        session,
        f"case:{case.id}:remind:manual:{today.isoformat()}",
        "leader_reminder",
        now=now,
        due_at=recipient_calendar(case.team, case.leader).next_opening(now),
        case_id=case.id,
        person_id=case.leader_id,
        payload={"which": "manual", "by": actor.display},
    )
    if queued is not None:
        audit(session, now, coaching.actor_label(actor), "leader_reminded", case_id=case.id)
    return queued is not None


def results_line(draft: ReviewDraft) -> str:
    marks = ", ".join(
        f"{wording.short_date(r.landed_on)} {r.score:g}/{r.max_score:g} {'✓' if r.passed else '✗'}"
        for r in draft.results[-10:]
    )
    return f"*{draft.behaviour}*: {draft.summary}" + (f"\n{marks}" if marks else "")
