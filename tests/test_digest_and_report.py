"""The weekly digest (once per recipient per week, with its chart) and `coachloop report`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot import report
from bot.digest import next_monday_morning
from bot.measures_data import Scope, compute, parse_period
from tests.conftest import Stack
from tests.payloads import evaluation
from tests.test_core_loop import DANA, PRIYA, open_plan
from tests.test_followup import at, run_until


def test_next_monday_morning_in_the_recipients_zone() -> None:
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert next_monday_morning(friday, "Europe/London") == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert next_monday_morning(friday, "America/New_York") == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    assert next_monday_morning(friday, "Asia/Tokyo") == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert next_monday_morning(monday_9, "Europe/London") == monday_9


def test_the_digest_goes_out_once_a_week_with_its_chart(stack: Stack) -> None:
    stack.clock.set(at("2026-11-16T10:00:00+00:00"))
    assert stack.post_score(evaluation(landed_at="2026-11-16T10:00:00Z"))[0] == 202  # breached Mon 23 Nov
    run_until(stack, at("2026-12-01T00:00:00+00:00"), step=timedelta(hours=1))
    digests = [
        m
        for m in stack.dm(DANA)
        if m["metadata"]["event_type"] == "coachloop_message"
        and m["metadata"]["event_payload"]["dedupe_key"].startswith("digest:")
    ]
    keys = [m["metadata"]["event_payload"]["dedupe_key"] for m in digests]
    dana = keys[0].split(":")[1]
    assert keys == [f"digest:{dana}:2026-11-23", f"digest:{dana}:2026-11-30"]
    latest = json.dumps(digests[-1]["blocks"], ensure_ascii=False)
    assert "week of Mon 23 Nov" in latest and "Billing" in latest and "Breaches: Ana Ruiz" in latest
    assert "coached in the window 0% (0/1)" in latest
    uploads = stack.standin.calls_to("files.completeUploadExternal")
    assert len(uploads) == 2 and all(u.args["channel_id"] == stack.standin.dm_of(DANA) for u in uploads)
    png = next(iter(stack.standin.files.values()))["data"]
    assert png.startswith(b"\x89PNG")
    # Sweeping again in the same week sends nothing more.
    before = len(stack.standin.calls_to("chat.postMessage"))
    stack.sweep()
    stack.sweep()
    assert len(stack.standin.calls_to("chat.postMessage")) == before


def test_report_matches_what_home_shows(stack: Stack, tmp_path: Path) -> None:
    stack.clock.set(at("2026-11-16T10:00:00+00:00"))
    stack.post_score(evaluation(landed_at="2026-11-16T10:00:00Z"))
    stack.sweep()
    stack.clock.set(at("2026-11-18T10:00:00+00:00"))
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    now = at("2026-11-30T12:00:00+00:00")
    period = parse_period("last-4-weeks", now)
    with stack.db.unit_of_work() as s:
        rows = report.build(s, period, now)
        billing = compute(s, Scope(team_ids=(1,)), period, now)
    assert [r.scope for r in rows] == ["Billing", "Retentions", "All teams"]
    cells = rows[0].cells()
    assert cells["hit_rate"] == "100% (1/1)" and billing.hit_rate == 1.0
    assert cells["time_to_coach"] == "2/2" and cells["scores_landed"] == "1"
    assert (cells["waived"], cells["one_kind"], cells["mix"]) == ("0", "none", "1/0")
    parsed = list(csv.DictReader(io.StringIO(report.as_csv(rows))))
    assert parsed[0]["In window"] == "100% (1/1)" and parsed[2]["Team"] == "All teams"
    page = report.as_html(rows, period, b"\x89PNG")
    assert page.count("<tr>") == 4 and "data:image/png;base64," in page


def test_report_command(stack: Stack, tmp_path: Path) -> None:
    stack.post_score(evaluation(landed_at=(datetime.now(UTC) - timedelta(days=3)).isoformat()))
    env = {"DATABASE_URL": stack.db.url, "PATH": "/usr/bin:/bin"}
    out = tmp_path / "report.html"
    html = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "report", "--format", "html", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert html.returncode == 0, html.stderr
    assert '<img alt="Hit rate per team' in out.read_text()
    table = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "report", "--team", "Billing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "Billing" in table.stdout and "Retentions" not in table.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "report", "--period", "fortnight"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "last-N-weeks" in bad.stderr


def test_figures_for_all_teams_at_once_match_each_team_alone(stack: Stack) -> None:
    """Leadership's Home reads every team's facts once; the figures are those of each team alone."""
    from sqlalchemy import select

    from bot.measures_data import compute_by_team
    from storage.models import Team

    stack.clock.set(at("2026-11-16T10:00:00+00:00"))
    stack.post_score(evaluation(landed_at="2026-11-16T10:00:00Z"))
    lena = evaluation(id="ev-lena", landed_at="2026-11-16T09:00:00Z")
    lena["agent"] = {"email": "lena.ito@example.com"}
    stack.post_score(lena)
    stack.sweep()
    stack.clock.set(at("2026-11-18T10:00:00+00:00"))
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)
    now = at("2026-11-30T12:00:00+00:00")
    period = parse_period("last-4-weeks", now)
    with stack.db.read() as s:
        teams = list(s.scalars(select(Team).order_by(Team.id)))
        together = compute_by_team(s, teams, period, now)
        alone = {t.id: compute(s, Scope(team_ids=(t.id,), label=t.name), period, now) for t in teams}
    assert together == alone
    assert [m.scores_landed for m in together.values()] == [1, 1] and together[teams[0].id].agreed == 1
