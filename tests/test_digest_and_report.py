"""The weekly digest (once per recipient per week, with its chart) and `coachloop report`."""

from __future__ import annotations

import csv
import html
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot import charts, report
from bot import measures as definitions
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
    assert "coached in the window 0% (0 of 1 decided)" in latest
    # The text leads with the change that matters: a week with nothing decided, then 0% and one missed.
    assert digests[0]["text"] == "Weekly coaching digest: Billing nothing decided yet"
    assert digests[-1]["text"] == "Weekly coaching digest: Billing 0%, 1 missed the window"
    uploads = stack.standin.calls_to("files.completeUploadExternal")
    # No chart the first week (nothing to draw yet), one the second.
    assert len(uploads) == 1 and uploads[0].args["channel_id"] == stack.standin.dm_of(DANA)
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
    assert cells["hit_rate"] == "100% (1 of 1 decided)" and billing.hit_rate == 1.0
    assert cells["time_to_coach"] == "2/2" and cells["scores_landed"] == "1"
    assert (cells["waived"], cells["one_kind"], cells["mix"]) == ("0", "none", "1/0")
    parsed = list(csv.DictReader(io.StringIO(report.as_csv(rows, period))))
    assert list(parsed[0]) == report.CSV_FIELDS and parsed[2]["team"] == "All teams"
    billing_row = parsed[0]
    assert (billing_row["hit_rate"], billing_row["coached_in_window"], billing_row["cases_decided"]) == (
        "1.0",
        "1",
        "1",
    )
    assert (billing_row["period_start"], billing_row["period_end"]) == ("2026-11-02", "2026-11-30")
    assert parsed[1]["hit_rate"] == ""  # Retentions decided nothing: an empty cell, not a dash


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_csv_is_numbers_for_a_spreadsheet_and_weekly_rows(stack: Stack) -> None:
    stack.clock.set(at("2026-11-02T10:00:00+00:00"))
    stack.post_score(evaluation(landed_at="2026-11-02T10:00:00Z"))  # missed: nobody coaches it
    run_until(stack, at("2026-11-16T10:00:00+00:00"), step=timedelta(hours=4))
    stack.post_score(evaluation(id="ev-2", landed_at="2026-11-16T10:00:00Z"))
    stack.sweep()
    assert stack.people.submit(PRIYA, open_plan(stack)) == (200, None)  # the late one
    stack.clock.set(at("2026-11-24T10:00:00+00:00"))
    now = stack.clock.now()
    period = parse_period("last-4-weeks", now)
    with stack.db.unit_of_work() as s:
        flat = report.render(s, period, now, "csv")[0]
        weekly = report.render(s, period, now, "csv", by="week")[0]
    for text in (flat, weekly):
        records = list(csv.DictReader(io.StringIO(text)))
        assert records and list(records[0]) == report.CSV_FIELDS
        for record in records:
            for name, cell in record.items():
                if name == "team":
                    continue
                if name.startswith("period_"):
                    assert date.fromisoformat(cell)
                else:
                    assert cell == "" or _is_number(cell), (name, cell)
    weeks = list(csv.DictReader(io.StringIO(weekly)))
    # Four weeks overlap the period: 27 Oct (cut), 2, 9, 16 Nov and 23 Nov (cut) — two teams each.
    assert [(r["team"], r["period_start"]) for r in weeks][:4] == [
        ("Billing", "2026-10-27"),
        ("Retentions", "2026-10-27"),
        ("Billing", "2026-11-02"),
        ("Retentions", "2026-11-02"),
    ]
    assert len(weeks) == 10
    billing = [r for r in weeks if r["team"] == "Billing"]
    # The first case missed its window on Mon 9 Nov; its late conversation came on 16 Nov.
    assert [(r["period_start"], r["missed_window"], r["coached_late"]) for r in billing] == [
        ("2026-10-27", "0", "0"),
        ("2026-11-02", "0", "0"),
        ("2026-11-09", "1", "0"),
        ("2026-11-16", "0", "1"),
        ("2026-11-23", "0", "0"),
    ]
    assert all(r["open_overdue"] == "" for r in weeks)
    assert sum(int(r["cases_decided"]) for r in billing) == int(
        next(r for r in csv.DictReader(io.StringIO(flat)) if r["team"] == "Billing")["cases_decided"]
    )


def test_html_report_says_no_data_yet_and_carries_the_definitions(stack: Stack) -> None:
    now = stack.clock.now()
    period = parse_period("last-4-weeks", now)
    with stack.db.unit_of_work() as s:
        page = report.render(s, period, now, "html")[0]
    assert page.count('data-chart="empty"') == 2 and "<svg" not in page and "No data yet" in page
    for d in definitions.DEFINITIONS:
        assert html.escape(d.text) in page
    assert "bot/measures.py" not in page and "http" not in page.replace("http-equiv", "")
    assert '<th scope="col">Coached in the window</th>' in page
    # Each leader's practice (blocks squeezed out, calibration) has its section, empty for now.
    assert "No coaching blocks, calibration ratings or conversations in the period." in page


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
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "How these are counted" in page
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
    words = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "report", "--definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert words.returncode == 0
    flat = " ".join(words.stdout.split())
    assert all(d.term in words.stdout and d.text in flat for d in definitions.DEFINITIONS)
    weekly_table = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "report", "--by", "week"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert weekly_table.returncode == 2 and "--format csv" in weekly_table.stderr


def test_charts_draw_nothing_without_data_and_label_their_axes() -> None:
    weeks = [date(2026, 11, 2), date(2026, 11, 9)]
    assert charts.render(charts.HIT_RATE, charts.WeeklySeries(weeks, {"Billing": [None, None]})) is None
    assert charts.hit_rate_chart(charts.WeeklySeries(weeks, {})) is None
    series = charts.WeeklySeries(weeks, {"Billing": [50.0, None], "Retentions": [None, 100.0]})
    png = charts.hit_rate_chart(series)
    assert png is not None and png.startswith(b"\x89PNG")
    svg = charts.inline_svg(charts.render(charts.HIT_RATE, series, "svg") or b"", "Hit rate", "By week")
    for text in (charts.WEEK_AXIS, charts.HIT_RATE.y_label, "Target 90%", "Billing", "Retentions", ">Nov<"):
        assert text in svg, text
    assert svg.startswith('<svg role="img" aria-labelledby="hit-rate-t hit-rate-d"') and "<?xml" not in svg


def test_figures_for_all_teams_at_once_match_each_team_alone(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leadership's Home reads the teams' facts a few teams at a time; the figures are those of each
    team alone, however the teams are grouped."""
    from sqlalchemy import select

    from bot import measures_data
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
    monkeypatch.setattr(measures_data, "TEAMS_AT_ONCE", 1)
    with stack.db.read() as s:
        assert compute_by_team(s, teams, period, now) == alone
