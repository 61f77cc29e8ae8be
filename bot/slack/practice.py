"""Slack surfaces of the practice around the conversation: coaching blocks, QA-lead advice, calibration
and the agent's development prep (messages, modals and App Home parts)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bot import advice, calibration, coaching, coaching_blocks, development, wording
from bot.coaching_blocks import BlockSpec
from bot.measures import practice_line
from bot.practice_data import leader_practice
from bot.review import HAPPENED
from bot.slack import blocks as bk
from bot.slack.messages import Message, deadline_line
from bot.slack.views import advice_lines, metadata
from bot.team_calendar import calendar_for
from storage.models import (
    CalibrationRating,
    CalibrationSample,
    Case,
    CaseAdvice,
    CoachingBlockRun,
    Person,
    Team,
)

Block = dict[str, Any]
BLOCKS_CALLBACK, ADVICE_CALLBACK, RATING_CALLBACK, PREP_CALLBACK = (
    "coaching_blocks",
    "case_advice",
    "calibration_rating",
    "development_prep",
)
SHORTCUT = "add_to_coaching_case"
LIST_LIMIT = 12


def _e(text: str | None, limit: int = 1500) -> str:
    return bk.escaped(text, limit)


# --- coaching blocks ----------------------------------------------------------------------------


def calendar_button() -> Block:
    return bk.button("Add my blocks to my calendar", "block_ics", "ics")


def blocks_text(specs: list[BlockSpec]) -> str:
    return ", ".join(s.text() for s in specs) or "none yet"


def block_start(session: Session, leader: Person, payload: dict[str, Any], now: datetime) -> Message:
    run = session.get(CoachingBlockRun, int(payload.get("run_id", 0)))
    team = coaching_blocks.led_team(session, leader)
    tz = leader.timezone or (team.timezone if team else "UTC")
    waiting = coaching_blocks.waiting_cases(session, leader.id)
    until = f" until {wording.clock_time(run.ends_at, tz)}" if run is not None else ""
    head = f"Your coaching block starts now{until}: {wording.plural(len(waiting), 'conversation')} waiting."
    out: list[Block] = [bk.section(f":calendar: *{_e(head)}* Most urgent first.")]
    shown = waiting[:LIST_LIMIT]
    for case in shown:
        out.append(
            bk.section(
                f"*{_e(case.agent.display, 200)}* — {deadline_line(case, now, tz)}",
                accessory=bk.button("Plan", "open_plan", str(case.id), style="primary"),
            )
        )
    if len(waiting) > len(shown):
        out.append(bk.context(f"…and {len(waiting) - len(shown)} more on your Home."))
    return Message(head, out)


def blocks_modal(specs: list[BlockSpec], team: Team | None) -> dict[str, Any]:
    zone = team.timezone if team else "UTC"
    blocks = [
        bk.section(
            "Weekly time you protect for coaching. At the start of each block you get the conversations "
            "waiting for it; leadership sees the blocks that were squeezed out."
        ),
        bk.input_block(
            "blocks",
            f"Your blocks ({zone}), one per line",
            bk.text_input("blocks", "\n".join(s.text() for s in specs), max_length=500),
            hint='e.g. "tue 14:00-15:00". Leave it empty to use your team\'s blocks from the org file.',
            optional=True,
        ),
    ]
    return bk.modal("Coaching blocks", blocks, callback_id=BLOCKS_CALLBACK, submit="Save", close="Cancel")


def _state(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    block = values.get(block_id)
    state = next(iter(block.values()), None) if isinstance(block, dict) else None
    return state if isinstance(state, dict) else {}


def _typed(values: dict[str, Any], block_id: str) -> str | None:
    value = _state(values, block_id).get("value")
    return value if isinstance(value, str) else None


def _selected(values: dict[str, Any], block_id: str) -> str | None:
    opt = _state(values, block_id).get("selected_option")
    return opt.get("value") if isinstance(opt, dict) else None


def _ticked(values: dict[str, Any], block_id: str) -> list[str]:
    chosen = _state(values, block_id).get("selected_options") or []
    return [o["value"] for o in chosen if isinstance(o, dict) and isinstance(o.get("value"), str)]


def read_blocks(values: dict[str, Any]) -> str:
    return _typed(values, "blocks") or ""


# --- QA-lead advice -----------------------------------------------------------------------------


def advice_modal(
    session: Session,
    cases: list[Case],
    *,
    case_id: int | None = None,
    evidence: str = "",
    link: str = "",
) -> dict[str, Any]:
    """The QA lead's form: for one case (from its button), or choosing the case (from the shortcut)."""
    blocks: list[Block] = [
        bk.section(
            "Advise the team leader: they decide what to coach. The agent sees none of this unless the "
            "leader puts it in the agreed example."
        )
    ]
    focus_options: list[Block] = []
    if case_id is not None:
        case = next(c for c in cases if c.id == case_id)
        blocks.append(bk.section(f"*{_e(case.agent.display, 200)}* (team {_e(case.team.name, 200)})"))
        picks = coaching.ranked_picks(session, case)
        focus_options = [bk.option(p.name, f"f{i}", p.reason) for i, p in enumerate(picks[:99])]
    else:
        options = [
            bk.option(f"{c.agent.display} — {c.team.name} (case #{c.id})", str(c.id)) for c in cases[:100]
        ]
        blocks.append(bk.input_block("case", "The coaching case", bk.static_select("case", options, None)))
    blocks.append(
        bk.input_block(
            "evidence",
            "Evidence: another contact and what happened",
            bk.text_input("evidence", evidence),
            optional=True,
        )
    )
    blocks.append(
        bk.input_block(
            "link", "Link to it", bk.text_input("link", link, multiline=False, max_length=2000), optional=True
        )
    )
    if focus_options:
        blocks.append(
            bk.input_block(
                "focus", "Suggest the focus", bk.static_select("focus", focus_options, None), optional=True
            )
        )
        blocks.append(bk.input_block("reason", "Why that focus", bk.text_input("reason", ""), optional=True))
    blocks.append(
        bk.input_block("note", "A note for the team leader", bk.text_input("note", ""), optional=True)
    )
    meta = metadata(case_id) if case_id is not None else json.dumps({"source": "shortcut"})
    return bk.modal(
        "Advise the leader",
        blocks,
        callback_id=ADVICE_CALLBACK,
        private_metadata=meta,
        submit="Send to the leader",
        close="Cancel",
    )


def read_advice(values: dict[str, Any], picks_keys: list[str]) -> tuple[int | None, advice.AdviceForm]:
    """The submitted advice; the focus option refers to the case's ranked picks by position."""
    chosen = _selected(values, "case")
    focus = _selected(values, "focus")
    focus_key = None
    if focus and focus.startswith("f") and focus[1:].isdigit() and int(focus[1:]) < len(picks_keys):
        focus_key = picks_keys[int(focus[1:])]
    elif focus:
        focus_key = "?"
    return (
        int(chosen) if chosen and chosen.isdigit() else None,
        advice.AdviceForm(
            evidence=_typed(values, "evidence"),
            link=_typed(values, "link"),
            focus_key=focus_key,
            reason=_typed(values, "reason"),
            note=_typed(values, "note"),
        ),
    )


def leader_advice(session: Session, case: Case, payload: dict[str, Any]) -> Message:
    ids = [int(i) for i in payload.get("advice_ids", [])]
    rows = [r for r in advice.advice_for(session, case.id) if r.id in ids]
    author = rows[0].author.display if rows else "A QA lead"
    text = f"{author} added advice to {case.agent.display}'s coaching case."
    lines = [
        coaching.AdviceLine(r.kind, r.author.display, r.text, r.link, _focus_name(session, case, r))
        for r in rows
    ]
    out = [bk.section(f":mag_right: *{_e(text)}* You decide what to coach.\n{advice_lines(lines)}")]
    if case.state == "awaiting_conversation":
        out.append(
            bk.actions(
                bk.button("Plan the conversation", "open_plan", str(case.id), style="primary"),
                block_id=f"advice_{case.id}",
            )
        )
    out.append(bk.context(f"Case #{case.id}"))
    return Message(text, out)


def _focus_name(session: Session, case: Case, row: CaseAdvice) -> str | None:
    if row.behaviour_key is None:
        return None
    if row.behaviour_key == coaching.DEVELOPMENT_GOAL:
        return "Development goal"
    pick = next((p for p in coaching.ranked_picks(session, case) if p.key == row.behaviour_key), None)
    return pick.name if pick else row.behaviour_key


# --- calibration --------------------------------------------------------------------------------


def plan_summary(case: Case) -> str:
    by = wording.short_date(case.action_date) if case.action_date else "no date"
    review = coaching.REVIEW_METHODS.get(case.review_method or "", case.review_method or "")
    owner = "the agent proposed it" if case.agent_proposed else "the leader proposed it"
    return (
        f"*Behaviour:* {_e(case.behaviour_name, 300)}\n*Example:* {_e(case.example, 900)}\n"
        f"*Action:* {_e(case.action, 600)} — by {by}; reviewed: {_e(review, 200)} ({owner})"
    )


def calibration_request(session: Session, person: Person, payload: dict[str, Any]) -> Message:
    team = session.get(Team, int(payload.get("team_id", 0)))
    week = payload.get("week_of", "")
    samples = [
        s for s in calibration.samples_for(session, person) if team is not None and s.team_id == team.id
    ]
    name = team.name if team else "your team"
    text = f"Calibration: {wording.plural(len(samples), 'plan')} agreed in {name} last week, to rate."
    out: list[Block] = [
        bk.section(
            f":scales: *{_e(text)}* Rate each against the structure of a good plan; one suggestion for the "
            "leader is welcome."
        )
    ]
    for s in samples[:LIST_LIMIT]:
        out.append(_sample_section(s, person))
    out.append(bk.context(f"Week of {week}"))
    return Message(text, out)


def _sample_section(s: CalibrationSample, person: Person) -> Block:
    mine = calibration.rating_by(s, person)
    label = "Change my rating" if mine else "Rate"
    done = " :white_check_mark: rated" if mine else ""
    return bk.section(
        f"*{_e(s.case.leader.display, 100)}* with {_e(s.case.agent.display, 100)}: "
        f"{_e(s.case.behaviour_name, 200)}{done}",
        accessory=bk.button(label, "rate_plan", str(s.id)),
    )


def rating_modal(s: CalibrationSample, mine: CalibrationRating | None) -> dict[str, Any]:
    options = [bk.option(text, key) for key, text in calibration.CHECKS.items()]
    chosen = [o for o in options if mine is not None and getattr(mine, o["value"])]
    blocks = [
        bk.section(f"*{_e(s.case.leader.display, 100)}'s plan with {_e(s.case.agent.display, 100)}*"),
        bk.section(plan_summary(s.case)),
        bk.divider(),
        bk.input_block(
            "structure",
            "Which parts does the plan have?",
            bk.checkboxes("structure", options, chosen),
            optional=True,
            hint="Leave a part unticked when the plan misses it.",
        ),
        bk.input_block(
            "suggestion",
            "One suggestion for the leader (they receive it)",
            bk.text_input("suggestion", (mine.suggestion if mine else "") or "", max_length=1000),
            optional=True,
        ),
    ]
    return bk.modal(
        "Rate a coaching plan",
        blocks,
        callback_id=RATING_CALLBACK,
        private_metadata=json.dumps({"sample_id": s.id}),
        submit="Save the rating",
        close="Cancel",
    )


def sample_id_from_metadata(raw: str | None) -> int | None:
    try:
        value = json.loads(raw or "")
    except ValueError:
        return None
    found = value.get("sample_id") if isinstance(value, dict) else None
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def read_rating(values: dict[str, Any]) -> calibration.RatingForm:
    return calibration.RatingForm(
        met=frozenset(_ticked(values, "structure")), suggestion=_typed(values, "suggestion")
    )


def calibration_suggestion(session: Session, case: Case, payload: dict[str, Any]) -> Message:
    rating = session.get(CalibrationRating, int(payload.get("rating_id", 0)))
    suggestion = rating.suggestion if rating is not None else ""
    text = f"A suggestion on your coaching plan with {case.agent.display}, from calibration."
    return Message(
        text,
        [
            bk.section(f":bulb: *{_e(text)}*\n>{_e(suggestion, 1000)}"),
            bk.context(f"Plan: {_e(case.behaviour_name, 200)} · case #{case.id}"),
        ],
    )


# --- development prep ---------------------------------------------------------------------------


def agent_prep(case: Case) -> Message:
    leader = case.leader.display
    text = f"Before your next conversation with {leader}: three questions, in your own words."
    questions = "\n".join(f"• {q}" for q in development.QUESTIONS.values())
    out = [
        bk.section(
            f":seedling: *{_e(text)}*\n{questions}\n_This conversation is about where you want to go._"
        ),
    ]
    if case.state == "awaiting_conversation":
        out.append(
            bk.actions(
                bk.button("Answer", "answer_prep", str(case.id), style="primary"),
                block_id=f"prep_{case.id}",
            )
        )
    return Message(text, out)


def prep_modal(case: Case, answers: dict[str, str]) -> dict[str, Any]:
    blocks = [bk.section(f"Your answers go to {_e(case.leader.display, 100)} before the conversation.")]
    for key, question in development.QUESTIONS.items():
        blocks.append(
            bk.input_block(
                key,
                question,
                bk.text_input(key, answers.get(key, ""), max_length=development.MAX_ANSWER),
                optional=True,
            )
        )
    return bk.modal(
        "Prepare",
        blocks,
        callback_id=PREP_CALLBACK,
        private_metadata=metadata(case.id),
        submit="Send",
        close="Cancel",
    )


def read_prep(values: dict[str, Any]) -> development.PrepAnswers:
    return development.PrepAnswers(**{k: _typed(values, k) for k in development.QUESTIONS})


def leader_prep_answered(case: Case) -> Message:
    text = f"{case.agent.display} answered the prep questions: their answers are in the plan."
    out: list[Block] = [bk.section(f":seedling: {_e(text)}")]
    if case.state == "awaiting_conversation":
        out.append(
            bk.actions(
                bk.button("Plan the conversation", "open_plan", str(case.id), style="primary"),
                block_id=f"prepdone_{case.id}",
            )
        )
    return Message(text, out)


# --- App Home parts -------------------------------------------------------------------------------


def leader_blocks_part(session: Session, leader: Person, team: Team) -> list[Block]:
    specs = coaching_blocks.blocks_of(session, leader, team)
    text = f"*Your coaching blocks* ({_e(team.timezone)}): {blocks_text(specs)}"
    out = [bk.section(text)]
    buttons = [bk.button("Edit my blocks", "edit_blocks", "edit")]
    if specs:
        buttons.append(calendar_button())
    out.append(bk.actions(*buttons, block_id="blocks_home"))
    return out


def qa_lead_part(session: Session, person: Person, now: datetime) -> list[Block]:
    cases = [c for c in advice.open_cases(session, person) if not advice.has_evidence(session, c.id)]
    out: list[Block] = [bk.header("Advising: open cases with no evidence beyond the score")]
    if not cases:
        out.append(bk.section("Every open case of your teams has evidence. :tada:"))
    for case in cases[:LIST_LIMIT]:
        tz = person.timezone or case.team.timezone
        out.append(
            bk.section(
                f"*{_e(case.agent.display, 200)}* (team {_e(case.team.name, 100)}, leader "
                f"{_e(case.leader.display, 100)}) — {deadline_line(case, now, tz)}",
                accessory=bk.button("Add advice", "open_advice", str(case.id)),
            )
        )
    if len(cases) > LIST_LIMIT:
        out.append(bk.context(f"…and {len(cases) - LIST_LIMIT} more."))
    out += calibration_part(session, person)
    return out


def calibration_part(session: Session, person: Person) -> list[Block]:
    samples = calibration.samples_for(session, person)
    if not samples:
        return []
    out: list[Block] = [bk.header(f"Calibration sample, week of {wording.short_date(samples[0].week_of)}")]
    out += [_sample_section(s, person) for s in samples[:LIST_LIMIT]]
    return out


def development_part(session: Session, agent: Person, team: Team) -> list[Block]:
    goals = development.goals_of(session, agent.id)
    if not goals:
        return []
    out: list[Block] = []
    tz = calendar_for(team).tz
    for goal, cases in goals[:3]:
        status = "open" if goal.status == development.OPEN else "done"
        lines = []
        for c in cases:
            if c.agreed_at is None:
                lines.append("• next conversation: to come")
                continue
            outcome = HAPPENED.get(c.review_happened or "", "review to come")
            when = wording.short_date(c.agreed_at.astimezone(tz).date())
            lines.append(f"• {when}: {_e(c.action, 300)} — {outcome}")
        history = "\n".join(lines[-8:])
        out.append(
            bk.section(f":seedling: *Development goal* ({status}): {_e(goal.wording, 500)}\n{history}")
        )
    return out


def practice_part(session: Session, teams: list[Team], now: datetime) -> list[Block]:
    from bot.measures_data import parse_period

    practice = leader_practice(session, [t.id for t in teams], parse_period("last-4-weeks", now))
    if not practice:
        return []
    lines = [f"• *{_e(name, 100)}*: {practice_line(lp)}" for name, lp in list(practice.items())[:LIST_LIMIT]]
    return [bk.section("*Coaching practice per leader, last 4 weeks*\n" + "\n".join(lines))]
