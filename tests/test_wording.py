"""How times, days and the evidence read in the reader's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from bot import wording
from bot.evidence import example
from storage.models import Evaluation, EvaluationItem

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday


def test_day_phrases() -> None:
    assert wording.day_phrase(datetime(2026, 11, 25, 8, 0, tzinfo=UTC), NOW, "Europe/London") == "today"
    assert wording.day_phrase(datetime(2026, 11, 24, 8, 0, tzinfo=UTC), NOW, "Europe/London") == "yesterday"
    assert wording.day_phrase(datetime(2026, 11, 23, 8, 0, tzinfo=UTC), NOW, "Europe/London") == "on Monday"
    assert (
        wording.day_phrase(datetime(2026, 11, 10, 8, 0, tzinfo=UTC), NOW, "Europe/London") == "on Tue 10 Nov"
    )


def test_the_readers_zone_decides_the_day() -> None:
    # 02:30 UTC on Wednesday is still Tuesday evening in New York.
    at = datetime(2026, 11, 25, 2, 30, tzinfo=UTC)
    assert wording.when(at, NOW, "Europe/London") == "at 02:30 today"
    assert wording.when(at, NOW, "America/New_York") == "at 9:30 pm yesterday"
    assert wording.when(at, NOW, "Asia/Kolkata") == "at 08:00 today"


def test_evidence_sentence() -> None:
    ev = Evaluation(
        contact_channel="call",
        contact_id="C-88912",
        landed_at=NOW,
        contact_started_at=datetime(2026, 11, 24, 11, 23, tzinfo=UTC),
    )
    item = EvaluationItem(
        key="ack",
        name="Acknowledges",
        score=0,
        max_score=5,
        at_seconds=252,
        comment="Read the policy without acknowledging the frustration.",
        good_looks_like="Name the frustration first.",
    )
    assert example(ev, item, NOW, "Europe/London") == (
        "On the call at 11:23 yesterday (C-88912), 4:12 in: Read the policy without acknowledging the "
        "frustration. The better move: Name the frustration first."
    )


def test_evidence_without_a_comment_names_the_criterion() -> None:
    ev = Evaluation(
        contact_channel=None,
        contact_id=None,
        landed_at=datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
        contact_started_at=None,
    )
    item = EvaluationItem(
        key="ack",
        name="Acknowledges",
        score=2,
        max_score=5,
        at_seconds=None,
        comment=None,
        good_looks_like=None,
    )
    assert (
        example(ev, item, NOW, "Europe/Berlin")
        == 'On the contact at 16:00 on Monday: "Acknowledges" scored 2 of 5.'
    )


def test_mrkdwn_escaping() -> None:
    assert wording.escape_mrkdwn("<b> & <!channel>") == "&lt;b&gt; &amp; &lt;!channel&gt;"
