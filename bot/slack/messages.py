"""The bot's Slack messages, rendered from the case as it is at send time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bot import wording
from bot.coaching import REVIEW_METHODS, ranked_picks, suggested
from bot.coaching_blocks import Occurrence, next_block
from bot.review import HAPPENED, NEXT
from bot.slack import blocks as bk
from bot.team_calendar import calendar_for, timezone_of
from storage.models import Case, Evaluation, OutboxMessage, Person

Block = dict[str, Any]


@dataclass(frozen=True)
class Message:
    text: str
    blocks: list[Block]
    metadata: dict[str, Any] = field(default_factory=dict)


def _e(text: str | None, limit: int = 1500) -> str:
    """A person's or the QA platform's words, escaped, clipped visibly to `limit` characters."""
    return bk.escaped(text, limit)


def score_line(ev: Evaluation, now: datetime, tz: str) -> str:
    contact = ""
    if ev.contact_id:
        kind = _e(ev.contact_channel or "contact")
        contact = f" · {kind} {bk.link(ev.contact_url, ev.contact_id)}"
    card = f" on *{_e(ev.scorecard_name)}*" if ev.scorecard_name else ""
    return f"*{ev.score:g}/{ev.max_score:g}*{card}{contact} · landed {wording.when(ev.landed_at, now, tz)}"


def deadline_text(case: Case, tz: str) -> str:
    """The deadline in the reader's zone, date and time together; the team's zone named when it differs."""
    cal = calendar_for(case.team)
    shown = wording.date_and_time(case.due_at, tz)
    if tz != cal.timezone:
        shown += f" ({wording.date_and_time(case.due_at, cal.timezone)} {cal.timezone})"
    return shown


def deadline_line(case: Case, now: datetime, tz: str) -> str:
    cal = calendar_for(case.team)
    due_text = deadline_text(case, tz)
    if case.state != "awaiting_conversation":
        return f"Deadline was {due_text}"
    if now > case.due_at:
        late = cal.working_days_late(now, case.due_at)
        return f":red_circle: *Late* — {wording.plural(late, 'working day')} past {due_text}"
    left = cal.working_days_left(now, case.due_at)
    if left == 0:
        return f":large_orange_circle: *Due today*, {wording.clock_time(case.due_at, tz)}"
    return f"By *{due_text}* — {wording.plural(left, 'working day')} left"


def _status_line(case: Case, tz: str, now: datetime) -> str | None:
    agent = _e(case.agent.display)
    if case.state == "waived":
        return f":white_circle: *Waived*: {_e(case.waived_reason)}"
    if case.agreed_at is None:
        return None
    late = " (late)" if case.late else ""
    agreed = f":white_check_mark: *Coached*{late} {wording.day_phrase(case.agreed_at, now, tz)}: "
    agreed += f"{_e(case.behaviour_name)} — {_e(case.action)}"
    if case.action_date:
        agreed += f" by {wording.short_date(case.action_date)}"
    follow = {
        "agreed": f"Waiting for {agent} to acknowledge.",
        "acknowledged": f"{agent} acknowledged the action.",
        "discussion_requested": f":speech_balloon: {agent} asked to discuss the action.",
        "closed": f"Follow-up review held. Did it happen? {HAPPENED.get(case.review_happened or '', '?')}. "
        f"Next: {NEXT.get(case.review_next or '', '?')}.",
    }.get(case.state, "")
    return f"{agreed}\n{follow}"


def handed_over_line(case: Case, now: datetime, tz: str) -> str | None:
    if not case.handovers:
        return None
    last = case.handovers[-1]
    return (
        f":arrows_counterclockwise: Handed over from {_e(last.from_person.display)} to "
        f"{_e(last.to_person.display)} {wording.day_phrase(last.at, now, tz)} ({_e(last.reason)})"
    )


def handed_away(case: Case, reader: Person, now: datetime) -> Message:
    """The DM of someone who held the case before: it says who has it now, with no buttons."""
    tz = timezone_of(reader, case.team)
    agent = case.agent.display
    text = f"{agent}'s coaching is now with {case.leader.display}."
    last = case.handovers[-1] if case.handovers else None
    why = f" ({_e(last.reason)}, {wording.day_phrase(last.at, now, tz)})" if last else ""
    return Message(
        text,
        [
            bk.header(f"Coaching: {agent}"),
            bk.section(f":arrow_right: {_e(text)}{why}"),
            bk.context(f"Case #{case.id} · team {_e(case.team.name)}"),
        ],
    )


def block_line(occ: Occurrence, tz: str) -> str:
    """'Tue 1 Dec, 14:00 — your coaching block' in the reader's zone."""
    local = occ.starts_at.astimezone(ZoneInfo(tz))
    when = f"{wording.short_date(local.date())}, {wording.clock_time(occ.starts_at, tz)}"
    return f"{when} — your coaching block"


def leader_case(session: Session, case: Case, now: datetime, reader: Person | None = None) -> Message:
    if reader is not None and reader.id != case.leader_id:
        return handed_away(case, reader, now)
    tz = timezone_of(reader or case.leader, case.team)
    agent = case.agent.display
    picks = ranked_picks(session, case)
    pick = suggested(case, picks)
    evs = case.evaluations
    out: list[Block] = [bk.header(f"Coaching: {agent}")]
    lines = [score_line(ev, now, tz) for ev in evs[-5:]]
    if len(evs) > 5:
        lines.insert(0, f"_{len(evs) - 5} earlier scores not shown_")
    if evs:
        noun = "score" if len(evs) == 1 else f"{len(evs)} scores"
        out.append(bk.section(f"*{_e(agent)}* — {noun} for one conversation:\n" + "\n".join(lines)))
    else:
        out.append(
            bk.section(
                f"*{_e(agent)}* — the next conversation, after the review of case #{case.previous_case_id}."
            )
        )
    out.append(bk.section(deadline_line(case, now, tz)))
    status = _status_line(case, tz, now)
    if case.state == "awaiting_conversation":
        block = next_block(session, case, now)
        if block is not None:
            out.append(bk.section(f":calendar: *{block_line(block, tz)}*"))
        if pick is not None:
            out.append(bk.section(f"*Suggested focus:* {_e(pick.name)}\n_Why:_ {_e(pick.reason)}"))
        else:
            out.append(bk.section("*Suggested focus:* a developmental conversation — no item was missed."))
        buttons = [
            bk.button("Plan the conversation", "open_plan", str(case.id), style="primary"),
            bk.button("Waive", "waive_case", str(case.id)),
        ]
        if block is not None:
            buttons.append(bk.button("Add my blocks to my calendar", "block_ics", "ics"))
        out.append(bk.actions(*buttons, block_id=f"case_{case.id}"))
    elif status:
        out.append(bk.section(status))
    handed = handed_over_line(case, now, tz)
    if handed:
        out.append(bk.section(handed))
    out.append(bk.context(f"Case #{case.id} · {case.kind} coaching · team {_e(case.team.name)}"))
    text = f"Coaching due for {agent}: {deadline_line(case, now, tz).replace('*', '')}"
    return Message(text, out)


def agent_agreement(case: Case, now: datetime) -> Message:
    tz = timezone_of(case.agent, case.team)
    leader = case.leader.display
    review = REVIEW_METHODS.get(case.review_method or "", case.review_method or "")
    by = wording.short_date(case.action_date) if case.action_date else "the agreed date"
    out: list[Block] = [
        bk.header("Your coaching agreement"),
        bk.section(f"From your conversation with *{_e(leader)}*."),
        bk.section(f"*1. The focus:* {_e(case.behaviour_name, 200)}\n{_e(case.example, 2750)}"),
        bk.section(f"*2. What you agreed to try, by {by}:*\n{_e(case.action, 2900)}"),
        bk.section(f"*3. How it will be reviewed:* {_e(review)}"),
    ]
    if case.state == "agreed":
        out.append(
            bk.actions(
                bk.button("Acknowledge", "ack_agreement", str(case.id), style="primary"),
                bk.button("I'd like to discuss this", "discuss_agreement", str(case.id)),
                block_id=f"agreement_{case.id}",
            )
        )
    elif case.state == "discussion_requested":
        out.append(bk.section(f":speech_balloon: You asked to discuss this; {_e(leader)} has been told."))
        out.append(
            bk.actions(
                bk.button("Acknowledge", "ack_agreement", str(case.id), style="primary"),
                block_id=f"agreement_{case.id}",
            )
        )
    elif case.acknowledged_at is not None:
        when = wording.day_phrase(case.acknowledged_at, now, tz)
        out.append(bk.section(f":white_check_mark: You acknowledged this {when}."))
    text = f"Your coaching agreement with {leader}: {case.action or ''} by {by}"
    return Message(text, out)


def leader_discussion(case: Case, now: datetime) -> Message:
    agent = case.agent.display
    text = f"{agent} would like to discuss the agreed action before trying it."
    out = [
        bk.section(
            f":speech_balloon: *{_e(agent)}* would like to discuss the agreed action "
            f"(_{_e(case.behaviour_name)}_: {_e(case.action)}). Talk it through before the review."
        ),
        bk.context(f"Case #{case.id}"),
    ]
    return Message(text, out)


def message_metadata(row: OutboxMessage) -> dict[str, Any]:
    """The metadata a sent message carries: the dedupe key it was sent (or updated) under, so that a
    resend after a crash finds it in the conversation's history instead of posting it twice."""
    return {
        "event_type": "coachloop_message",
        "event_payload": {"dedupe_key": row.updates_key or row.dedupe_key, "case_id": row.case_id or 0},
    }


def leader_reminder(case: Case, now: datetime, which: str, payload_by: str = "") -> Message:
    tz = timezone_of(case.leader, case.team)
    agent = case.agent.display
    if which == "manual":
        late = calendar_for(case.team).working_days_late(now, case.due_at)
        lateness = f" ({wording.plural(late, 'working day')} late)" if late else ""
        if case.state == "awaiting_conversation":
            head = f"{payload_by} asked you to coach {agent}{lateness}."
        else:
            head = f"{payload_by} asked you to hold the follow-up review with {agent}."
    elif which == "last_day":
        head = f"Last day to coach {agent}: due today, {wording.clock_time(case.due_at, tz)}."
    else:
        left = calendar_for(case.team).working_days_left(now, case.due_at)
        head = f"Reminder: coach {agent} — {wording.plural(left, 'working day')} left."
    button = (
        bk.button("Plan the conversation", "open_plan", str(case.id), style="primary")
        if case.state == "awaiting_conversation"
        else bk.button("Run the review", "open_review", str(case.id), style="primary")
    )
    return Message(
        head,
        [
            bk.section(f":alarm_clock: {_e(head)}"),
            bk.actions(button, block_id=f"remind_{case.id}"),
            bk.context(f"Case #{case.id}"),
        ],
    )


def _lateness(late: int) -> str:
    return "passed today" if late == 0 else f"{wording.plural(late, 'working day')} late"


def escalation(
    session: Session, payload: dict[str, Any], now: datetime, reader: Person | None = None
) -> Message:
    """Cases past their deadline (or review date), each with the deadline in the reader's zone."""
    cases = [c for c in (session.get(Case, i) for i in payload.get("case_ids", [])) if c is not None]
    review = payload.get("reason") == "review"
    if review:
        title = f"{wording.plural(len(cases), 'follow-up review')} overdue"
    else:
        title = f"{wording.plural(len(cases), 'coaching conversation')} past the deadline"
    out: list[Block] = [bk.header(title)]
    shown = cases[:15]
    for case in shown:
        cal = calendar_for(case.team)
        if review and case.action_date:
            late = cal.working_days_between(case.action_date, cal.local(now).date())
            detail = f"review was due {wording.short_date(case.action_date)} · {_lateness(late)}"
        else:
            landed = min((ev.landed_at for ev in case.evaluations), default=case.opened_at)
            tz = timezone_of(reader, case.team) if reader is not None else cal.timezone
            late = cal.working_days_late(now, case.due_at) if now > case.due_at else 0
            landed_on = wording.short_date(cal.local(landed).date())
            detail = f"score landed {landed_on} · deadline {deadline_text(case, tz)} · {_lateness(late)}"
        out.append(
            bk.section(
                f"*{_e(case.agent.display)}* (team {_e(case.team.name)}, "
                f"leader {_e(case.leader.display)})\n{detail}"
            )
        )
        out.append(
            bk.actions(
                bk.button(f"Remind {case.leader.display}"[:75], "remind_leader", str(case.id)),
                *([] if review else [bk.button("Waive", "waive_case", str(case.id))]),
                block_id=f"esc_{case.id}",
            )
        )
    if len(cases) > len(shown):
        out.append(bk.context(f"…and {len(cases) - len(shown)} more."))
    names = ", ".join(c.agent.display for c in cases)
    return Message(f"{title}: {names}", out)


def agent_ack_reminder(case: Case) -> Message:
    text = f"Reminder: please acknowledge the action you agreed with {case.leader.display}."
    return Message(
        text,
        [
            bk.section(f":wave: {_e(text)}\n_{_e(case.behaviour_name)}_: {_e(case.action)}"),
            bk.actions(
                bk.button("Acknowledge", "ack_agreement", str(case.id), style="primary"),
                bk.button("I'd like to discuss this", "discuss_agreement", str(case.id)),
                block_id=f"ackrem_{case.id}",
            ),
        ],
    )


def leader_ack_overdue(case: Case) -> Message:
    text = f"{case.agent.display} has not acknowledged the agreed action after 2 working days."
    return Message(
        text, [bk.section(f":hourglass: {_e(text)} A quick word may help."), bk.context(f"Case #{case.id}")]
    )


def review_due(case: Case, now: datetime, chase: bool) -> Message:
    agent = case.agent.display
    text = (
        f"The follow-up review with {agent} is overdue."
        if chase
        else f"Today: follow-up review with {agent}."
    )
    return Message(
        text,
        [
            bk.section(f":mag: *{_e(text)}*\nAgreed: _{_e(case.behaviour_name)}_ — {_e(case.action)}"),
            bk.actions(
                bk.button("Run the review", "open_review", str(case.id), style="primary"),
                block_id=f"review_{case.id}",
            ),
            bk.context(f"Case #{case.id}"),
        ],
    )


def leader_evidence_moved(case: Case, payload: dict[str, Any]) -> Message:
    contact = payload.get("contact_id") or "a contact"
    text = (
        f"A QA correction moved the evaluation of {contact} away from {case.agent.display}: "
        f"your agreed conversation used it as evidence."
    )
    return Message(
        text,
        [
            bk.section(f":information_source: {_e(text)} The agreement stands; mention it at the review."),
            bk.context(f"Case #{case.id}"),
        ],
    )


def admin_alert(payload: dict[str, Any], case: Case | None) -> Message:
    subject = f" for case #{case.id} ({case.agent.display})" if case else ""
    text = f"A Slack message could not be delivered{subject}: {payload.get('error')}"
    return Message(
        text,
        [
            bk.section(f":warning: {_e(text)}"),
            bk.context(f"message {payload.get('kind')} · {_e(str(payload.get('failed_key')))}"),
        ],
    )


def connector_alert(payload: dict[str, Any]) -> Message:
    text = (
        f"Scores from {payload.get('connector')} are not coming in: {payload.get('scope')} failed "
        f"{payload.get('failures')} polls in a row. Last error: {payload.get('error')}"
    )
    return Message(
        text,
        [
            bk.section(f":warning: {_e(text)}"),
            bk.context("coachloop keeps trying; nothing is skipped once it gets through."),
        ],
    )
