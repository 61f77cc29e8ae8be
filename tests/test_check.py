"""`coachloop check` against the Slack stand-in: a good setup passes, each planted misconfiguration is
found with its fix, and the command exits non-zero when anything is wrong."""

from __future__ import annotations

import base64
import io
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app.check import run_check
from bot.clock import FixedClock
from bot.standin.server import SlackStandIn
from tests.conftest import MONDAY_AFTERNOON, make_database, sample_org


@pytest.fixture
def setup(standin: SlackStandIn, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    db = make_database("sqlite", tmp_path, request)
    db.dispose()
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    env = {
        "DATABASE_URL": db.url,
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "QA_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org),
    }
    return {"env": env, "standin": standin, "org": org, "tmp": tmp_path}


def check(setup: dict[str, Any]) -> tuple[int, str]:
    out = io.StringIO()
    code = run_check(setup["env"], out, clock=FixedClock(MONDAY_AFTERNOON))
    return code, out.getvalue()


def test_a_good_setup_passes_and_shows_each_teams_next_deadline(setup: dict[str, Any]) -> None:
    code, out = check(setup)
    assert code == 0, out
    assert "No problems found." in out
    assert "ok       Slack token: works: bot coachloop (U0COACHBOT) in Stand-in" in out
    assert "ok       Slack scopes: the token has every scope manifest.yml asks for" in out
    assert "ok       database: reachable and at revision" in out
    assert "all 8 people in the org file are Slack users" in out
    assert "the bot can post in every escalation channel (1)" in out
    assert "team Billing (Europe/London, mon,tue,wed,thu,fri, holidays GB/ENG" in out
    assert "a score landing now is due Mon 30 Nov 2026 17:30 GMT" in out
    assert (
        "team Retentions (America/New_York" in out and "due Tue 01 Dec 2026 17:30 EST" in out
    )  # Thanksgiving skipped
    assert "connectors: none configured" in out
    assert setup["standin"].calls_to("auth.test")


def _remove(mapping: dict[str, Any], key: str) -> None:
    del mapping[key]


PLANTED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "revoked token",
        lambda s: s["env"].update(SLACK_BOT_TOKEN="xoxb-revoked"),
        "auth.test refused the token (invalid_auth)",
    ),
    (
        "user token",
        lambda s: s["env"].update(SLACK_BOT_TOKEN="xoxp-1"),
        "SLACK_BOT_TOKEN: is not a bot token",
    ),
    (
        "missing scope",
        lambda s: s["standin"].scopes.remove("users:read.email"),
        "the token lacks users:read.email",
    ),
    (
        "signing secret",
        lambda s: s["env"].update(SLACK_SIGNING_SECRET="xoxb-pasted-token"),
        "SLACK_SIGNING_SECRET: is not a Slack signing secret",
    ),
    (
        "webhook secret prefix",
        lambda s: s["env"].update(QA_WEBHOOK_SECRET="secret"),
        "QA_WEBHOOK_SECRET: does not start with whsec_",
    ),
    (
        "webhook secret short",
        lambda s: s["env"].update(QA_WEBHOOK_SECRET="whsec_c2hvcnQ="),
        "holds 5 bytes; Standard Webhooks secrets hold 24 to 64",
    ),
    (
        "database not migrated",
        lambda s: s["env"].update(DATABASE_URL=f"sqlite:///{s['tmp'] / 'new.db'}"),
        "database: there is no SQLite file at",
    ),
    (
        "database empty",
        lambda s: (
            (s["tmp"] / "empty.db").write_bytes(b"")
            or s["env"].update(DATABASE_URL=f"sqlite:///{s['tmp'] / 'empty.db'}")
        ),
        "database: the database has no coachloop tables yet",
    ),
    (
        "database unreachable",
        lambda s: s["env"].update(DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x"),
        "database: cannot be reached",
    ),
    (
        "person not in Slack",
        lambda s: _remove(s["standin"].users, "U0ANA"),
        "ana.ruiz@example.com (agent in Billing) is not a Slack user",
    ),
    (
        "slack_id of someone else",
        lambda s: s["org"].write_text(sample_org().replace("U0TOMHALE", "U0LENA")),
        "tom.hale@example.com (agent in Billing): Slack user U0LENA is lena.ito@example.com",
    ),
    (
        "deactivated",
        lambda s: s["standin"].users["U0DANA"].update(deleted=True),
        "dana.okafor@example.com (escalation contact of Billing) has been deactivated",
    ),
    (
        "channel missing",
        lambda s: _remove(s["standin"].channels, "C0LEADERS"),
        "#cx-leadership (escalations of Retentions) does not exist",
    ),
    (
        "channel archived",
        lambda s: s["standin"].add_channel("C0LEADERS", "cx-leadership", archived=True, bot_member=True),
        "#cx-leadership (escalations of Retentions) is archived",
    ),
    (
        "bot not in channel",
        lambda s: s["standin"].add_channel("C0LEADERS", "cx-leadership"),
        "the bot is not a member, so it cannot post there",
    ),
    (
        "private channel, not invited",
        lambda s: s["standin"].add_channel("C0LEADERS", "cx-leadership", private=True),
        "does not exist, or is private and the bot is not in it",
    ),
    (
        "channels not readable",
        lambda s: s["standin"].scopes.remove("channels:read"),
        "could not list channels (missing_scope)",
    ),
    (
        "time zone",
        lambda s: s["org"].write_text(sample_org().replace("America/New_York", "America/Gotham")),
        "'America/Gotham' is not an IANA time zone",
    ),
    (
        "holiday country",
        lambda s: s["org"].write_text(sample_org().replace("country: US", "country: XX")),
        "'XX' is not a supported country code",
    ),
    ("no org file", lambda s: s["env"].pop("COACHLOOP_ORG"), "org file: none given"),
    ("port", lambda s: s["env"].update(PORT="http"), "PORT 'http' must be a port number"),
]


@pytest.mark.parametrize(("planted", "found"), [(p[1], p[2]) for p in PLANTED], ids=[p[0] for p in PLANTED])
def test_each_planted_misconfiguration_is_found(
    setup: dict[str, Any], planted: Callable[[dict[str, Any]], None], found: str
) -> None:
    planted(setup)
    code, out = check(setup)
    assert code == 1
    assert found in out, out
    problem = next(line for line in out.splitlines() if found in line or found.split(":")[0] in line)
    following = out.splitlines()[out.splitlines().index(problem) + 1]
    assert problem.startswith("PROBLEM") and following.strip().startswith("fix: ")
    assert "No problems found." not in out


def test_the_command_exits_non_zero_on_a_problem(setup: dict[str, Any]) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QA_", "COACHLOOP_", "DATABASE"))
    }
    run = [sys.executable, "-m", "bot.app.cli", "check", "--org", str(setup["org"])]
    good = subprocess.run(run, env={**env, **setup["env"]}, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    setup["standin"].scopes.remove("im:history")
    bad = subprocess.run(run, env={**env, **setup["env"]}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "the token lacks im:history" in bad.stdout


def test_a_configured_connector_must_answer(setup: dict[str, Any]) -> None:
    from bot.standin.zendesk_qa import BILLING_SCORECARD, ZendeskQAStandIn

    with ZendeskQAStandIn("zqa-token") as zqa:
        zqa.add_workspace("101", "Billing QA", [BILLING_SCORECARD])
        setup["org"].write_text(sample_org() + "\nzendesk_qa:\n  subdomain: acme\n  workspaces: ['101']\n")
        setup["env"].update(ZENDESK_QA_API_URL=zqa.url, ZENDESK_QA_TOKEN="zqa-token")
        code, out = check(setup)
        assert code == 0, out
        assert f"Zendesk QA: answers at {zqa.url}; 1 workspace(s) readable" in out

        setup["env"].update(ZENDESK_QA_TOKEN="revoked")
        code, out = check(setup)
        assert code == 1 and "refused or did not answer" in out and "check ZENDESK_QA_TOKEN" in out

        setup["env"].update(ZENDESK_QA_TOKEN="zqa-token")
        setup["org"].write_text(sample_org() + "\nzendesk_qa:\n  subdomain: acme\n  workspaces: ['303']\n")
        code, out = check(setup)
        assert code == 1 and "workspace 303 is not among those the token can read" in out

        del setup["env"]["ZENDESK_QA_TOKEN"]
        code, out = check(setup)
        assert code == 1 and "ZENDESK_QA_TOKEN is not set" in out
