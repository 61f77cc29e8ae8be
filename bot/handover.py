"""Who holds a case: hand-overs by leadership, holiday cover, and what a reorganisation moves.

The holder (`Case.leader_id`) gets the DMs and is the one who plans and reviews. Every hand-over
is recorded on the case (`CaseHandover`) and in the audit log; the old holder's DM is updated to
say who has it now and the new holder gets a DM of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import coaching, wording
from bot.case_state import OPEN, CaseState, Event, transition
from bot.errors import InvalidInput, NotAllowed
from bot.team_calendar import calendar_for
from storage import queries
from storage.models import Case, CaseHandover, LeaderCover, Person, Team, TeamAgent
from storage.outbox import audit, enqueue, enqueue_home, enqueue_refresh, schedule_timer

LEFT_THE_TEAM = "left the team"


def hand_over(session: Session, case: Case, to: Person, now: datetime, actor: str, reason: str) -> str | None:
    """Give the case to `to`; returns a line saying so (None when `to` holds it already)."""
    if case.leader_id == to.id:
        return None
    old = case.leader
    old_key = coaching.leader_dm_key(case)
    session.add(CaseHandover(case_id=case.id, at=now, from_id=old.id, to_id=to.id, by=actor, reason=reason))
    case.leader_id, case.leader = to.id, to
    case.leader_dm_version = (case.leader_dm_version or 0) + 1
    session.flush()
    session.refresh(case, ["handovers"])
    audit(
        session,
        now,
        actor,
        "case_handed_over",
        case_id=case.id,
        from_person=old.id,
        to_person=to.id,
        reason=reason,
    )
    enqueue_refresh(session, old_key, case_id=case.id, what=f"handed-over-{case.leader_dm_version}", now=now)
    enqueue(session, coaching.leader_dm_key(case), "leader_case", now=now, case_id=case.id, person_id=to.id)
    coaching.homes_changed(session, case, now)
    if old.slack_id:
        enqueue_home(session, old.id, now)
    return f"handed over case #{case.id} ({case.agent.display}) from {old.display} to {to.display}"


def _leads_a_team(session: Session, person: Person) -> bool:
    return session.scalar(select(Team.id).where(Team.leader_id == person.id).limit(1)) is not None


def hand_over_case(session: Session, case_id: int, actor: Person | None, to: Person, now: datetime) -> str:
    """An escalation contact of the case's team gives it to another team leader."""
    case = coaching.load_case(session, case_id, lock=True)
    if not coaching.may_defend(actor, case):
        raise NotAllowed(f"Only {case.team.name}'s escalation contacts can hand this case over.")
    assert actor is not None
    if case.state not in OPEN:
        raise InvalidInput(
            {"case": f"Case #{case.id} is {CaseState(case.state).words}: nothing to hand over."}
        )
    if not _leads_a_team(session, to):
        raise InvalidInput({"to": f"{to.display} does not lead a team: hand cases to a team leader."})
    if case.leader_id == to.id:
        return f"Case #{case.id} ({case.agent.display}) is already with {to.display}."
    hand_over(session, case, to, now, coaching.actor_label(actor), f"by {actor.display}")
    return f"Case #{case.id} ({case.agent.display}) is now with {to.display}."


def cover_queue(
    session: Session, actor: Person | None, leader: Person, cover: Person, until: date, now: datetime
) -> str:
    """Holiday cover: `cover` holds `leader`'s open cases and receives their new ones until `until`."""
    teams = list(session.scalars(select(Team).where(Team.leader_id == leader.id).order_by(Team.name)))
    if not teams:
        raise InvalidInput({"leader": f"{leader.display} does not lead a team."})
    if actor is None or not any(any(p.id == actor.id for p in t.escalation_people) for t in teams):
        raise NotAllowed(f"Only the escalation contacts of {leader.display}'s teams can arrange cover.")
    if cover.id == leader.id or not _leads_a_team(session, cover):
        raise InvalidInput(
            {"cover": f"{cover.display} does not lead another team: cover needs a team leader."}
        )
    cal = calendar_for(teams[0])
    if until < cal.local(now).date():
        raise InvalidInput({"until": "That date has passed: pick the last day of the cover."})
    by = coaching.actor_label(actor)
    for old in session.scalars(
        select(LeaderCover).where(LeaderCover.leader_id == leader.id, LeaderCover.ended_at.is_(None))
    ):
        old.ended_at = now
    row = LeaderCover(leader_id=leader.id, cover_id=cover.id, starts_at=now, until=until, by=by)
    session.add(row)
    session.flush()
    schedule_timer(
        session, f"cover:{row.id}:end", "cover_end", case_id=None, due_at=cal.end_of_business(until)
    )
    audit(session, now, by, "cover_started", leader=leader.id, cover=cover.id, until=until.isoformat())
    for case in queries.open_cases_held_by(session, leader.id, [t.id for t in teams]):
        hand_over(session, case, cover, now, by, f"covering for {leader.display} until {until.isoformat()}")
    return f"{cover.display} covers {leader.display}'s queue until {wording.short_date(until)}."


def end_cover(session: Session, timer_key: str, now: datetime) -> None:
    """The cover ends: the leader's open cases held by the cover go back to the leader."""
    cover_id = int(timer_key.split(":")[1])
    row = session.get(LeaderCover, cover_id)
    if row is None or row.ended_at is not None:
        return
    row.ended_at = now
    teams = [t.id for t in session.scalars(select(Team).where(Team.leader_id == row.leader_id))]
    for case in queries.open_cases_held_by(session, row.cover_id, teams):
        hand_over(session, case, row.leader, now, "system", "cover ended")
    audit(session, now, "system", "cover_ended", leader=row.leader_id, cover=row.cover_id)


# --- reorganisations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrgSnapshot:
    """Who led each team and which team each agent was in, before an import."""

    leaders: dict[int, int]
    agent_team: dict[int, int]


def snapshot(session: Session) -> OrgSnapshot:
    leaders = {t.id: t.leader_id for t in session.scalars(select(Team))}
    agents = {row.person_id: row.team_id for row in session.scalars(select(TeamAgent))}
    return OrgSnapshot(leaders, agents)


def reorganise(session: Session, before: OrgSnapshot, now: datetime, actor: str) -> list[str]:
    """After an import: new leaders take over their teams' open cases, agents who moved take their
    awaiting case along, and agents who left have their open cases closed as waived."""
    lines: list[str] = []
    session.expire_all()
    after = snapshot(session)
    for team_id, old_leader in sorted(before.leaders.items()):
        team = session.get(Team, team_id)
        if team is None or team.leader_id == old_leader:
            continue
        holder = coaching.holder_for(session, team)
        for case in queries.open_cases_held_by(session, old_leader, [team.id]):
            line = hand_over(session, case, holder, now, actor, "new team leader")
            if line:
                lines.append(line)
    for agent_id, old_team in sorted(before.agent_team.items()):
        new_team = after.agent_team.get(agent_id)
        if new_team == old_team:
            continue
        for case in queries.open_cases_of_agent(session, agent_id):
            if new_team is None:
                lines.append(_left(session, case, now, actor))
            elif case.state == CaseState.AWAITING:
                team = session.get(Team, new_team)
                assert team is not None
                case.team_id, case.team = team.id, team
                lines.append(f"moved case #{case.id} ({case.agent.display}) to team {team.name}")
                audit(session, now, actor, "case_moved_team", case_id=case.id, team=team.id)
                line = hand_over(
                    session, case, coaching.holder_for(session, team), now, actor, f"moved to {team.name}"
                )
                if line:
                    lines.append(line)
    return lines


def _left(session: Session, case: Case, now: datetime, actor: str) -> str:
    case.waived_reason, case.waived_at = LEFT_THE_TEAM, now
    transition(session, case, Event.LEAVE)
    audit(session, now, actor, "case_waived", case_id=case.id, reason=LEFT_THE_TEAM)
    coaching.refresh_leader_dm(session, case, now, "left")
    return f"waived case #{case.id} ({case.agent.display}): {LEFT_THE_TEAM}"
