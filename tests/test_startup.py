"""Starting up: the org import looks people up with no transaction open, a broken org file stops
`serve` with exit 2, and replicas started together on one empty database all come up."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.app.cli import main
from bot.app.server import free_port
from bot.standin.client import wait_for
from bot.standin.server import SlackStandIn
from storage.db import Database
from storage.models import Person
from tests.conftest import sample_org

BROKEN_ORG = "teams:\n  - name: Billing\n    agents: [{email: ana.ruiz@example.com}]\n"


def serve_env(standin: SlackStandIn, database_url: str, org: Path, port: int) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACHLOOP_", "DATABASE_URL"))}
    return {
        **keep,
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": "s" * 32,
        "QA_WEBHOOK_SECRET": "whsec_" + "A" * 32,
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org),
        "PORT": str(port),
    }


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_org_import_looks_people_up_before_it_opens_a_transaction(
    standin: SlackStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The autouse guard in conftest fails this test if users.lookupByEmail runs inside a transaction.
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    url = f"sqlite:///{tmp_path / 'org.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", standin.token)
    monkeypatch.setenv("SLACK_API_URL", standin.url)
    assert main(["org", "import", str(org)]) == 0
    assert standin.calls_to("users.lookupByEmail")
    db = Database(url)
    with db.unit_of_work() as s:
        assert s.query(Person).filter_by(email="priya.shah@example.com").one().slack_id == "U0PRIYA"
    db.dispose()


def test_serve_exits_2_with_the_org_files_errors(standin: SlackStandIn, tmp_path: Path) -> None:
    org = tmp_path / "org.yml"
    org.write_text(BROKEN_ORG)
    env = serve_env(standin, f"sqlite:///{tmp_path / 'serve.db'}", org, free_port())
    proc = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "was not imported" in proc.stderr and "team_leader: is required" in proc.stderr
    assert "listening" not in proc.stdout


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_replicas_started_together_on_an_empty_database_all_come_up(
    standin: SlackStandIn, tmp_path: Path, empty_postgres_url: str
) -> None:
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    ports = [free_port() for _ in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", "serve"],
            env=serve_env(standin, empty_postgres_url, org, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for port in ports
    ]
    try:
        for proc, port in zip(procs, ports, strict=True):
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: ready(url) or proc.poll() is not None, timeout=60, what="serve to start")  # noqa: B023
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
    db = Database(empty_postgres_url)
    with db.unit_of_work() as s:
        assert s.query(Person).count() == 7
    db.dispose()
