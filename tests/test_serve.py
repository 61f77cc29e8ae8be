"""`coachloop serve` as it runs in production, pointed at the Slack stand-in by SLACK_API_URL:
a signed score travels to an acknowledged agreement through standard Slack payloads alone."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bot.app.demo import post_score, sample_scores
from bot.app.server import free_port
from bot.standin.client import SlackUserAgent, wait_for
from bot.standin.server import SlackStandIn
from tests.conftest import sample_org


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_serve_carries_a_score_to_an_acknowledged_agreement(standin: SlackStandIn, tmp_path: Path) -> None:
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    port = free_port()
    signing = secrets.token_hex(16)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACHLOOP_", "DATABASE_URL"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": signing,
        "QA_WEBHOOK_SECRET": webhook_secret,
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org),
        "PORT": str(port),
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url) or proc.poll() is not None, timeout=20, what="serve to start")
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        status, answer = post_score(url, webhook_secret, sample_scores(datetime.now(UTC))[0])
        assert status == 202 and answer["status"] == "case_opened"

        def message(user: str, kind: str, containing: str = "") -> dict | None:  # type: ignore[type-arg]
            for m in standin.messages(standin.dm_of(user)):
                key = (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")
                if kind in key and containing in json.dumps(m["blocks"]):
                    return m
            return None

        people = SlackUserAgent(url, signing, standin)
        leader_dm = wait_for(lambda: message("U0PRIYA", "leader_dm"), timeout=10, what="the leader's DM")
        view = people.open_modal("U0PRIYA", standin.dm_of("U0PRIYA"), leader_dm, "open_plan")
        assert people.submit("U0PRIYA", view) == (200, None)
        agreement = wait_for(lambda: message("U0ANA", "agent_agreement"), timeout=10, what="the agreement")
        people.click("U0ANA", standin.dm_of("U0ANA"), agreement, "ack_agreement")
        wait_for(
            lambda: message("U0PRIYA", "leader_dm", "acknowledged the action"),
            timeout=10,
            what="the leader's DM to show the acknowledgement",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
