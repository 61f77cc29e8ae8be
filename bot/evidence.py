"""The specific example a conversation is built on, in the reader's time zone."""

from __future__ import annotations

from datetime import datetime

from bot import wording
from bot.templates import render
from storage.models import Evaluation, EvaluationItem


def _contact_time(ev: Evaluation) -> datetime:
    return ev.contact_started_at or ev.landed_at


def example(ev: Evaluation, item: EvaluationItem, now: datetime, timezone: str) -> str:
    """'On the call at 11:23 yesterday (C-88912), 4:12 in: <comment> The better move: <good>'."""
    return render(
        "example.j2",
        channel=ev.contact_channel or "contact",
        when=wording.when(_contact_time(ev), now, timezone),
        contact_id=ev.contact_id,
        at_seconds=item.at_seconds,
        comment=item.comment,
        criterion=item.name,
        score=f"{item.score:g}",
        max_score=f"{item.max_score:g}",
        good=item.good_looks_like,
    )


def developmental_example(ev: Evaluation, now: datetime, timezone: str) -> str:
    strongest = max(ev.items, key=lambda i: (i.score >= i.max_score, i.weight), default=None)
    return render(
        "example_developmental.j2",
        channel=ev.contact_channel or "contact",
        when=wording.when(_contact_time(ev), now, timezone),
        contact_id=ev.contact_id,
        score=f"{ev.score:g}",
        max_score=f"{ev.max_score:g}",
        strength=strongest.name if strongest is not None and not strongest.missed else None,
    )
