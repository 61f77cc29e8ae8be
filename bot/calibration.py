"""Calibration on coaching itself: each week a random sample of agreed plans per team goes to the team's
QA leads and escalation contacts, who rate each plan against the structure of a good one."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from hashlib import sha256

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import advice, coaching
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.team_calendar import calendar_for
from storage.models import CalibrationRating, CalibrationSample, Case, Person, Team, Timer
from storage.outbox import audit, enqueue, enqueue_home, insert_once

CHECKS = {  # the parts of measures.STRUCTURE, in words
    "one_behaviour": "One behaviour (not several)",
    "specific_example": "A specific example: the contact, the moment, what happened",
    "dated_action": "An action with a date and a review method",
    "agents_action": "The action was the agent's own",
}
MAX_SUGGESTION = 1000


@dataclass(frozen=True)
class RatingForm:
    met: frozenset[str]
    suggestion: str | None = None


def week_of(day: date) -> date:
    """The Monday of the week `day` falls in."""
    return day - timedelta(days=day.weekday())


def raters(session: Session, team: Team) -> list[Person]:
    """The team's QA leads and escalation contacts."""
    people = {p.id: p for p in [*advice.qa_leads_of(session, team.id), *team.escalation_people]}
    return sorted(people.values(), key=lambda p: p.email)


def may_rate(session: Session, person: Person | None, team: Team) -> bool:
    return person is not None and any(p.id == person.id for p in raters(session, team))


def _week_bounds(team: Team, monday: date) -> tuple[datetime, datetime]:
    cal = calendar_for(team)
    return cal.at_local(monday, time(0)), cal.at_local(monday + timedelta(weeks=1), time(0))


def sample(
    session: Session, now: datetime, rng: random.Random | None = None, *, week: date | None = None
) -> list[CalibrationSample]:
    """Draw last week's sample (or the week starting `week`) for every team not drawn yet: once per team
    and week, by a marker row."""
    rng = rng or random.Random()
    drawn: list[CalibrationSample] = []
    for team in session.scalars(select(Team).order_by(Team.id)):
        cal = calendar_for(team)
        monday = week or week_of(cal.local(now).date()) - timedelta(weeks=1)
        marker = f"calibration:{team.id}:{monday.isoformat()}"
        if session.scalar(select(Timer.id).where(Timer.dedupe_key == marker)) is not None:
            continue
        claim = Timer(dedupe_key=marker, kind="calibration", due_at=now, status="done", fired_at=now)
        if not insert_once(session, claim):
            continue  # another sweep drew this team's week
        start, end = _week_bounds(team, monday)
        agreed = list(
            session.scalars(
                select(Case)
                .where(Case.team_id == team.id, Case.agreed_at >= start, Case.agreed_at < end)
                .order_by(Case.id)
            )
        )
        chosen = rng.sample(agreed, min(team.calibration_size, len(agreed)))
        for case in sorted(chosen, key=lambda c: c.id):
            row = CalibrationSample(case_id=case.id, team_id=team.id, week_of=monday, sampled_at=now)
            session.add(row)
            drawn.append(row)
        session.flush()
        if not chosen:
            continue
        audit(
            session,
            now,
            "sweep",
            "calibration_sampled",
            team=team.name,
            week_of=monday.isoformat(),
            cases=[c.id for c in chosen],
        )
        for person in raters(session, team):
            if not person.slack_id:
                continue
            enqueue(
                session,
                f"{marker}:{person.id}",
                "calibration_request",
                now=now,
                due_at=cal.next_opening(now),
                person_id=person.id,
                payload={"team_id": team.id, "week_of": monday.isoformat()},
            )
            enqueue_home(session, person.id, now)
    return drawn


def load_sample(session: Session, sample_id: int) -> CalibrationSample:
    found = session.get(CalibrationSample, sample_id)
    if found is None:
        raise NotFound(f"Calibration sample #{sample_id} does not exist.")
    return found


def check_may_rate(session: Session, person: Person | None, sample_row: CalibrationSample) -> None:
    team = sample_row.case.team
    if not may_rate(session, person, team):
        raise NotAllowed(f"Only team {team.name}'s QA leads and escalation contacts rate its plans.")


def rate(
    session: Session, sample_id: int, rater: Person | None, form: RatingForm, now: datetime
) -> CalibrationRating:
    """Record (or correct) one rater's reading; a suggestion goes to the leader."""
    row = load_sample(session, sample_id)
    check_may_rate(session, rater, row)
    assert rater is not None
    unknown = set(form.met) - set(CHECKS)
    suggestion = (form.suggestion or "").strip()
    if unknown:
        raise InvalidInput({"structure": "Tick only the parts listed."})
    if len(suggestion) > MAX_SUGGESTION:
        raise InvalidInput({"suggestion": f"Keep the suggestion under {MAX_SUGGESTION} characters."})
    rating = session.scalar(
        select(CalibrationRating).where(
            CalibrationRating.sample_id == row.id, CalibrationRating.rater_id == rater.id
        )
    )
    if rating is None:
        rating = CalibrationRating(sample_id=row.id, rater_id=rater.id)
        session.add(rating)
    for check in CHECKS:
        setattr(rating, check, check in form.met)
    rating.suggestion = suggestion or None
    rating.rated_at = now
    session.flush()
    audit(
        session,
        now,
        coaching.actor_label(rater),
        "plan_rated",
        case_id=row.case_id,
        met=sorted(form.met),
        suggestion=bool(suggestion),
    )
    if suggestion:
        enqueue(
            session,
            f"calibration:rating:{rating.id}:suggestion:{sha256(suggestion.encode()).hexdigest()[:16]}",
            "calibration_suggestion",
            now=now,
            due_at=calendar_for(row.case.team).next_opening(now),
            case_id=row.case_id,
            person_id=row.case.leader_id,
            payload={"rating_id": rating.id},
        )
    enqueue_home(session, rater.id, now)
    return rating


def samples_for(session: Session, person: Person, week: date | None = None) -> list[CalibrationSample]:
    """The latest week's samples of every team this person rates for."""
    teams = [t for t in session.scalars(select(Team).order_by(Team.name)) if may_rate(session, person, t)]
    if not teams:
        return []
    query = select(CalibrationSample).where(CalibrationSample.team_id.in_([t.id for t in teams]))
    if week is None:
        week = session.scalar(
            select(CalibrationSample.week_of)
            .where(CalibrationSample.team_id.in_([t.id for t in teams]))
            .order_by(CalibrationSample.week_of.desc())
            .limit(1)
        )
        if week is None:
            return []
    return list(
        session.scalars(query.where(CalibrationSample.week_of == week).order_by(CalibrationSample.id))
    )


def rating_by(row: CalibrationSample, person: Person) -> CalibrationRating | None:
    return next((r for r in row.ratings if r.rater_id == person.id), None)
