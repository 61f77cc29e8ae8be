"""The outbox's messages: each kind rendered from the case as it is at send time."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec

from sqlalchemy.orm import Session

from bot.slack import blocks as bk
from bot.slack import messages as msg
from bot.slack import practice
from bot.slack.digest import digest_message
from bot.slack.messages import Message
from storage.models import Case, Person

P = ParamSpec("P")


def _within_slack_limits(build: Callable[P, Message]) -> Callable[P, Message]:
    """`build`, with the message's blocks kept inside Slack's 50."""

    @functools.wraps(build)
    def capped(*args: P.args, **kwargs: P.kwargs) -> Message:
        message = build(*args, **kwargs)
        return Message(message.text, bk.capped(message.blocks), message.metadata)

    return capped


@_within_slack_limits
def render(
    session: Session,
    kind: str,
    case: Case | None,
    payload: dict[str, Any],
    now: datetime,
    person: Person | None = None,
) -> Message:
    """The message of `kind` as things are now, inside Slack's 50 blocks."""
    if kind == "digest" and person is not None:
        return Message(*digest_message(session, person, payload, now))
    if kind == "escalation":
        return msg.escalation(session, payload, now, person)
    if kind == "admin_alert":
        return msg.admin_alert(payload, case)
    if kind == "connector_alert":
        return msg.connector_alert(payload)
    if kind == "block_start" and person is not None:
        return practice.block_start(session, person, payload, now)
    if kind == "calibration_request" and person is not None:
        return practice.calibration_request(session, person, payload)
    if case is None:
        raise ValueError(f"message kind {kind} needs a case")
    if kind == "leader_case":
        return msg.leader_case(session, case, now, person)
    if kind == "leader_evidence_moved":
        return msg.leader_evidence_moved(case, payload)
    if kind == "agent_agreement":
        return msg.agent_agreement(case, now)
    if kind == "leader_discussion":
        return msg.leader_discussion(case, now)
    if kind == "leader_reminder":
        return msg.leader_reminder(case, now, str(payload.get("which")), str(payload.get("by", "")))
    if kind == "agent_ack_reminder":
        return msg.agent_ack_reminder(case)
    if kind == "leader_ack_overdue":
        return msg.leader_ack_overdue(case)
    if kind in ("review_due", "review_chase"):
        return msg.review_due(case, now, chase=kind == "review_chase")
    if kind == "leader_advice":
        return practice.leader_advice(session, case, payload)
    if kind == "calibration_suggestion":
        return practice.calibration_suggestion(session, case, payload)
    if kind == "agent_prep":
        return practice.agent_prep(case)
    if kind == "leader_prep_answered":
        return practice.leader_prep_answered(case)
    raise ValueError(f"unknown message kind {kind}")
