"""The command line: settings errors, org import, deadline and calendar explanations, sweep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.config import ConfigError, load_settings
from tests.conftest import sample_org

GOOD = {
    "SLACK_BOT_TOKEN": "xoxb-1",
    "SLACK_SIGNING_SECRET": "s3cret",
    "QA_WEBHOOK_SECRET": "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QA_", "COACHLOOP_", "DATABASE"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"SLACK_BOT_TOKEN": ""}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxp-user"}, "SLACK_BOT_TOKEN must be a bot token"),
        ({"SLACK_SIGNING_SECRET": ""}, "SLACK_SIGNING_SECRET is not set"),
        ({"QA_WEBHOOK_SECRET": "plain"}, "QA_WEBHOOK_SECRET must be a Standard Webhooks secret"),
        ({"SLACK_APP_TOKEN": "xoxb-2"}, "SLACK_APP_TOKEN must be an app-level token"),
        ({"SLACK_API_URL": "ftp://x"}, "SLACK_API_URL"),
        ({"PORT": "99999"}, "PORT"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"COACHLOOP_ORG": "/nonexistent/org.yml"}, "COACHLOOP_ORG"),
        ({"SWEEPS": "thread"}, "SWEEPS 'thread' must be 'process'"),
    ],
)
def test_bad_settings_are_named(change: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({**GOOD, **change})


def test_serve_stops_with_exit_code_2_on_a_missing_setting(tmp_path: Path) -> None:
    result = run(["serve"], {"SLACK_SIGNING_SECRET": "x"}, tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN is not set" in result.stderr


def test_org_import_deadline_and_calendar(tmp_path: Path) -> None:
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    first = run(["org", "import", str(org)], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "created team Billing" in first.stdout and "SLACK_BOT_TOKEN is not set" in first.stdout
    again = run(["org", "import", str(org)], env, tmp_path)
    assert again.stdout.startswith("no changes")

    deadline = run(["deadline", "--team", "Billing", "--landed", "2026-12-21T10:00:00Z"], env, tmp_path)
    assert deadline.returncode == 0, deadline.stderr
    assert "deadline:             2026-12-31T17:30:00+00:00" in deadline.stdout
    assert "2026-12-24 Closed" in deadline.stdout and "2026-12-25 Christmas Day" in deadline.stdout
    after_hours = run(["deadline", "--team", "Billing", "--landed", "2026-11-27T18:00:00Z"], env, tmp_path)
    assert (
        "effective landing day: 2026-11-30 Mon (landed after hours or on a closed day)" in after_hours.stdout
    )

    calendar = run(["calendar", "--team", "Retentions", "--year", "2027"], env, tmp_path)
    assert "2027-11-25 Thu  Thanksgiving" in calendar.stdout and "Saturday" not in calendar.stdout

    unknown = run(["deadline", "--team", "Nope", "--landed", "2026-12-21T10:00:00Z"], env, tmp_path)
    assert unknown.returncode == 2 and "no team named 'Nope'" in unknown.stderr
    naive = run(["deadline", "--team", "Billing", "--landed", "2026-12-21T10:00:00"], env, tmp_path)
    assert naive.returncode == 2 and "offset" in naive.stderr


def test_a_broken_org_file_changes_nothing(tmp_path: Path) -> None:
    org = tmp_path / "org.yml"
    org.write_text("teams:\n  - name: A\n    team_leader: {email: nope}\n")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    assert run(["db", "upgrade"], env, tmp_path).returncode == 0
    result = run(["org", "import", str(org)], env, tmp_path)
    assert result.returncode == 2
    assert "org.yml:3: teams[0].team_leader.email: 'nope' is not an email address" in result.stderr
    calendar = run(["calendar", "--team", "A", "--year", "2027"], env, tmp_path)
    assert calendar.returncode == 2
