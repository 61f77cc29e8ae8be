"""The coaching case: how scores open and join cases, and how a plan is agreed and acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from bot import advice, development, evidence, timers
from bot.case_state import UNREVIEWED, CaseState, Event, check, reschedule, transition
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.evaluation_input import EvaluationInput, PayloadErrors
from bot.leverage import Observation, Pick, rank
from bot.team_calendar import calendar_for, timezone_of
from storage import queries
from storage.models import Case, Evaluation, EvaluationItem, Person, Team, TeamQALead
from storage.outbox import audit, enqueue, enqueue_homes, enqueue_refresh

PERFORMANCE, DEVELOPMENTAL = "performance", "developmental"
KINDS = {
    PERFORMANCE: "Performance: a behaviour to change",
    DEVELOPMENTAL: "Developmental: the agent's growth",
}
DEVELOPMENT_GOAL = "development-goal"
REVIEW_METHODS = {
    "qa_results": "Check the criterion in the next evaluations",
    "call_review": "Review recorded contacts together",
    "observe": "Sit in on live contacts",
    "check_in": "Talk it through at the next 1:1",
}
MAX_TEXT = 3000
MAX_DAYS_AHEAD = 30


@dataclass(frozen=True)
class IntakeResult:
    evaluation_id: int
    case_id: int | None
    status: str
    created: bool


@dataclass(frozen=True)
class PlanDraft:
    """Everything the coaching modal shows, pre-filled so that submitting it unchanged is valid."""

    case_id: int
    agent_name: str
    kind: str
    picks: list[Pick]
    behaviour_key: str
    example: str
    action: str
    by_when: date
    earliest: date
    latest: date
    review_method: str
    agent_proposed: bool
    notes: str
    questions: list[str]
    goal: str = ""
    prep: tuple[tuple[str, str], ...] = ()
    advice: tuple[AdviceLine, ...] = ()

    def keeping(self, form: PlanForm) -> PlanDraft:
        """This draft with what the leader already entered (all but the behaviour-specific fields)."""
        try:
            by_when = date.fromisoformat(form.by_when or "")
        except ValueError:
            by_when = self.by_when
        return replace(
            self,
            kind=form.kind if form.kind in KINDS else self.kind,
            by_when=by_when,
            review_method=form.review_method if form.review_method in REVIEW_METHODS else self.review_method,
            agent_proposed=form.agent_proposed,
            notes=form.notes or "",
            goal=form.goal if form.goal is not None else self.goal,
        )


@dataclass(frozen=True)
class AdviceLine:
    """What a QA lead added, as the leader's modal shows it."""

    kind: str
    author: str
    text: str
    link: str | None = None
    focus: str | None = None


@dataclass(frozen=True)
class PlanForm:
    kind: str | None
    behaviour_key: str | None
    example: str | None
    action: str | None
    by_when: str | None
    review_method: str | None
    agent_proposed: bool
    notes: str | None
    goal: str | None = None


# --- scores landing -------------------------------------------------------------------------


def _apply(evaluation: Evaluation, data: EvaluationInput) -> None:
    evaluation.agent_email = data.agent_email
    evaluation.evaluator_email = data.evaluator_email
    evaluation.evaluator_name = data.evaluator_name
    evaluation.scorecard_id = data.scorecard_id
    evaluation.scorecard_name = data.scorecard_name
    evaluation.score = data.score
    evaluation.max_score = data.max_score
    evaluation.landed_at = data.landed_at
    evaluation.contact_id = data.contact_id
    evaluation.contact_channel = data.contact_channel
    evaluation.contact_started_at = data.contact_started_at
    evaluation.contact_url = data.contact_url
    evaluation.raw = data.raw
    evaluation.content_hash = data.content_hash
    evaluation.source_updated_at = data.updated_at
    evaluation.items = [
        EvaluationItem(
            position=i,
            key=item.key,
            name=item.name,
            category=item.category,
            score=item.score,
            max_score=item.max_score,
            weight=item.weight,
            critical=item.critical,
            comment=item.comment,
            at_seconds=item.at_seconds,
            good_looks_like=item.good_looks_like,
        )
        for i, item in enumerate(data.items)
    ]


FUTURE_TOLERANCE = timedelta(minutes=5)


def is_stale(stored_updated_at: datetime | None, updated_at: datetime | None) -> bool:
    """Whether a changed version of a stored evaluation is stale: not newer than the stored one (by the
    platform's `updated_at`), or without one when the stored version had one. It changes nothing."""
    if stored_updated_at is None:
        return False
    return updated_at is None or updated_at <= stored_updated_at


def intake(session: Session, data: EvaluationInput, now: datetime, actor: str) -> IntakeResult:
    """Record a score; open or join the agent's case. A repeat returns the original result; a newer
    version is applied as a correction; an older one changes nothing ("stale")."""
    if data.landed_at > now + FUTURE_TOLERANCE:
        raise PayloadErrors(
            [
                {
                    "path": "landed_at",
                    "message": f"is in the future ({data.landed_at.isoformat()}); "
                    "a score cannot land more than 5 minutes ahead of now",
                }
            ]
        )
    existing = (
        session.query(Evaluation).filter_by(source=data.source, external_id=data.external_id).one_or_none()
    )
    if existing is not None:
        if existing.content_hash == data.content_hash:
            return IntakeResult(existing.id, existing.case_id, existing.intake_status, created=False)
        if is_stale(existing.source_updated_at, data.updated_at):
            return IntakeResult(existing.id, existing.case_id, "stale", created=False)
        return _revise(session, existing, data, now, actor)

    evaluation = Evaluation(
        source=data.source,
        external_id=data.external_id,
        received_at=now,
        revision=1,
        intake_status="received",
    )
    _apply(evaluation, data)
    agent, team = queries.agent_with_team(session, data.agent_email)
    session.add(evaluation)
    if agent is None or team is None:
        evaluation.intake_status = "unassigned_agent"
        session.flush()
        audit(session, now, actor, "evaluation_unassigned", evaluation_id=evaluation.id)
        return IntakeResult(evaluation.id, None, evaluation.intake_status, created=True)
    with session.no_autoflush:  # the agent is locked before the evaluation (written once, below) names them
        queries.lock_people(session, [agent.id])
    evaluation.agent_id = agent.id
    case, status = attach_to_case(session, evaluation, agent, now, actor, team=team)
    evaluation.intake_status = status
    session.flush()
    return IntakeResult(evaluation.id, case.id, status, created=True)


def _revise(
    session: Session, evaluation: Evaluation, data: EvaluationInput, now: datetime, actor: str
) -> IntakeResult:
    """Apply a newer version: a new agent moves the evaluation to that agent's case; a new landing
    time moves an awaiting case's deadline. Both cases are re-ranked; everything is audit-logged."""
    before = {
        "score": evaluation.score,
        "landed_at": evaluation.landed_at.isoformat(),
        "agent": evaluation.agent_email,
    }
    old_agent_id, old_case_id = evaluation.agent_id, evaluation.case_id
    agent = queries.person_by_email(session, data.agent_email)
    team = queries.team_of_agent(session, agent.id) if agent else None
    new_agent_id = agent.id if agent is not None and team is not None else None
    queries.lock_people(session, [i for i in (old_agent_id, new_agent_id) if i is not None])
    _apply(evaluation, data)
    evaluation.revision += 1
    session.flush()
    audit(
        session,
        now,
        actor,
        "evaluation_revised",
        case_id=old_case_id,
        evaluation_id=evaluation.id,
        revision=evaluation.revision,
        before=before,
    )
    old_case = session.get(Case, old_case_id) if old_case_id else None
    if new_agent_id == old_agent_id:
        if old_case is not None:
            session.refresh(old_case)
            _evidence_changed(session, old_case, now, f"revised-{evaluation.id}-{evaluation.revision}")
        return IntakeResult(evaluation.id, evaluation.case_id, "revised", created=False)

    # The evaluation belongs to another agent now.
    evaluation.case_id, evaluation.agent_id, evaluation.window_from = None, new_agent_id, None
    session.flush()
    if old_case is not None:
        session.refresh(old_case)
        _evidence_left(session, old_case, evaluation, now, actor)
    new_case: Case | None = None
    if agent is not None and new_agent_id is not None:
        new_case, evaluation.intake_status = attach_to_case(session, evaluation, agent, now, actor)
    else:
        evaluation.intake_status = "unassigned_agent"
    audit(
        session,
        now,
        actor,
        "evaluation_moved",
        case_id=old_case_id,
        evaluation_id=evaluation.id,
        from_case=old_case_id,
        to_case=new_case.id if new_case else None,
        from_agent=before["agent"],
        to_agent=evaluation.agent_email,
    )
    return IntakeResult(evaluation.id, evaluation.case_id, "revised", created=False)


def _evidence_changed(session: Session, case: Case, now: datetime, what: str) -> None:
    """An awaiting case re-ranks and recounts its deadline from the evidence it now holds."""
    if case.state != CaseState.AWAITING:
        return
    rerank(session, case)
    recount_deadline(session, case, now)
    refresh_leader_dm(session, case, now, what)


def _evidence_left(session: Session, case: Case, evaluation: Evaluation, now: datetime, actor: str) -> None:
    if case.state == CaseState.AWAITING:
        if not case.evaluations and case.window_from is None:
            case.waived_reason = "its only score was corrected to another agent"
            case.waived_at = now
            transition(session, case, Event.LEAVE)
            audit(session, now, actor, "case_waived", case_id=case.id, reason=case.waived_reason)
            refresh_leader_dm(session, case, now, f"moved-{evaluation.id}")
            return
        _evidence_changed(session, case, now, f"moved-{evaluation.id}")
        return
    if case.agreed_at is None:
        return  # waived before any conversation: nothing was built on it
    # The conversation was held on this evidence: its leader hears what moved.
    enqueue(
        session,
        f"case:{case.id}:evidence_moved:{evaluation.id}:{evaluation.revision}",
        "leader_evidence_moved",
        now=now,
        case_id=case.id,
        person_id=case.leader_id,
        payload={"evaluation_id": evaluation.id, "contact_id": evaluation.contact_id or ""},
    )


def holder_for(session: Session, team: Team) -> Person:
    """Who receives a new case of the team: its leader, or the leader covering their queue."""
    cover = queries.active_cover(session, team.leader_id)
    return cover.cover if cover is not None else team.leader


def rerank(session: Session, case: Case) -> None:
    picks = ranked_picks(session, case)
    case.suggested_key = picks[0].key if picks else None
    if case.evaluations:
        case.kind = PERFORMANCE if any(e.has_shortfall for e in case.evaluations) else DEVELOPMENTAL


def recount_deadline(session: Session, case: Case, now: datetime) -> None:
    """An awaiting case's deadline counts from the earliest start of its window."""
    if case.state != CaseState.AWAITING or not (case.evaluations or case.window_from):
        return
    case.due_at = calendar_for(case.team).deadline(timers.window_opens(case), case.team.window_days)
    reschedule(session, case, now)


def attach_to_case(
    session: Session,
    evaluation: Evaluation,
    agent: Person,
    now: datetime,
    actor: str,
    *,
    team: Team | None = None,
) -> tuple[Case, str]:
    """Join the agent's case awaiting a conversation, or open a new one (the agent is locked first).

    A constant number of statements, whatever the agent's history: the suggested focus of a joined case
    is ranked again when it is next shown (its DM refresh, queued here, renders after the commit)."""
    team = team or queries.team_of_agent(session, agent.id)
    assert team is not None
    queries.lock_people(session, [agent.id])
    with session.no_autoflush:  # the evaluation is written once, with its case, below
        case = queries.awaiting_case(session, agent.id, with_evidence=False)
    cal = calendar_for(team)
    start = timers.evaluation_start(evaluation)
    if case is not None:
        evaluation.case_id, evaluation.intake_status = case.id, "joined_case"
        if evaluation.has_shortfall:
            case.kind = PERFORMANCE
        case.suggested_key = None  # the new evidence may change the pick: ranked again when shown
        session.flush()
        if cal.deadline(start, team.window_days) < case.due_at:
            # This score opens the window earlier: count the deadline and timers again from it.
            session.refresh(case)
            recount_deadline(session, case, now)
        audit(session, now, actor, "evaluation_joined", case_id=case.id, evaluation_id=evaluation.id)
        refresh_leader_dm(session, case, now, f"joined-{evaluation.id}", agent=False)
        return case, "joined_case"

    with session.no_autoflush:
        holder = holder_for(session, team)
    evaluation.intake_status = "case_opened"
    case = Case(
        agent_id=agent.id,
        team_id=team.id,
        leader_id=holder.id,
        kind=PERFORMANCE if evaluation.has_shortfall else DEVELOPMENTAL,
        opened_at=now,
        due_at=now,
        leader_dm_version=0,
    )
    case.team, case.agent = team, agent
    case.evaluations.append(evaluation)
    case.due_at = cal.deadline(timers.window_opens(case), team.window_days)
    transition(session, case, Event.OPEN)
    audit(session, now, actor, "case_opened", case_id=case.id, evaluation_id=evaluation.id, kind=case.kind)
    enqueue(session, leader_dm_key(case), "leader_case", now=now, case_id=case.id, person_id=case.leader_id)
    homes_changed(session, case, now)
    if case.kind == DEVELOPMENTAL:
        development.ask_prep(session, case, now)
    return case, "case_opened"


def leader_dm_key(case: Case) -> str:
    """The DM of the case's current holder (each hand-over starts a new one)."""
    return leader_dm_key_of(case.id, case.leader_dm_version)


def leader_dm_key_of(case_id: int, version: int | None) -> str:
    base = f"case:{case_id}:leader_dm"
    return base if not version else f"{base}:{version}"


def agent_dm_key(case_id: int) -> str:
    return f"case:{case_id}:agent_agreement"


def refresh_leader_dm(session: Session, case: Case, now: datetime, what: str, *, agent: bool = True) -> None:
    """The leader's DM, and the Home of everyone the case concerns, show the case as it now is."""
    enqueue_refresh(session, leader_dm_key(case), case_id=case.id, what=what, now=now)
    homes_changed(session, case, now, agent=agent)


def homes_changed(session: Session, case: Case, now: datetime, *, agent: bool = True) -> None:
    """Re-publish the Home of everyone the case concerns (its holder, the agent, the team's leader,
    escalation contacts and QA leads), coalesced: one pending re-publish per person covers a burst.
    `agent=False` when only a case awaiting its conversation changed, which the agent's Home does not
    show (it shows agreements and past conversations)."""
    people = {case.leader_id, case.team.leader_id} | ({case.agent_id} if agent else set())
    enqueue_homes(session, people, now, team_ids=[case.team_id])


def _refresh_agent_dm(session: Session, case: Case, now: datetime, what: str) -> None:
    enqueue_refresh(session, agent_dm_key(case.id), case_id=case.id, what=what, now=now)


# --- leverage on stored evaluations ---------------------------------------------------------


def observations(agent_cases: list[Case], evaluations: list[Evaluation]) -> list[Observation]:
    """The agent's recent scored items, minus misses that a closed case has since dealt with."""
    resolved: dict[str, datetime] = {}
    for case in agent_cases:
        # A closed case resolves the misses before its conversation, unless it asked to re-coach them.
        if (
            case.state == CaseState.CLOSED
            and case.behaviour_key
            and case.agreed_at
            and case.review_next != "recoach"
        ):
            resolved[case.behaviour_key] = max(
                resolved.get(case.behaviour_key, case.agreed_at), case.agreed_at
            )
    return [
        Observation(
            evaluation_id=ev.id,
            landed_at=ev.landed_at,
            key=item.key,
            name=item.name,
            score=item.score,
            max_score=item.max_score,
            weight=item.weight,
            critical=item.critical,
        )
        for ev in evaluations
        for item in ev.items
        if not (item.key in resolved and ev.landed_at <= resolved[item.key])
    ]


def ranked_picks(session: Session, case: Case) -> list[Pick]:
    cases = queries.agent_cases(session, case.agent_id, with_evidence=False)
    under_action = frozenset(
        c.behaviour_key for c in cases if c.id != case.id and c.state in UNREVIEWED and c.behaviour_key
    )
    found = observations(cases, queries.recent_evaluations(session, case.agent_id))
    return rank(found, under_action=under_action)


def suggested(case: Case, picks: list[Pick]) -> Pick | None:
    """The focus to suggest: the one chosen for the case, or the top of the current ranking when none is
    (a score that joins the case clears the choice, so the pick follows the evidence as it is now)."""
    if case.suggested_key is None:
        return picks[0] if picks else None
    return next((p for p in picks if p.key == case.suggested_key), None)


def _item_for(session: Session, pick: Pick) -> tuple[Evaluation, EvaluationItem]:
    ev = session.get(Evaluation, pick.evidence.evaluation_id)
    assert ev is not None
    item = next(i for i in ev.items if i.key == pick.key)
    return ev, item


# --- the plan -------------------------------------------------------------------------------


QUESTIONS = {
    PERFORMANCE: [
        "How do you think that contact went, in your own words?",
        "What was going on for you at the moment the customer said that?",
        "What could you try next time, and what would help you do it?",
    ],
    DEVELOPMENTAL: [
        "Where do you want to be in 12 months?",
        "Which part of your work do you most want to get even better at?",
        "What is one step you could take in the next two weeks?",
    ],
}


def draft_plan(session: Session, case: Case, now: datetime, behaviour_key: str | None = None) -> PlanDraft:
    cal = calendar_for(case.team)
    tz = timezone_of(case.leader, case.team)
    today = now.astimezone(cal.tz).date()
    picks = ranked_picks(session, case)
    chosen = behaviour_key or (DEVELOPMENT_GOAL if case.kind == DEVELOPMENTAL else case.suggested_key)
    pick = None
    if chosen != DEVELOPMENT_GOAL:
        pick = next((p for p in picks if p.key == chosen), picks[0] if picks else None)
    if pick is not None:
        ev, item = _item_for(session, pick)
        example = evidence.example(ev, item, now, tz)
        action = item.good_looks_like or f'On your next contacts, aim to meet "{item.name}" every time.'
        key = pick.key
    else:
        # A follow-on case has no score of its own: the agent's latest one gives the example.
        recent = case.evaluations or queries.recent_evaluations(session, case.agent_id, limit=1)
        latest = recent[-1] if recent else None
        example = evidence.developmental_example(latest, now, tz) if latest else ""
        action = "Agree one step towards the agent's 12-month goal, and how we'll know it happened."
        key = DEVELOPMENT_GOAL
    prep = development.prep_of(session, case.id)
    names = {p.key: p.name for p in picks} | {DEVELOPMENT_GOAL: "Development goal"}
    return PlanDraft(
        case_id=case.id,
        agent_name=case.agent.display,
        kind=case.kind,
        picks=picks,
        behaviour_key=key,
        example=example,
        action=action,
        by_when=cal.add_working_days(today, case.team.window_days),
        earliest=today,
        latest=today + timedelta(days=MAX_DAYS_AHEAD),
        review_method="qa_results",
        agent_proposed=False,
        notes="",
        questions=QUESTIONS[case.kind],
        goal=development.goal_wording(prep, development.goal_of(session, case)),
        prep=tuple(
            (q, str(getattr(prep, k))) for k, q in development.QUESTIONS.items() if prep and getattr(prep, k)
        ),
        advice=tuple(
            AdviceLine(
                a.kind, a.author.display, a.text, a.link, names.get(a.behaviour_key or "", a.behaviour_key)
            )
            for a in advice.advice_for(session, case.id)
        ),
    )


def may_lead(person: Person | None, case: Case) -> bool:
    """The team leader holding the case (the team's leader, or the leader it was handed to) owns the
    conversation: only they plan and review it."""
    return person is not None and person.id == case.leader_id


def may_defend(person: Person | None, case: Case) -> bool:
    """The team's escalation contacts (as the team is now): they may waive, remind and hand over."""
    return person is not None and any(p.id == person.id for p in case.team.escalation_people)


def may_see_private(person: Person | None, case: Case) -> bool:
    """Waive reasons and leader notes: the case's leader, the team's leader and escalation contacts."""
    if person is None:
        return False
    return person.id in (case.leader_id, case.team.leader_id) or may_defend(person, case)


def load_case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    case = queries.case_for_update(session, case_id) if lock else session.get(Case, case_id)
    if case is None:
        raise NotFound(f"Coaching case #{case_id} does not exist.")
    return case


STRANGER_REFUSAL = "You can't act on this coaching case: it belongs to a team you are not part of."


def refusal(person: Person | None, case: Case, explained: str) -> NotAllowed:
    """The case's team, its QA leads and escalation contacts, and anyone who held the case hear who
    may act; anyone else hears no names."""
    team = case.team
    insiders = {team.leader_id, case.leader_id, case.agent_id}
    insiders |= {p.id for p in team.agents} | {p.id for p in team.escalation_people}
    insiders |= {h.from_id for h in case.handovers}
    session = object_session(case)
    if session is not None:  # the team's QA leads advise on its cases
        insiders |= set(session.scalars(select(TeamQALead.person_id).where(TeamQALead.team_id == team.id)))
    return NotAllowed(explained if person is not None and person.id in insiders else STRANGER_REFUSAL)


def check_may_plan(person: Person | None, case: Case) -> None:
    if not may_lead(person, case):
        raise refusal(
            person,
            case,
            f"Only {case.leader.display}, who holds {case.agent.display}'s coaching, can plan and review it.",
        )


def check_awaiting(case: Case) -> None:
    check(case, Event.AGREE)


def _validate(form: PlanForm, draft: PlanDraft) -> dict[str, str]:
    errors: dict[str, str] = {}
    if form.kind not in KINDS:
        errors["kind"] = "Choose performance or developmental coaching."
    keys = {p.key for p in draft.picks} | {DEVELOPMENT_GOAL}
    if form.behaviour_key not in keys:
        errors["behaviour"] = "Choose one behaviour from the list."
    for field, value in (("example", form.example), ("action", form.action)):
        if not value or not value.strip():
            errors[field] = f"Write the {field}: it is what the agent will read."
        elif len(value) > MAX_TEXT:
            errors[field] = f"Keep the {field} under {MAX_TEXT} characters (it has {len(value)})."
    if form.goal and len(form.goal) > MAX_TEXT:
        errors["goal"] = f"Keep the goal under {MAX_TEXT} characters (it has {len(form.goal)})."
    if form.notes and len(form.notes) > MAX_TEXT:
        errors["notes"] = f"Keep the notes under {MAX_TEXT} characters (they have {len(form.notes)})."
    try:
        when = date.fromisoformat(form.by_when or "")
    except ValueError:
        errors["by_when"] = "Pick the date by which the agent will have tried the action."
    else:
        if when < draft.earliest:
            errors["by_when"] = "That date is in the past: pick today or later."
        elif when > draft.latest:
            errors["by_when"] = f"Pick a date within {MAX_DAYS_AHEAD} days, so the follow-up stays close."
    if form.review_method not in REVIEW_METHODS:
        errors["review_method"] = "Choose how the action will be reviewed."
    return errors


def agree_plan(
    session: Session,
    case_id: int,
    actor: Person | None,
    form: PlanForm,
    now: datetime,
    *,
    draft: PlanDraft | None = None,
) -> Case:
    """The team leader logs the conversation; the agent is sent the agreement. `draft`: the case's plan
    draft, when already drawn in this transaction with the case locked."""
    case = load_case(session, case_id, lock=True)
    check_may_plan(actor, case)
    check_awaiting(case)
    assert actor is not None
    if draft is None or draft.case_id != case.id:
        draft = draft_plan(session, case, now)
    errors = _validate(form, draft)
    if errors:
        raise InvalidInput(errors)
    pick = next((p for p in draft.picks if p.key == form.behaviour_key), None)
    case.kind = str(form.kind)
    case.behaviour_key = form.behaviour_key
    case.behaviour_name = pick.name if pick else "Development goal"
    case.example = (form.example or "").strip()
    case.action = (form.action or "").strip()
    case.action_date = date.fromisoformat(str(form.by_when))
    case.review_method = form.review_method
    case.agent_proposed = form.agent_proposed
    case.notes = (form.notes or "").strip() or None
    case.agreed_at = now
    case.agreed_by_id = actor.id
    if case.behaviour_key == DEVELOPMENT_GOAL:
        development.on_agreed(session, case, form.goal, now)
    transition(session, case, Event.AGREE)
    audit(
        session,
        now,
        actor_label(actor),
        "plan_agreed",
        case_id=case.id,
        behaviour=case.behaviour_key,
        kind=case.kind,
        late=now > case.due_at,
        agent_proposed=case.agent_proposed,
    )
    enqueue(
        session, agent_dm_key(case.id), "agent_agreement", now=now, case_id=case.id, person_id=case.agent_id
    )
    refresh_leader_dm(session, case, now, "agreed")
    return case


def actor_label(person: Person) -> str:
    return f"slack:{person.slack_id}" if person.slack_id else f"person:{person.id}"


def check_is_agent(person: Person | None, case: Case) -> None:
    if person is None or person.id != case.agent_id:
        raise refusal(person, case, f"Only {case.agent.display} can answer this agreement.")


def acknowledge(session: Session, case_id: int, actor: Person | None, now: datetime) -> Case:
    case = load_case(session, case_id, lock=True)
    check_is_agent(actor, case)
    assert actor is not None
    if case.state == CaseState.ACKNOWLEDGED:
        return case
    transition(session, case, Event.ACKNOWLEDGE, "This agreement has moved on; nothing was changed.")
    case.acknowledged_at = now
    audit(session, now, actor_label(actor), "agreement_acknowledged", case_id=case.id)
    _refresh_agent_dm(session, case, now, "acknowledged")
    refresh_leader_dm(session, case, now, "acknowledged")
    return case


def request_discussion(session: Session, case_id: int, actor: Person | None, now: datetime) -> Case:
    case = load_case(session, case_id, lock=True)
    check_is_agent(actor, case)
    assert actor is not None
    if case.state == CaseState.DISCUSSION_REQUESTED:
        return case
    transition(session, case, Event.REQUEST_DISCUSSION, "This agreement has moved on; nothing was changed.")
    case.discussion_requested_at = now
    audit(session, now, actor_label(actor), "discussion_requested", case_id=case.id)
    enqueue(
        session,
        f"case:{case.id}:discussion",
        "leader_discussion",
        now=now,
        case_id=case.id,
        person_id=case.leader_id,
    )
    _refresh_agent_dm(session, case, now, "discussion")
    refresh_leader_dm(session, case, now, "discussion")
    return case
