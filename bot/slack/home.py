"""App Home: each role's part, with the button for the next step, inside Slack's 100-block limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import advice, measures, measures_data, wording
from bot.coaching import REVIEW_METHODS
from bot.roles import leader_queue, roles_of
from bot.slack import blocks as bk
from bot.slack import practice
from bot.slack.messages import deadline_line
from bot.team_calendar import calendar_for
from storage import queries
from storage.models import Case, Person, Team

Block = dict[str, Any]
MAX_BLOCKS = 100
LIST_LIMIT = 12


def _e(text: str | None, limit: int = 1500) -> str:
    """A person's or the QA platform's words, escaped, clipped visibly to `limit` characters."""
    return bk.escaped(text, limit)


def _capped(items: list[Any], limit: int = LIST_LIMIT) -> tuple[list[Any], Block | None]:
    if len(items) <= limit:
        return items, None
    return items[:limit], _more(len(items) - limit)


def _more(hidden: int) -> Block:
    return bk.context(f"…and {hidden} more.")


def team_figures(session: Session, team: Team, period_name: str, now: datetime) -> measures.Measures:
    period = measures_data.parse_period(period_name, now)
    return measures_data.compute(
        session, measures_data.Scope(team_ids=(team.id,), label=team.name), period, now
    )


def figures_line(m: measures.Measures) -> str:
    return measures.figures_text(m)


def how_counted() -> Block:
    """The context line under the figures: how they are counted, from the definitions."""
    return bk.context(f"_How these are counted:_ {measures.HOW_COUNTED}")


def leader_part(session: Session, person: Person, teams: list[Team], now: datetime) -> list[Block]:
    tz = person.timezone or teams[0].timezone
    queue = leader_queue(session, person.id, now, shown=LIST_LIMIT)
    today = now.astimezone(calendar_for(teams[0]).tz).date()
    reviews = [c for c in queue.under_way if c.action_date is not None and c.action_date <= today]
    out: list[Block] = [bk.header("Your coaching queue")]
    if not (queue.awaiting or reviews or queue.unacknowledged):
        out.append(bk.section("Nothing waiting on you. :tada:"))
    for case in queue.awaiting:
        marker = ":red_circle: " if now > case.due_at else ""
        out.append(
            bk.section(
                f"{marker}*{_e(case.agent.display)}* — {deadline_line(case, now, tz)}",
                accessory=bk.button("Plan", "open_plan", str(case.id), style="primary"),
            )
        )
    if queue.awaiting_total > len(queue.awaiting):
        out.append(_more(queue.awaiting_total - len(queue.awaiting)))
    shown, more = _capped(reviews)
    for case in shown:
        by = wording.short_date(case.action_date) if case.action_date else "?"
        out.append(
            bk.section(
                f":mag: Review due: *{_e(case.agent.display)}* — {_e(case.behaviour_name)} (by {by})",
                accessory=bk.button("Review", "open_review", str(case.id), style="primary"),
            )
        )
    if more:
        out.append(more)
    shown, more = _capped(queue.unacknowledged)
    for case in shown:
        since = wording.day_phrase(case.agreed_at, now, tz) if case.agreed_at else ""
        out.append(
            bk.section(
                f":hourglass: *{_e(case.agent.display)}* has not acknowledged the action agreed {since}."
            )
        )
    if more:
        out.append(more)
    out += [month_figures(session, team, now) for team in teams]
    out.append(how_counted())
    return out


def month_figures(session: Session, team: Team, now: datetime) -> Block:
    figures = figures_line(team_figures(session, team, "this-month", now))
    return bk.context(f"*{_e(team.name)}* this month: {figures}")


def _agreed_on(case: Case, team: Team) -> str:
    return wording.short_date(calendar_for(team).local(case.agreed_at).date()) if case.agreed_at else "?"


def agent_part(session: Session, person: Person, team: Team, now: datetime) -> list[Block]:
    cases = queries.agent_cases(session, person.id, with_evidence=False)
    current = next((c for c in reversed(cases) if c.state in queries.UNREVIEWED), None)
    out: list[Block] = [bk.header("Your coaching")]
    if current is None:
        out.append(bk.section("No agreement open right now."))
    else:
        review = REVIEW_METHODS.get(current.review_method or "", "")
        by = wording.short_date(current.action_date) if current.action_date else ""
        text = (
            f"*Focus:* {_e(current.behaviour_name)}\n*Action:* {_e(current.action)} — by {by}\n"
            f"*Review:* {_e(review)}"
        )
        if current.state in ("agreed", "discussion_requested"):
            out.append(
                bk.section(
                    text,
                    accessory=bk.button("Acknowledge", "ack_agreement", str(current.id), style="primary"),
                )
            )
        else:
            out.append(bk.section(text + "\n:white_check_mark: Acknowledged"))
    past = [c for c in reversed(cases) if c.state == "closed"]
    shown, more = _capped(past, 5)
    if shown:
        out.append(
            bk.section(
                "*Past conversations*\n"
                + "\n".join(
                    f"• {_agreed_on(c, team)} — {_e(c.behaviour_name, 150)}: {_e(c.action, 350)}"
                    for c in shown
                )
            )
        )
    if more:
        out.append(more)
    return out


def leadership_part(session: Session, teams: list[Team], now: datetime) -> list[Block]:
    period = measures_data.parse_period("last-4-weeks", now)
    by_team = measures_data.compute_by_team(session, teams, period, now)
    figures = [(team, by_team[team.id]) for team in teams]
    # Furthest behind first: lowest hit rate, then most overdue.
    figures.sort(key=lambda tf: (tf[1].hit_rate if tf[1].hit_rate is not None else 2.0, -tf[1].open_overdue))
    out: list[Block] = [bk.header("Your teams, last 4 weeks")]
    shown, more = _capped(figures)
    for team, m in shown:
        out.append(bk.section(f"*{_e(team.name)}* ({_e(team.leader.display)})\n{figures_line(m)}"))
        if m.one_kind_leaders:
            names = ", ".join(m.one_kind_leaders)
            out.append(
                bk.context(
                    f":warning: Only one kind of conversation (performance or developmental) "
                    f"in 8 weeks: {_e(names)}"
                )
            )
    if more:
        out.append(more)
    out.append(how_counted())
    return out


NOT_IN_ORG = (
    "coachloop turns QA scores into coaching conversations. You are not in the org file yet: "
    "ask your QA lead to add you."
)


def home_view(session: Session, person: Person | None, now: datetime) -> dict[str, Any]:
    if person is None:
        return bk.home([bk.section(NOT_IN_ORG)])
    roles = roles_of(session, person)
    blocks: list[Block] = []
    advises = advice.qa_lead_teams(session, person)
    if roles.leads:
        blocks += leader_part(session, person, roles.leads, now)
        blocks += practice.leader_blocks_part(session, person, roles.leads[0])
    if roles.agent_of is not None:
        blocks += agent_part(session, person, roles.agent_of, now)
        blocks += practice.development_part(session, person, roles.agent_of)
    if roles.oversees:
        blocks += leadership_part(session, roles.oversees, now)
        blocks += practice.practice_part(session, roles.oversees, now)
    if advises:
        blocks += practice.qa_lead_part(session, person, now)
    elif roles.oversees:
        blocks += practice.calibration_part(session, person)
    if roles.none and not advises:
        blocks.append(bk.section(NOT_IN_ORG))
    if len(blocks) > MAX_BLOCKS:
        blocks = blocks[: MAX_BLOCKS - 1] + [bk.context("Some items are not shown; use /coach for the rest.")]
    return bk.home(blocks)
