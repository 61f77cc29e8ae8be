"""Three `coachloop serve` processes on one PostgreSQL database, as behind a load balancer: scores
(each delivered twice, to two replicas at once) and Slack interactions arrive while every replica's
sweeps run, one replica is restarted midway, and still every score is stored once, every leader DM
and agreement is sent once, and every timer fires once."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from bot.app.demo import post_score
from bot.app.server import free_port
from bot.standin.client import SlackUserAgent, wait_for
from bot.standin.server import SlackStandIn
from storage.db import Database
from storage.models import AuditEntry, Case, Evaluation, Timer
from tests.conftest import empty_database, pg_schema_url
from tests.payloads import evaluation

pytestmark = pytest.mark.postgres
TEAMS, AGENTS_PER_TEAM = 3, 6


def org_yaml() -> tuple[str, list[tuple[str, str, str]]]:
    """Teams open every day, all day: nudges are due whenever the test runs."""
    users: list[tuple[str, str, str]] = []
    teams = []
    for t in range(TEAMS):
        leader, boss = (
            (f"U0L{t}", f"lead{t}@example.com", f"Lead {t}"),
            (f"U0E{t}", f"boss{t}@example.com", f"Boss {t}"),
        )
        agents = [(f"U0A{t}{a}", f"agent{t}{a}@example.com", f"Agent {t}{a}") for a in range(AGENTS_PER_TEAM)]
        users += [leader, boss, *agents]
        agent_lines = "\n".join(f"      - {{email: {email}}}" for _, email, _ in agents)
        teams.append(
            f"  - name: Team {t}\n    team_leader: {{email: {leader[1]}}}\n"
            f"    escalate_to: [{{email: {boss[1]}}}]\n    agents:\n{agent_lines}"
        )
    head = (
        "defaults:\n  timezone: UTC\n  working_days: [mon, tue, wed, thu, fri, sat, sun]\n"
        '  business_hours: {start: "00:00", end: "23:59"}\n  window_working_days: 5\nteams:\n'
    )
    return head + "\n".join(teams) + "\n", users


class Replica:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.port, self.log = env, free_port(), log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = self.log.open("ab")
        command = [sys.executable, "-m", "bot.app.cli", "serve"]
        env = {**self.env, "PORT": str(self.port)}
        self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


def post_via(replicas: list[Replica], first: int, secret: str, payload: dict[str, Any]) -> tuple[int, Any]:
    """What a load balancer and a Standard Webhooks sender do together: a replica that does not answer
    is skipped for the next one, and a 5xx (nothing stored) is sent again."""
    for i in range(first, first + 2 * len(replicas)):
        try:
            status, answer = post_score(replicas[i % len(replicas)].url, secret, payload)
        except OSError:  # refused while it restarts, or cut off mid-answer (a retry then gets the repeat)
            continue
        if status < 500:
            return status, answer
    raise RuntimeError("no replica answered")


def test_three_replicas_on_one_database(
    standin: SlackStandIn, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db: Database = empty_database("postgres", tmp_path, request)
    org_text, users = org_yaml()
    for user_id, email, name in users:
        standin.add_user(user_id, email, name, tz="UTC")
    org = tmp_path / "org.yml"
    org.write_text(org_text)
    signing = secrets.token_hex(16)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "COACHLOOP_", "DATABASE_URL", "QA_"))
        },
        "DATABASE_URL": pg_schema_url(db.url, str(db.schema)),
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": signing,
        "QA_WEBHOOK_SECRET": webhook_secret,
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org),
        "SWEEP_INTERVAL_SECONDS": "1",
        "LOG_FORMAT": "json",
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "db", "upgrade"], env=env, capture_output=True
    )
    assert migrated.returncode == 0, migrated.stderr
    replicas = [Replica(env, tmp_path / f"replica{i}.log") for i in range(3)]
    try:
        for r in replicas:
            r.start()
        # Each replica looks up the org's 24 people at start: 72 users.lookupByEmail, more than Slack
        # answers in a minute (about 50), so the last of them wait out its rate limit.
        wait_for(lambda: all(r.ready() for r in replicas), timeout=90, what="three replicas to start")
        run_the_loop(db, standin, replicas, signing, webhook_secret, users)
    finally:
        for r in replicas:
            if r.proc is not None and r.proc.poll() is None:
                r.stop()
    codes = [r.proc.returncode for r in replicas if r.proc is not None]
    assert codes == [0, 0, 0], [r.log.read_text()[-3000:] for r in replicas]
    db.dispose()


def run_the_loop(
    db: Database,
    standin: SlackStandIn,
    replicas: list[Replica],
    signing: str,
    webhook_secret: str,
    users: list[tuple[str, str, str]],
) -> None:
    agents = [(uid, email) for uid, email, _ in users if uid.startswith("U0A")]
    now = datetime.now(UTC)
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def deliver_twice(n: int, payload: dict[str, Any]) -> None:
        """The QA platform retries: the same score reaches two replicas at once."""
        with ThreadPoolExecutor(2) as pair:
            results = list(pair.map(lambda i: post_via(replicas, n + i, webhook_secret, payload), (0, 1)))
        with lock:
            for status, _ in results:
                answers[status] += 1

    def scores(round_: int, whose: list[tuple[str, str]]) -> None:
        with ThreadPoolExecutor(12) as pool:
            for n, (_, email) in enumerate(whose):
                payload = evaluation(
                    id=f"ev-{round_}-{email}",
                    agent={"email": email},
                    landed_at=(now - timedelta(minutes=30 - round_)).isoformat(),
                )
                pool.submit(deliver_twice, n, payload)

    scores(1, agents)
    with db.unit_of_work() as session:
        case_of = {c.agent.slack_id: c.id for c in session.scalars(select(Case))}
    assert len(case_of) == len(agents)

    def posted(key_part: str) -> list[str]:
        keys = [
            (c.args.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")
            if isinstance(c.args.get("metadata"), dict)
            else json.loads(c.args.get("metadata") or "{}").get("event_payload", {}).get("dedupe_key", "")
            for c in standin.calls_to("chat.postMessage")
        ]
        return [k for k in keys if key_part in k]

    wait_for(
        lambda: len(set(posted(":leader_dm"))) == len(agents) or None, timeout=20, what="every leader DM"
    )

    # Round two (for agents whose case still awaits its conversation: the score joins it), while
    # leaders plan and agents acknowledge the other cases, and replica 0 restarts.
    planned = [uid for uid, _ in agents[::2]]
    unplanned = agents[1::2]
    people = [SlackUserAgent(r.url, signing, standin) for r in replicas]

    def message(user: str, key: str) -> dict[str, Any] | None:
        for m in standin.messages(standin.dm_of(user)):
            if (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key") == key:
                return m
        return None

    def plan_and_acknowledge(i: int, agent: str) -> None:
        case_id = case_of[agent]
        leader = f"U0L{agent[3]}"
        click, submit = people[1 + i % 2], people[2 - i % 2]  # never the restarting replica
        dm = wait_for(lambda: message(leader, f"case:{case_id}:leader_dm"), what="leader DM")
        view = click.open_modal(leader, standin.dm_of(leader), dm, "open_plan")
        assert submit.submit(leader, view) == (200, None)
        agreement = wait_for(
            lambda: message(agent, f"case:{case_id}:agent_agreement"), timeout=20, what="agreement"
        )
        click.click(agent, standin.dm_of(agent), agreement, "ack_agreement")

    with ThreadPoolExecutor(8) as pool:
        flows = [pool.submit(plan_and_acknowledge, i, a) for i, a in enumerate(planned)]
        second = pool.submit(scores, 2, unplanned)
        assert replicas[0].stop() == 0
        replicas[0].start()
        wait_for(replicas[0].ready, timeout=30, what="the restarted replica")
        second.result()
        for flow in flows:
            flow.result()

    def states() -> Counter[str]:
        with db.unit_of_work() as session:
            return Counter(session.scalars(select(Case.state)))

    wait_for(
        lambda: states()["acknowledged"] == len(planned) or None, timeout=20, what="every acknowledgement"
    )

    # Time passes: every pending timer (but the weekly digest) comes due at once, on every replica.
    with db.engine.begin() as conn:
        conn.execute(
            update(Timer)
            .where(Timer.status == "pending", Timer.kind != "digest")
            .values(due_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        due = {
            row.dedupe_key: row.kind
            for row in conn.execute(select(Timer).where(Timer.status == "pending", Timer.kind != "digest"))
        }
    assert {"escalate", "remind_day3", "review_due"} <= set(due.values())

    def timers_done() -> bool | None:
        with db.engine.connect() as conn:
            left = conn.execute(
                select(func.count())
                .select_from(Timer)
                .where(Timer.dedupe_key.in_(list(due)), Timer.status == "pending")
            ).scalar()
            queued = conn.execute(
                text("SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            ).scalar()
        return (left == 0 and queued == 0) or None

    wait_for(timers_done, timeout=30, what="every timer to fire and its messages to go")

    # Every score stored once (one 202 per score, the repeat answered 200 with the original answer).
    with db.unit_of_work() as session:
        assert session.scalar(select(func.count()).select_from(Evaluation)) == len(agents) + len(unplanned)
        assert session.scalar(select(func.count()).select_from(Case)) == len(agents)
        breaches = Counter(
            e.detail["timer"]
            for e in session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action.like("case_%escalat%") | (AuditEntry.action == "case_breached")
                )
            )
        )
        fired = {
            t.dedupe_key: t.status
            for t in session.scalars(select(Timer).where(Timer.dedupe_key.in_(list(due))))
        }
    scores_sent = len(agents) + len(unplanned)
    assert (
        answers[202] == scores_sent
        and answers[200] >= scores_sent
        and sum(answers.values()) == answers[202] + answers[200]
    )
    assert set(fired.values()) == {"done"}
    escalate_timers = [k for k, kind in due.items() if kind == "escalate"]
    assert breaches == Counter(dict.fromkeys(escalate_timers, 1))
    # Every message sent once: no dedupe key was posted twice, and each kind reached everyone it should.
    all_posted = Counter(posted(""))
    assert [k for k, n in all_posted.items() if n > 1] == []
    assert len(posted(":leader_dm")) == len(agents)
    assert len(posted(":agent_agreement")) == len(planned)
    nudges = [
        k for k, kind in due.items() if kind in ("ack_overdue", "ack_reminder", "review_due", "review_chase")
    ]
    assert all(f"{k}:sent" in all_posted for k in nudges)
    assert len(posted(":remind:day3")) == len(unplanned)
