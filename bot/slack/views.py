"""Modals: the coaching plan, and short notices that replace a modal."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from bot import wording
from bot.coaching import DEVELOPMENT_GOAL, KINDS, REVIEW_METHODS, AdviceLine, PlanDraft, PlanForm
from bot.leverage import Pick
from bot.review import HAPPENED, NEXT, ReviewDraft, ReviewForm, results_line
from bot.slack import blocks as bk

PLAN_CALLBACK = "coaching_plan"
BEHAVIOUR_ACTION = "plan_behaviour"
# Inputs pre-filled from the chosen behaviour: their ids carry the behaviour's option value, because
# views.update keeps what an input with unchanged ids holds (a new initial_value would be ignored).
PER_BEHAVIOUR = ("example", "action")


def metadata(case_id: int) -> str:
    return json.dumps({"case_id": case_id})


def case_id_from_metadata(raw: str | None) -> int | None:
    """The case id a modal carries; anything else in it is ignored."""
    try:
        value = json.loads(raw or "")
    except ValueError:
        return None
    case_id = value.get("case_id") if isinstance(value, dict) else None
    return case_id if isinstance(case_id, int) and not isinstance(case_id, bool) else None


def behaviour_value(key: str) -> str:
    """The behaviour select's option value for a criterion: a short opaque reference (Slack allows
    150 characters; criterion keys may be longer)."""
    if key == DEVELOPMENT_GOAL:
        return key
    return "c-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def behaviour_key(value: str | None, picks: list[Pick]) -> str | None:
    """The criterion key an option value refers to (None when it refers to none of `picks`)."""
    if value == DEVELOPMENT_GOAL:
        return DEVELOPMENT_GOAL
    return next((p.key for p in picks if behaviour_value(p.key) == value), None)


def plan_modal(draft: PlanDraft) -> dict[str, Any]:
    # Slack allows 100 options: the development goal always keeps its place.
    behaviours = [bk.option(p.name, behaviour_value(p.key), p.reason) for p in draft.picks[:99]]
    behaviours.append(
        bk.option("Development goal (agent-led)", DEVELOPMENT_GOAL, "Where they want to be in 12 months")
    )
    chosen = behaviour_value(draft.behaviour_key)
    questions = "\n".join(f"• {q}" for q in draft.questions)
    checkbox = bk.option("The agent proposed this action", "yes")
    blocks = [
        bk.section(f"*Coaching {bk.escaped(draft.agent_name, 200)}.* Ask before you tell:\n{questions}"),
        bk.context("Let the agent find the answer; tick the box below if the action was theirs."),
        *_prep_and_advice(draft),
        bk.divider(),
        bk.input_block(
            "kind",
            "Kind of conversation",
            bk.static_select("kind", [bk.option(v, k) for k, v in KINDS.items()], draft.kind),
        ),
        bk.input_block(
            "behaviour",
            "One behaviour to work on",
            bk.static_select(BEHAVIOUR_ACTION, behaviours, chosen),
            hint="Highest leverage first. Changing it refreshes the example and action.",
            dispatch=True,
        ),
        bk.input_block(f"example.{chosen}", "The specific example", bk.text_input("example", draft.example)),
        bk.input_block(
            f"action.{chosen}", "The action the agent will try", bk.text_input("action", draft.action)
        ),
        *_goal_input(draft, chosen),
        bk.input_block("by_when", "Tried by", bk.datepicker("by_when", draft.by_when.isoformat())),
        bk.input_block(
            "review_method",
            "How it will be reviewed",
            bk.static_select(
                "review_method", [bk.option(v, k) for k, v in REVIEW_METHODS.items()], draft.review_method
            ),
        ),
        bk.input_block(
            "agent_proposed",
            "Ownership",
            bk.checkboxes("agent_proposed", [checkbox], [checkbox] if draft.agent_proposed else []),
            optional=True,
        ),
        bk.input_block(
            "notes",
            "Notes (for you, not sent to the agent)",
            bk.text_input("notes", draft.notes),
            optional=True,
        ),
    ]
    return bk.modal(
        f"Coach {draft.agent_name}",
        blocks,
        callback_id=PLAN_CALLBACK,
        private_metadata=metadata(draft.case_id),
        submit="Agree the plan",
        close="Cancel",
    )


def _prep_and_advice(draft: PlanDraft) -> list[dict[str, Any]]:
    """The agent's own prep answers and what QA leads added: shown to the leader, who decides."""
    out = []
    if draft.prep:
        answers = "\n".join(f"• _{q}_ {bk.escaped(a, 600)}" for q, a in draft.prep)
        out.append(bk.section(f"*{bk.escaped(draft.agent_name, 100)}'s own answers*\n{answers}"))
    if draft.advice:
        out.append(bk.section("*From QA* (advice: you decide)\n" + advice_lines(list(draft.advice))))
    return out


def advice_lines(items: list[AdviceLine]) -> str:
    lines = []
    for a in items[-8:]:
        who = bk.escaped(a.author, 100)
        if a.kind == "focus":
            lines.append(
                f"• {who} suggests the focus *{bk.escaped(a.focus, 200)}*: {bk.escaped(a.text, 400)}"
            )
        elif a.kind == "evidence":
            more = f" ({bk.link(a.link, 'link')})" if a.link else ""
            lines.append(f"• Evidence from {who}: {bk.escaped(a.text, 400)}{more}")
        else:
            lines.append(f"• Note from {who}: {bk.escaped(a.text, 400)}")
    return "\n".join(lines)


def _goal_input(draft: PlanDraft, chosen: str) -> list[dict[str, Any]]:
    if draft.behaviour_key != DEVELOPMENT_GOAL:
        return []
    return [
        bk.input_block(
            f"goal.{chosen}",
            "The development goal, in the agent's words",
            bk.text_input("goal", draft.goal),
            optional=True,
            hint="It stays open across conversations until a review closes it.",
        )
    ]


def notice_modal(title: str, text: str) -> dict[str, Any]:
    return bk.modal(title, [bk.section(text)], callback_id="notice")


def _block(values: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    """The state of the input whose block id is `name`, or `name` plus a '.' suffix."""
    for block_id, block in values.items():
        if (block_id == name or block_id.startswith(name + ".")) and isinstance(block, dict):
            return block_id, next(iter(block.values()), {})
    return name, {}


def _value(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    state = _block(values, block_id)[1]
    return state if isinstance(state, dict) else {}


def _selected(values: dict[str, Any], block_id: str) -> str | None:
    opt = _value(values, block_id).get("selected_option")
    return opt.get("value") if isinstance(opt, dict) else None


def _typed(values: dict[str, Any], block_id: str) -> str | None:
    value = _value(values, block_id).get("value")
    return value if isinstance(value, str) else None


def read_plan_form(values: dict[str, Any], picks: list[Pick]) -> PlanForm:
    """The submitted `view.state.values` as a PlanForm (missing parts read as None); the behaviour's
    option value is turned back into its criterion key among `picks`."""
    chosen = _value(values, "agent_proposed").get("selected_options") or []
    return PlanForm(
        kind=_selected(values, "kind"),
        behaviour_key=behaviour_key(_selected(values, "behaviour"), picks),
        example=_typed(values, "example"),
        action=_typed(values, "action"),
        by_when=_value(values, "by_when").get("selected_date"),
        review_method=_selected(values, "review_method"),
        agent_proposed=any(isinstance(o, dict) and o.get("value") == "yes" for o in chosen),
        notes=_typed(values, "notes"),
        goal=_typed(values, "goal"),
    )


def untouched_from(form: PlanForm, draft: PlanDraft) -> PlanForm:
    """Slack returns an input first shown by views.update and left alone as null: such an example
    or action is the draft's for the chosen behaviour (`draft` drafted for it)."""
    return replace(
        form,
        example=draft.example if form.example is None else form.example,
        action=draft.action if form.action is None else form.action,
    )


def plan_errors(errors: dict[str, str], values: dict[str, Any]) -> dict[str, str]:
    """Errors keyed by the block ids the modal shows now (`example` -> `example.<behaviour>`)."""
    return {
        (_block(values, name)[0] if name in PER_BEHAVIOUR else name): text for name, text in errors.items()
    }


REVIEW_CALLBACK = "followup_review"
WAIVE_CALLBACK = "waive_case"


def review_modal(draft: ReviewDraft) -> dict[str, Any]:
    agreed_by = f" by {wording.short_date(draft.action_date)}" if draft.action_date else ""
    blocks = [
        bk.section(f"*Agreed with {draft.agent_name}:* {draft.action}{agreed_by}"),
        bk.section(f"*Results since the conversation*\n{results_line(draft)}"),
        bk.divider(),
        bk.input_block(
            "happened",
            "Did the action happen?",
            bk.static_select("happened", [bk.option(v, k) for k, v in HAPPENED.items()], None),
        ),
        bk.input_block("worked", "Did it work? What changed?", bk.text_input("worked", "")),
        bk.input_block(
            "next",
            "What next?",
            bk.static_select("next", [bk.option(v, k) for k, v in NEXT.items()], None),
            hint="Coaching again or moving on opens the next conversation, pre-filled.",
        ),
    ]
    return bk.modal(
        f"Review: {draft.agent_name}",
        blocks,
        callback_id=REVIEW_CALLBACK,
        private_metadata=metadata(draft.case_id),
        submit="Record the review",
        close="Cancel",
    )


def read_review_form(values: dict[str, Any]) -> ReviewForm:
    return ReviewForm(
        happened=_selected(values, "happened"),
        worked=_typed(values, "worked"),
        next_step=_selected(values, "next"),
    )


def waive_modal(case_id: int, agent_name: str) -> dict[str, Any]:
    blocks = [
        bk.section(f"Mark {agent_name}'s conversation as not needed. The reason is recorded and counted."),
        bk.input_block(
            "reason",
            "Why is no conversation needed?",
            bk.text_input("reason", "", max_length=500),
            hint="e.g. the agent is leaving; the score is being disputed with QA.",
        ),
    ]
    return bk.modal(
        "Waive the conversation",
        blocks,
        callback_id=WAIVE_CALLBACK,
        private_metadata=metadata(case_id),
        submit="Waive",
        close="Cancel",
    )


def read_waive_reason(values: dict[str, Any]) -> str | None:
    return _typed(values, "reason")
