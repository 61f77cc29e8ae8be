"""The reliability proofs: Slack faults on 30% of calls, `serve` killed with SIGKILL under load, and
replicas (two `serve` processes and three `coachloop sweep` runs) on one PostgreSQL database."""

from __future__ import annotations

import http.client
import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.app.demo import post_score
from bot.app.server import free_port
from bot.clock import FixedClock
from bot.standin.client import wait_for
from bot.standin.server import Fault, SlackStandIn
from scheduler.delivery import OutboxSweep
from storage.db import Database
from storage.models import Case, Evaluation, OutboxMessage, Timer
from storage.outbox import LEASE
from tests.conftest import Stack, build_stack, make_database
from tests.payloads import evaluation
from tests.test_delivery_faults import delivered_keys
from tests.test_startup import ready, serve_env

TEAMS, AGENTS = 4, 4


def big_org(standin: SlackStandIn, *, gone_leader: bool = False) -> str:
    """TEAMS teams of AGENTS agents, open every day and hour (nudges are due at once, whenever the
    test runs); with `gone_leader`, the last team's leader has left Slack (a permanent error)."""
    standin.add_user("U0SAM", "ops@example.com", "Sam Ops")
    lines = [
        "defaults:",
        "  timezone: UTC",
        "  working_days: [mon, tue, wed, thu, fri, sat, sun]",
        '  business_hours: {start: "00:00", end: "23:59"}',
        "admins: [{email: ops@example.com, name: Sam Ops}]",
        "teams:",
    ]
    for t in range(TEAMS):
        leader = f"U0L{t}"
        if not (gone_leader and t == TEAMS - 1):
            standin.add_user(leader, f"leader{t}@example.com", f"Leader {t}")
        standin.add_user(f"U0E{t}", f"lead{t}@example.com", f"Escalation {t}")
        lines += [
            f"  - name: Team {t}",
            f"    team_leader: {{email: leader{t}@example.com, name: Leader {t}, slack_id: {leader}}}",
            f"    escalate_to: [{{email: lead{t}@example.com, name: Escalation {t}}}]",
            "    agents:",
        ]
        for a in range(AGENTS):
            standin.add_user(f"U0A{t}{a}", f"agent{t}{a}@example.com", f"Agent {t}{a}")
            lines.append(f"      - {{email: agent{t}{a}@example.com, name: Agent {t}{a}}}")
    return "\n".join(lines) + "\n"


def agent_emails() -> list[str]:
    return [f"agent{t}{a}@example.com" for t in range(TEAMS) for a in range(AGENTS)]


def score(ev_id: str, email: str, landed: datetime) -> dict[str, Any]:
    payload = evaluation(id=ev_id, landed_at=landed.strftime("%Y-%m-%dT%H:%M:%SZ"))
    payload["agent"] = {"email": email}
    return payload


def leader_dm_counts(standin: SlackStandIn, db: Database) -> dict[int, int]:
    """For every case: how many leader DMs for it arrived in its leader's DM."""
    counts = delivered_keys_in(standin)
    with db.unit_of_work() as s:
        return {c.id: counts[f"case:{c.id}:leader_dm"] for c in s.query(Case)}


def delivered_keys_in(standin: SlackStandIn) -> Counter[str]:
    found: Counter[str] = Counter()
    for channel in list(standin.channels):
        for m in standin.messages(channel):
            found[(m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")] += 1
    return found


# -- Slack answering 30% of calls with 429, 500 or a lost answer ------------------------------------


@pytest.fixture
def big_stack(
    request: pytest.FixtureRequest, tmp_path: Path, standin: SlackStandIn, clock: FixedClock
) -> Iterator[Stack]:
    db = make_database("sqlite", tmp_path, request)
    s = build_stack(db, standin, clock, big_org(standin, gone_leader=True))
    yield s
    s.server.stop()
    db.dispose()


def test_slack_faults_on_30_percent_of_calls(big_stack: Stack) -> None:
    stack = big_stack
    random.seed(30)  # which calls fail is random, but the same on every run
    stack.standin.add_fault(Fault("*", "ratelimited", rate=0.10, retry_after=1))
    stack.standin.add_fault(Fault("*", "server_error", rate=0.11))
    stack.standin.lost_answers("*", rate=0.125)
    for i, email in enumerate(agent_emails() * 2):
        assert stack.post_score(score(f"ev-{i}", email, stack.clock.now()))[0] in (200, 202)
    for _ in range(60):
        stack.sweep()
        stack.clock.advance(timedelta(minutes=15))
        with stack.db.unit_of_work() as s:
            if not s.query(OutboxMessage).filter(OutboxMessage.status.in_(("pending", "sending"))).count():
                break
    with stack.db.unit_of_work() as s:
        statuses = Counter(r.status for r in s.query(OutboxMessage))
        failed = [(r.kind, r.last_error) for r in s.query(OutboxMessage).filter_by(status="failed")]
    assert statuses["pending"] == statuses["sending"] == 0, statuses
    dms = leader_dm_counts(stack.standin, stack.db)
    gone = {cid for cid, n in dms.items() if n == 0}
    assert len(dms) == TEAMS * AGENTS
    assert len(gone) == AGENTS and all(dms[c] == 1 for c in dms if c not in gone), dms
    assert {e for _, e in failed} == {"user_not_found"} and len(failed) >= AGENTS, failed
    alerts = [m["text"] for m in stack.dm("U0SAM") if "could not be delivered" in m["text"]]
    assert len(alerts) == len(failed) and all("user_not_found" in a for a in alerts)
    assert max(delivered_keys(stack).values()) == 1  # nothing, of any kind, twice


# -- serve killed with SIGKILL under load -----------------------------------------------------------


def database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Database]:
    """A migrated, empty database for `serve` processes, as `coachloop db upgrade` leaves it."""
    url, db = _empty_database(kind, tmp_path, request)
    db.create_schema()
    return url, db


def _empty_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, Database]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        return url, Database(url)
    base = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    request.addfinalizer(drop)
    return f"{base}?options=-csearch_path%3D{schema}", Database(base, schema=schema)


def start_serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "serve"],
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the web server and its sweeper, killed together
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: ready(url) or proc.poll() is not None, timeout=60, what="serve to start")
    assert proc.poll() is None, "serve did not start"
    return proc, url


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_serve_killed_repeatedly_loses_no_score_and_doubles_no_dm(
    kind: str, live_standin: SlackStandIn, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    standin = live_standin
    org = tmp_path / "org.yml"
    org.write_text(big_org(standin))
    url, db = database_url(kind, tmp_path, request)
    env = serve_env(standin, url, org, 3000)
    secret = env["QA_WEBHOOK_SECRET"]
    answered: list[str] = []
    numbers = itertools.count()
    emails = itertools.cycle(agent_emails())
    for round_ in range(3):
        proc, base = start_serve(env)
        stop = threading.Event()

        def load(target: str = base, halt: threading.Event = stop) -> None:
            while not halt.is_set():
                ev_id = f"ev-crash-{next(numbers)}"
                try:
                    status, _ = post_score(target, secret, score(ev_id, next(emails), datetime.now(UTC)))
                except (OSError, http.client.HTTPException):
                    continue  # the server was killed mid-request: not answered, nothing promised
                if 200 <= status < 300:
                    answered.append(ev_id)

        senders = [threading.Thread(target=load) for _ in range(3)]
        for t in senders:
            t.start()
        time.sleep(1.5)
        # The web server and its sweeper die together; in the second round the web server alone, and
        # its sweeper finishes the sweep in flight while the next serve's sweeper starts.
        if round_ == 1:
            os.kill(proc.pid, signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        for t in senders:
            t.join(timeout=30)
    proc, _ = start_serve(env)  # restarted: it carries on with what the killed ones left
    time.sleep(2)
    proc.terminate()
    proc.wait(timeout=20)
    # Another sweeper takes over whatever a killed process still held, once its lease ran out; held
    # to Slack's rate limits, it sweeps again until nothing is left to send.
    deadline = time.monotonic() + 120
    while True:
        at = datetime.now(UTC) + LEASE + timedelta(seconds=1)
        OutboxSweep(db, standin_client(standin), FixedClock(at)).drain()
        with db.unit_of_work() as s:
            waiting = s.query(OutboxMessage).filter(OutboxMessage.status.in_(("pending", "sending"))).count()
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(1)
    with db.unit_of_work() as s:
        stored = {e for (e,) in s.query(Evaluation.external_id)}
    assert answered and set(answered) <= stored
    dms = leader_dm_counts(standin, db)
    with db.unit_of_work() as s:
        statuses = Counter(r.status for r in s.query(OutboxMessage))
    assert dms and all(n == 1 for n in dms.values()), ({c: n for c, n in dms.items() if n != 1}, statuses)
    print(f"{kind}: {len(answered)} scores answered 2xx, all stored; {len(dms)} cases, one leader DM each")
    db.dispose()


def standin_client(standin: SlackStandIn) -> Any:
    from slack_sdk import WebClient

    return WebClient(token=standin.token, base_url=standin.url, timeout=10, retry_handlers=[])


# -- replicas on one PostgreSQL database ------------------------------------------------------------


@pytest.mark.postgres
def test_two_serves_and_three_sweeps_send_every_due_message_once(
    live_standin: SlackStandIn, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    standin = live_standin
    org = tmp_path / "org.yml"
    org.write_text(big_org(standin))
    url, db = database_url("postgres", tmp_path, request)
    env = serve_env(standin, url, org, 3000)
    first, base = start_serve(env)
    second, _ = start_serve(env)
    try:
        # Scores that landed 9 days ago: reminders and both escalations fall due at once.
        landed = datetime.now(UTC) - timedelta(days=9)
        for i, email in enumerate(agent_emails()):
            assert post_score(base, env["QA_WEBHOOK_SECRET"], score(f"ev-old-{i}", email, landed))[0] == 202
        sweeps = [
            subprocess.Popen(
                [sys.executable, "-m", "bot.app.cli", "sweep"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120) for p in sweeps]
        assert all(p.returncode == 0 for p in sweeps), outputs

        def settled() -> bool:
            now = datetime.now(UTC)
            with db.unit_of_work() as s:
                timers = s.query(Timer).filter(Timer.status == "pending", Timer.due_at <= now).count()
                due = s.query(OutboxMessage).filter(OutboxMessage.due_at <= now)
                return timers == 0 and all(r.status in ("sent", "skipped") for r in due)

        wait_for(settled, timeout=90, what="every due message to go out")
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(timeout=20)
    counts = delivered_keys_in(standin)
    with db.unit_of_work() as s:
        rows = list(
            s.query(OutboxMessage).filter(OutboxMessage.updates_key.is_(None), OutboxMessage.kind != "home")
        )
        escalated = s.query(Case).filter(Case.breached_at.is_not(None)).count()
    sent = [r.dedupe_key for r in rows if r.status == "sent"]
    assert sent and all(counts[k] == 1 for k in sent), {k: counts[k] for k in sent if counts[k] != 1}
    assert sum(":remind:" in k for k in sent) >= TEAMS * AGENTS, [k for k in sent if "leader_dm" not in k]
    assert sum(k.startswith("escalation:") for k in sent) >= TEAMS and escalated == TEAMS * AGENTS
    db.dispose()
