"""Protected coaching time: each leader's weekly coaching blocks, what waits for them, and whether they held.

A block is written "tue 14:00-15:00" in the team's time zone. A block that passes with conversations
waiting at its start and none logged during it is *squeezed out*: the number leadership defends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.calendar import WorkCalendar
from bot.errors import InvalidInput, NotAllowed, NotFound
from bot.team_calendar import calendar_for
from storage.models import Case, CoachingBlockRun, LeaderBlocks, Person, Team
from storage.outbox import audit, enqueue, enqueue_home, insert_once

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ICAL_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
PATTERN = re.compile(r"^\s*([A-Za-z]{3})[a-z]*\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
MAX_BLOCKS = 10
LOOKBACK = timedelta(days=1)  # blocks that started while no sweep ran (an outage) are still counted
HELD, SQUEEZED, CLEAR, OPEN = "held", "squeezed", "clear", "open"


@dataclass(frozen=True, order=True)
class BlockSpec:
    weekday: int
    start: time
    end: time

    def text(self) -> str:
        return f"{DAYS[self.weekday]} {self.start:%H:%M}-{self.end:%H:%M}"


def parse_block(raw: str) -> BlockSpec:
    """One block such as "tue 14:00-15:00"; ValueError says what is wrong and how to write it."""
    m = PATTERN.match(raw or "")
    if not m:
        raise ValueError(f'{raw!r} is not a block: write a weekday and two times, e.g. "tue 14:00-15:00"')
    day, start, end = m.group(1).lower(), m.group(2), m.group(3)
    if day not in DAYS:
        raise ValueError(f"{raw!r}: {day!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")
    try:
        t0, t1 = time.fromisoformat(start.zfill(5)), time.fromisoformat(end.zfill(5))
    except ValueError:
        raise ValueError(f"{raw!r}: times must be HH:MM, e.g. 14:00") from None
    if t0 >= t1:
        raise ValueError(f"{raw!r}: the block must end after it starts")
    return BlockSpec(DAYS.index(day), t0, t1)


def parse_blocks(raws: list[str]) -> list[BlockSpec]:
    specs = sorted({parse_block(r) for r in raws})
    if len(specs) > MAX_BLOCKS:
        raise ValueError(f"at most {MAX_BLOCKS} blocks a week (there are {len(specs)})")
    for a, b in zip(specs, specs[1:], strict=False):
        if a.weekday == b.weekday and b.start < a.end:
            raise ValueError(f'"{a.text()}" and "{b.text()}" overlap')
    return specs


def parse_lines(text: str) -> list[BlockSpec]:
    """The blocks a leader typed, one per line or comma-separated."""
    return parse_blocks([p for p in re.split(r"[\n,;]+", text or "") if p.strip()])


@dataclass(frozen=True)
class Occurrence:
    starts_at: datetime
    ends_at: datetime


def occurrences(
    specs: list[BlockSpec], cal: WorkCalendar, start: datetime, end: datetime
) -> list[Occurrence]:
    """Blocks starting in [start, end), on the team's working days only (a holiday has no block)."""
    out = []
    day = cal.local(start).date() - timedelta(days=1)
    last = cal.local(end).date()
    while day <= last:
        if cal.is_working_day(day):
            for spec in specs:
                if spec.weekday == day.weekday():
                    occ = Occurrence(cal.at_local(day, spec.start), cal.at_local(day, spec.end))
                    if start <= occ.starts_at < end:
                        out.append(occ)
        day += timedelta(days=1)
    return sorted(out, key=lambda o: o.starts_at)


# --- whose blocks -----------------------------------------------------------------------------


def led_team(session: Session, leader: Person) -> Team | None:
    return session.scalar(select(Team).where(Team.leader_id == leader.id).order_by(Team.name).limit(1))


def blocks_of(session: Session, leader: Person, team: Team | None = None) -> list[BlockSpec]:
    """The leader's own blocks as edited on Home, else as the org file gives them, else the team's."""
    own = session.get(LeaderBlocks, leader.id)
    if own is not None and own.home_blocks is not None:
        return parse_blocks(own.home_blocks)
    if own is not None and own.org_blocks is not None:
        return parse_blocks(own.org_blocks)
    team = team or led_team(session, leader)
    return parse_blocks(team.coaching_blocks or []) if team is not None else []


def set_org_blocks(session: Session, leader: Person, raws: list[str] | None) -> bool:
    """What the org file says for this leader (None: nothing of their own). True when it changed."""
    own = session.get(LeaderBlocks, leader.id)
    if own is None:
        if raws is None:
            return False
        own = LeaderBlocks(person_id=leader.id)
        session.add(own)
    if own.org_blocks == raws:
        return False
    own.org_blocks = raws
    return True


def save_home_blocks(session: Session, leader: Person, text: str, now: datetime) -> list[BlockSpec]:
    """The leader edits their blocks on Home; an empty text goes back to the org file's blocks."""
    try:
        specs = parse_lines(text)
    except ValueError as exc:
        raise InvalidInput({"blocks": str(exc)}) from None
    if led_team(session, leader) is None:
        raise NotAllowed("Only a team leader has coaching blocks.")
    own = session.get(LeaderBlocks, leader.id) or LeaderBlocks(person_id=leader.id)
    session.add(own)
    own.home_blocks = [s.text() for s in specs] if specs else None
    own.home_updated_at = now
    audit(session, now, f"person:{leader.id}", "coaching_blocks_edited", blocks=own.home_blocks)
    enqueue_home(session, leader.id, now)
    return specs


def next_block(session: Session, case: Case, now: datetime) -> Occurrence | None:
    """The leader's first block from now that starts before the case's deadline."""
    specs = blocks_of(session, case.leader, case.team)
    if not specs:
        return None
    found = occurrences(specs, calendar_for(case.team), now, case.due_at)
    return next((o for o in found if o.ends_at > now), None)


# --- the calendar file ------------------------------------------------------------------------


def calendar_file(specs: list[BlockSpec], cal: WorkCalendar, leader: Person, now: datetime) -> bytes:
    """An RFC 5545 calendar: one weekly recurring event per block, in the team's time zone."""
    tz = ZoneInfo(cal.timezone)
    ical = icalendar.Calendar()
    ical.add("prodid", "-//coachloop//coaching blocks//EN")
    ical.add("version", "2.0")
    ical.add("x-wr-calname", "Coaching blocks")
    today = now.astimezone(tz).date()
    for spec in specs:
        first = today + timedelta(days=(spec.weekday - today.weekday()) % 7)
        event = icalendar.Event()
        event.add("uid", f"coachloop-block-{leader.id}-{spec.weekday}-{spec.start:%H%M}@coachloop")
        event.add("dtstamp", now)
        event.add("summary", "Coaching block (protected)")
        event.add("description", "Time to hold the coaching conversations waiting for you in coachloop.")
        event.add("dtstart", datetime.combine(first, spec.start, tzinfo=tz))
        event.add("dtend", datetime.combine(first, spec.end, tzinfo=tz))
        event.add("rrule", {"freq": "weekly", "byday": ICAL_DAYS[spec.weekday]})
        ical.add_component(event)
    ical.add_missing_timezones()
    return ical.to_ical()


# --- the sweep ------------------------------------------------------------------------------


def _waiting_at(session: Session, leader_id: int, at: datetime) -> list[Case]:
    """Cases the leader had waiting at `at`: opened before it, not coached or waived before it."""
    return list(
        session.scalars(
            select(Case).where(
                Case.leader_id == leader_id,
                Case.opened_at < at,
                or_(Case.agreed_at.is_(None), Case.agreed_at >= at),
                or_(Case.waived_at.is_(None), Case.waived_at >= at),
            )
        )
    )


def _held_during(session: Session, leader_id: int, start: datetime, end: datetime) -> int:
    """Conversations the leader logged in the block: plans agreed or reviews held."""
    agreed = select(Case.id).where(
        Case.agreed_by_id == leader_id, Case.agreed_at >= start, Case.agreed_at < end
    )
    reviewed = select(Case.id).where(
        Case.leader_id == leader_id, Case.reviewed_at >= start, Case.reviewed_at < end
    )
    return len(set(session.scalars(agreed)) | set(session.scalars(reviewed)))


def block_key(leader_id: int, starts_at: datetime) -> str:
    return f"block:{leader_id}:{starts_at:%Y%m%dT%H%M}"


def waiting_cases(session: Session, leader_id: int) -> list[Case]:
    """Conversations waiting now, most urgent first (earliest deadline)."""
    return list(
        session.scalars(
            select(Case)
            .where(Case.leader_id == leader_id, Case.state == "awaiting_conversation")
            .order_by(Case.due_at, Case.id)
        )
    )


def sweep(session: Session, now: datetime) -> None:
    """Open each block that has started (DM the leader what waits), and settle each that has ended."""
    for team in session.scalars(select(Team).order_by(Team.id)):
        leader = team.leader
        if led_team(session, leader) is not team:
            continue  # a leader of several teams: their blocks follow their first team's calendar
        specs = blocks_of(session, leader, team)
        if not specs:
            continue
        cal = calendar_for(team)
        for occ in occurrences(specs, cal, now - LOOKBACK, now + timedelta(seconds=1)):
            run = session.scalar(
                select(CoachingBlockRun).where(
                    CoachingBlockRun.leader_id == leader.id, CoachingBlockRun.starts_at == occ.starts_at
                )
            )
            if run is None:
                waiting = _waiting_at(session, leader.id, occ.starts_at)
                run = CoachingBlockRun(
                    leader_id=leader.id,
                    starts_at=occ.starts_at,
                    ends_at=occ.ends_at,
                    waiting=len(waiting),
                    held=0,
                    status=OPEN,
                )
                if not insert_once(session, run):
                    continue  # another sweep opened this block at the same moment
                if waiting and now < occ.ends_at:
                    enqueue(
                        session,
                        block_key(leader.id, occ.starts_at),
                        "block_start",
                        now=now,
                        person_id=leader.id,
                        payload={"run_id": run.id},
                    )
        overdue = select(CoachingBlockRun).where(
            CoachingBlockRun.leader_id == leader.id,
            CoachingBlockRun.status == OPEN,
            CoachingBlockRun.ends_at <= now,
        )
        for run in list(session.scalars(overdue)):
            _settle(session, run, team, now)


def _settle(session: Session, run: CoachingBlockRun, team: Team, now: datetime) -> None:
    """A block that has ended: held, squeezed out, or clear (nothing was waiting)."""
    run.held = _held_during(session, run.leader_id, run.starts_at, run.ends_at)
    run.status = HELD if run.held else (SQUEEZED if run.waiting else CLEAR)
    run.settled_at = now
    if run.status == SQUEEZED:
        audit(
            session,
            now,
            "sweep",
            "coaching_block_squeezed",
            leader_id=run.leader_id,
            starts_at=run.starts_at.isoformat(),
            waiting=run.waiting,
        )
        for person in team.escalation_people:
            if person.slack_id:
                enqueue_home(session, person.id, now)


def request_calendar_file(session: Session, leader: Person | None, now: datetime) -> str:
    """Queue the .ics of the leader's blocks to their DM (once a day per set of blocks); says what follows."""
    team = led_team(session, leader) if leader is not None else None
    if leader is None or team is None:
        raise NotAllowed("Only a team leader has coaching blocks to add to a calendar.")
    specs = blocks_of(session, leader, team)
    if not specs:
        raise NotFound("You have no coaching blocks yet: add them from your App Home (Edit my blocks).")
    day = calendar_for(team).local(now).date()
    key = f"blocks:{leader.id}:ics:{day.isoformat()}:{'|'.join(s.text() for s in specs)}"
    queued = enqueue(session, key[:200], "block_ics", now=now, person_id=leader.id)
    if queued is None:
        return "The calendar file of your coaching blocks is already in your DM with coachloop."
    return "The calendar file of your coaching blocks is on its way to your DM with coachloop."
