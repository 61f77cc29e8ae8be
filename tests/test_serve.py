"""`coachloop serve` as it runs in production, pointed at the Slack stand-in by SLACK_API_URL:
a signed score travels to an acknowledged agreement through standard Slack payloads alone."""

from __future__ import annotations

import base64
import gc
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app.demo import post_score, sample_scores
from bot.app.server import free_port, tune_collector_for_serving
from bot.standin.client import SlackUserAgent, wait_for
from bot.standin.server import SlackStandIn
from tests.conftest import sample_org


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the living processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # it ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry.name), cmdline))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def serve_env(standin: SlackStandIn, tmp_path: Path) -> dict[str, str]:
    org = tmp_path / "org.yml"
    org.write_text(sample_org())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "COACHLOOP_", "DATABASE_URL"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "SLACK_BOT_TOKEN": standin.token,
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "QA_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        "SLACK_API_URL": standin.url,
        "COACHLOOP_ORG": str(org),
        "SWEEP_INTERVAL_SECONDS": "3600",  # every DM below goes out because serve woke its sweeper
        "PORT": str(free_port()),
    }
    migrated = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "db", "upgrade"], env=env, capture_output=True, text=True
    )
    assert migrated.returncode == 0, migrated.stderr
    return env


def start_serve(env: dict[str, str], *, own_group: bool = False) -> tuple[subprocess.Popen[str], str]:
    """`own_group`: in a process group of its own, with its sweeper, to be signalled as one."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.app.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_group,
    )
    url = f"http://127.0.0.1:{env['PORT']}"
    wait_for(lambda: _ready(url) or proc.poll() is not None, timeout=20, what="serve to start")
    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
    return proc, url


def sweepers(pid: int) -> list[int]:
    return [child for child, cmdline in children(pid) if "sweeper" in cmdline]


def metric(url: str, sample: str, default: float | None = None) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(sample + " ")]
    if not values and default is not None:
        return default
    assert len(values) == 1, (sample, text)
    return values[0]


def sweeps_done(url: str) -> float:
    return metric(url, 'coachloop_sweep_seconds_count{sweep="outbox"}', default=0.0)


def dm(standin: SlackStandIn, user: str, kind: str, containing: str = "") -> dict[str, Any] | None:
    for m in standin.messages(standin.dm_of(user)):
        key = (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")
        if kind in key and containing in json.dumps(m["blocks"]):
            return m
    return None


@pytest.mark.parametrize("sweeps", ["process", "in-process"])
def test_serve_carries_a_score_to_an_acknowledged_agreement(
    standin: SlackStandIn, tmp_path: Path, sweeps: str
) -> None:
    """By default every message goes out from the sweeper process `serve` started, woken at once across
    processes (its own schedule is an hour away), and the web server's /metrics counts what the sweeper
    sent; with SWEEPS=in-process there is one process, and the same happens."""
    env = {**serve_env(standin, tmp_path), "SWEEPS": sweeps}
    signing, webhook_secret = env["SLACK_SIGNING_SECRET"], env["QA_WEBHOOK_SECRET"]
    proc, url = start_serve(env)
    try:
        assert len(sweepers(proc.pid)) == (1 if sweeps == "process" else 0), children(proc.pid)
        assert post_score(url, "whsec_" + "A" * 32, sample_scores(datetime.now(UTC))[0])[0] == 401
        status, answer = post_score(url, webhook_secret, sample_scores(datetime.now(UTC))[0])
        assert status == 202 and answer["status"] == "case_opened"

        people = SlackUserAgent(url, signing, standin)
        leader_dm = wait_for(lambda: dm(standin, "U0PRIYA", "leader_dm"), timeout=10, what="the leader's DM")
        view = people.open_modal("U0PRIYA", standin.dm_of("U0PRIYA"), leader_dm, "open_plan")
        assert people.submit("U0PRIYA", view) == (200, None)
        agreement = wait_for(
            lambda: dm(standin, "U0ANA", "agent_agreement"), timeout=10, what="the agreement"
        )
        people.click("U0ANA", standin.dm_of("U0ANA"), agreement, "ack_agreement")
        wait_for(
            lambda: dm(standin, "U0PRIYA", "leader_dm", "acknowledged the action"),
            timeout=10,
            what="the leader's DM to show the acknowledgement",
        )
        # The leader's DM, the agreement and the leader's DM again (Home re-publishes count apart),
        # counted once the sweep has recorded the last one (Slack has it a moment before).
        wait_for(
            lambda: metric(url, 'coachloop_outbox_total{result="sent"}') >= 3,
            timeout=10,
            what="the sweep to count the three messages",
        )
        assert metric(url, 'coachloop_webhooks_total{outcome="case_opened"}') == 1
        child = sweepers(proc.pid)
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0
    assert not any(alive(pid) for pid in child)
    # Its log (written from a thread of its own, all of it by the time serve ends): each score's
    # outcome, each refusal's reason, and no line per request.
    output = proc.stdout.read() if proc.stdout else ""
    assert f"evaluation {answer['evaluation_id']}: case_opened" in output
    assert "evaluation refused (401 unauthorized): signature rejected: no signature matches" in output
    assert "POST /webhooks/qa" not in output


def test_a_sweeper_that_dies_is_replaced_and_none_outlives_a_killed_serve(
    standin: SlackStandIn, tmp_path: Path
) -> None:
    env = serve_env(standin, tmp_path)
    proc, url = start_serve(env)
    try:
        (first,) = sweepers(proc.pid)
        wait_for(lambda: sweeps_done(url) >= 1, timeout=20, what="the first sweeper's first sweep")
        before = sweeps_done(url)
        os.kill(first, signal.SIGKILL)
        second = wait_for(
            lambda: next(iter(set(sweepers(proc.pid)) - {first}), None), timeout=20, what="another sweeper"
        )
        # Its first sweep is over: the DM below goes out because serve wakes the new sweeper.
        wait_for(lambda: sweeps_done(url) > before, timeout=20, what="the new sweeper's first sweep")
        assert metric(url, "coachloop_sweeper_restarts_total") == 1
        status, _ = post_score(url, env["QA_WEBHOOK_SECRET"], sample_scores(datetime.now(UTC))[0])
        assert status == 202
        wait_for(lambda: dm(standin, "U0PRIYA", "leader_dm"), timeout=10, what="the DM, from the new sweeper")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    wait_for(lambda: not alive(second), timeout=20, what="the sweeper to end with serve")


def test_stopping_serve_and_its_sweeper_together_starts_no_other_sweeper(
    standin: SlackStandIn, tmp_path: Path
) -> None:
    """systemd (KillMode=control-group) and Ctrl-C signal every process of the group: serve does not
    take its sweeper's end for a crash and start another while it drains. Metrics directories left by a
    killed serve are removed when the next one starts."""
    ended = subprocess.Popen(["true"])
    ended.wait()  # its process id no longer runs
    left = Path(tempfile.gettempdir()) / f"coachloop-metrics-{ended.pid}-left"
    left.mkdir()
    env = serve_env(standin, tmp_path)
    proc, _ = start_serve(env, own_group=True)
    (sweeper,) = sweepers(proc.pid)
    assert not left.exists()
    # A request in flight keeps the web server draining for two seconds after the signal.
    with socket.create_connection(("127.0.0.1", int(env["PORT"])), timeout=30) as held:
        held.sendall(b"POST /webhooks/qa HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{")
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(2)
        held.sendall(b"}")
        assert held.recv(100).startswith(b"HTTP/1.1 401")
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "starting another" not in output, output
    assert not alive(sweeper)
    assert not left.exists()


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """The test process's collector as it was, after a test that tunes it as a serving process does."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_what_startup_built_is_left_out_of_the_collectors_walks(collector_restored: None) -> None:
    built = [[n] for n in range(1000)]  # containers the collector would walk
    tune_collector_for_serving()
    assert gc.get_freeze_count() >= len(built)
    walked = {id(obj) for generation in range(3) for obj in gc.get_objects(generation=generation)}
    assert not any(id(b) in walked for b in built)


def test_the_objects_of_a_batch_of_scores_do_not_start_a_collection(collector_restored: None) -> None:
    """A batch allocates thousands of containers; the collector waits for more than that."""
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    tune_collector_for_serving()
    gc.callbacks.append(count)
    try:
        batch = [{"score": n, "items": [n]} for n in range(2000)]  # 4,000 live containers
    finally:
        gc.callbacks.remove(count)
    assert len(batch) == 2000 and collections == []
