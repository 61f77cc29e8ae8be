"""What /coach shows: your own summary, one agent's coaching picture, or help."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import measures_data, wording
from bot.agent_lookup import MENTION, find_agent
from bot.coaching import may_see_private, ranked_picks, suggested
from bot.errors import NotAllowed, NotFound
from bot.handover import cover_queue, hand_over_case
from bot.review import HAPPENED, NEXT
from bot.roles import leader_queue, may_see_agent, roles_of
from bot.slack import blocks as bk
from bot.slack.home import agent_part, figures_line, month_figures
from bot.slack.messages import deadline_line, handed_over_line
from bot.team_calendar import timezone_of
from storage import queries
from storage.models import Case, Person

Block = dict[str, Any]
HELP = (
    "*/coach* — your own summary: your queue, your agreement, your teams.\n"
    "*/coach @agent* — that agent's open case, backlog (with why each item ranks where it does) and history; "
    "for the agent, their team leader and the team's escalation contacts.\n"
    "*/coach handover <case number> @leader* — hand a case to another team leader "
    "(the team's escalation contacts).\n"
    "*/coach cover @leader @other-leader until YYYY-MM-DD* — holiday cover: the other leader holds "
    "the queue until that day (the team's escalation contacts).\n"
    "*/coach help* — this message."
)
HANDOVER = re.compile(r"^hand-?over\s+#?(\d+)\s+(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)$", re.IGNORECASE)
COVER = re.compile(
    r"^cover\s+(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)\s+(<@[UW][A-Z0-9]+(?:\|[^>]*)?>)\s+until\s+(\S+)$",
    re.IGNORECASE,
)


def _e(text: str | None, limit: int = 1500) -> str:
    """A person's or the QA platform's words, escaped, clipped visibly to `limit` characters."""
    return bk.escaped(text, limit)


def own_summary(session: Session, person: Person | None, now: datetime) -> list[Block]:
    if person is None:
        return [bk.section("You are not in coachloop's org file yet: ask your QA lead to add you.")]
    roles = roles_of(session, person)
    out: list[Block] = []
    if roles.leads:
        queue = leader_queue(session, person.id, now, shown=0)
        out.append(
            bk.section(
                f"*Your queue:* {wording.plural(queue.awaiting_total, 'conversation')} to hold "
                f"({queue.awaiting_late} late), {len(queue.under_way)} agreement(s) under way, "
                f"{len(queue.unacknowledged)} not yet acknowledged."
            )
        )
        out += [month_figures(session, team, now) for team in roles.leads]
    if roles.agent_of is not None:
        out += agent_part(session, person, roles.agent_of, now)[1:]
    if roles.oversees:  # the teams read together, as on the leadership Home
        period = measures_data.parse_period("last-4-weeks", now)
        by_team = measures_data.compute_by_team(session, roles.oversees, period, now)
        out += [
            bk.section(f"*{_e(team.name)}*, last 4 weeks: {figures_line(by_team[team.id])}")
            for team in roles.oversees
        ]
    return out or [bk.section("Nothing to show yet.")]


def agent_picture(session: Session, viewer: Person | None, agent: Person, now: datetime) -> list[Block]:
    team = queries.team_of_agent(session, agent.id)
    if team is None:
        raise NotFound("That person is not an agent in coachloop's org file.")
    if viewer is None or not may_see_agent(session, viewer, agent):
        raise NotAllowed("Only the agent, their team leader and the team's escalation contacts can see this.")
    tz = timezone_of(viewer, team)
    cases = queries.agent_cases(session, agent.id, with_evidence=False)
    out: list[Block] = [bk.header(f"Coaching: {agent.display}")]
    open_case = next((c for c in reversed(cases) if c.state not in ("closed", "waived")), None)
    if open_case is None:
        out.append(bk.section("No open case."))
    else:
        line = f"*Open case #{open_case.id}* ({open_case.kind}, {open_case.state.replace('_', ' ')})"
        line += f" · with {_e(open_case.leader.display)}"
        handed = handed_over_line(open_case, now, tz)
        if handed:
            line += f"\n{handed}"
        if open_case.state == "awaiting_conversation":
            line += f"\n{deadline_line(open_case, now, tz)}"
        else:
            line += f"\nFocus: {_e(open_case.behaviour_name)} — {_e(open_case.action)}"
        out.append(bk.section(line))
    picks = ranked_picks(session, open_case) if open_case else []
    focus = suggested(open_case, picks) if open_case else None
    chosen = open_case.behaviour_key if open_case else None
    chosen = chosen or (focus.key if focus else None)
    backlog = [p for p in picks if not open_case or p.key != chosen]
    if backlog:
        out.append(
            bk.section(
                "*Backlog* (highest leverage first)\n"
                + "\n".join(
                    f"{i}. {_e(p.name, 150)} — {_e(p.reason, 100)}" for i, p in enumerate(backlog[:10], 1)
                )
            )
        )
    history = [c for c in reversed(cases) if c.state in ("closed", "waived")][:10]
    if history:
        lines = [_history_line(c, may_see_private(viewer, c)) for c in history]
        out.append(bk.section("*History*\n" + "\n".join(lines)))
    return out


def _history_line(case: Case, private: bool) -> str:
    """Waive reasons can be HR matters: only the case's leaders and escalation contacts see them."""
    start = f"• #{case.id} {wording.short_date(case.opened_at.date())}: "
    if case.state == "waived":
        return start + (f"waived — {_e(case.waived_reason, 200)}" if private else "waived")
    happened = HAPPENED.get(case.review_happened or "", "?")
    return (
        start
        + f"{_e(case.behaviour_name, 150)}; happened: {happened}; "
        + f"next: {NEXT.get(case.review_next or '', '?')}"
    )


def changes_something(text: str) -> bool:
    """Whether this /coach text hands a case over or sets up cover (a write); everything else only reads."""
    text = (text or "").strip()
    return HANDOVER.match(text) is not None or COVER.match(text) is not None


def answer(session: Session, viewer: Person | None, text: str, now: datetime) -> list[Block]:
    text = (text or "").strip()
    if text.lower() in ("help", "?"):
        return [bk.section(HELP)]
    if not text:
        return bk.capped(own_summary(session, viewer, now))
    if (handing := HANDOVER.match(text)) is not None:
        to = _mentioned(session, handing.group(2))
        return [bk.section(_e(hand_over_case(session, int(handing.group(1)), viewer, to, now)))]
    if (covering := COVER.match(text)) is not None:
        leader, cover = _mentioned(session, covering.group(1)), _mentioned(session, covering.group(2))
        try:
            until = date.fromisoformat(covering.group(3))
        except ValueError:
            raise NotFound(
                f"Give the last day of the cover as YYYY-MM-DD (not {covering.group(3)!r})."
            ) from None
        return [bk.section(_e(cover_queue(session, viewer, leader, cover, until, now)))]
    return bk.capped(agent_picture(session, viewer, find_agent(session, viewer, text), now))


def _mentioned(session: Session, mention: str) -> Person:
    found = MENTION.match(mention)
    person = queries.person_by_slack_id(session, found.group(1)) if found else None
    if person is None:
        raise NotFound(f"{mention} is not in coachloop's org file.")
    return person
