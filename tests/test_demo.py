"""`coachloop demo` runs the whole loop, the pull from Zendesk QA included."""

from __future__ import annotations

import pytest

from bot.app.demo import run_demo


def test_the_demo_shows_the_webhook_and_the_pull_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo() == 0
    out = capsys.readouterr().out
    assert "QA scores arrive at POST /webhooks/qa" in out
    assert "/api/export/workspace/101/reviews -> HTTP 200" in out
    pulled = out.split("## Priya gets a DM for Tom, from the pulled review", 1)[1]
    assert "== Coaching: Tom Hale ==" in pulled and "Verifies identity before account changes" in pulled
    assert "#3 Tom Hale" in out
