"""What the benchmarks watch and poke: a Slack stand-in that notes when each call arrives, `coachloop
serve` in a process of its own, and the in-process app for timing Home and /coach."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.app.config import Settings
from bot.app.factory import create_bolt_app
from bot.app.server import BackgroundServer, free_port
from bot.app.services import Services, slack_client
from bot.clock import SystemClock
from bot.standin.client import SlackUserAgent
from bot.standin.server import SlackStandIn
from handlers.http import create_web_app
from scheduler.sweeps import Sweeps
from storage.db import Database


class WatchedStandIn(SlackStandIn):
    """The stand-in, noting when each Web API call and response_url answer arrives."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.arrived = threading.Condition()
        self.log: list[tuple[float, str, str, str]] = []  # (perf_counter, method, dedupe key, user)

    def _record(self, method: str, args: dict[str, Any], ok: bool, error: str | None = None) -> None:
        # Keep only what the benchmarks read: a long run would otherwise hold every call's blocks.
        meta = args.get("metadata")
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = None
        payload = (meta.get("event_payload") or {}) if isinstance(meta, dict) else {}
        key = payload.get("dedupe_key", "")
        with self.arrived:
            self.log.append((time.perf_counter(), method, str(key), str(args.get("user_id", ""))))
            self.arrived.notify_all()

    def wait(self, match: Any, since: int, timeout: float) -> float | None:
        """Arrival time of the first call from index `since` on that `match`es, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            i = since
            while True:
                while i < len(self.log):
                    entry = self.log[i]
                    if match(entry):
                        return entry[0]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.arrived.wait(left)

    def mark(self) -> int:
        with self.arrived:
            return len(self.log)

    def compact(self) -> None:
        with self.arrived:
            self.log.clear()
        with self._lock:
            for ch in self.channels.values():
                del ch["messages"][:-5]
            self.views = {k: v for k, v in self.views.items() if not k.startswith("VHOME")}


@dataclass
class Secrets:
    signing: str
    webhook: str

    @classmethod
    def new(cls) -> Secrets:
        import base64

        return cls(secrets.token_hex(16), "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())


class ServeProcess:
    """`coachloop serve` as an operator runs it, pointed at the stand-in."""

    def __init__(self, url: str, standin: SlackStandIn, keys: Secrets, sweeps: str = "process") -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SWEEPS": sweeps,
            "DATABASE_URL": url,
            "SLACK_BOT_TOKEN": standin.token,
            "SLACK_SIGNING_SECRET": keys.signing,
            "QA_WEBHOOK_SECRET": keys.webhook,
            "SLACK_API_URL": standin.url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }
        env.pop("COACHLOOP_ORG", None)
        exe = os.path.join(os.path.dirname(sys.executable), "coachloop")
        # Its log goes to a file: a pipe nobody reads would fill up and stop the server mid-run.
        self.log = tempfile.NamedTemporaryFile(prefix="coachloop-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen([exe, "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        _wait_ready(f"{self.url}/readyz", self.proc, self.log.name)

    def rss_mb(self) -> tuple[float, float]:
        """(resident now, peak resident) in MB from /proc, of the web server and its sweeper together
        (the peak is the sum of each one's own peak)."""
        parts = self.memory_parts()
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def pids(self) -> list[int]:
        """The web server's process id, then its sweeper's (when the sweeps run in a process of their own)."""
        return [self.proc.pid, *_children(self.proc.pid)]

    def cpu_seconds(self) -> list[float]:
        """CPU time (user and system) used so far by the web server, then by its sweeper."""
        tick = os.sysconf("SC_CLK_TCK")
        used = []
        for pid in self.pids():
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            used.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
        return used

    def memory_parts(self) -> list[tuple[float, float, float]]:
        """(resident, peak resident, proportional set size) in MB of the web server, then its sweeper.
        The proportional size counts a page shared by n processes as 1/n in each: it does not count
        twice what the two share."""
        parts = []
        for pid in self.pids():
            fields = _proc_fields(f"/proc/{pid}/status")
            pss = _proc_fields(f"/proc/{pid}/smaps_rollup").get("Pss", "0 kB")
            parts.append(tuple(int(v.split()[0]) / 1024 for v in (fields["VmRSS"], fields["VmHWM"], pss)))
        return parts  # type: ignore[return-value]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def _proc_fields(path: str) -> dict[str, str]:
    fields = {}
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


class NoopProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.noop", "--port", str(self.port)],
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/", timeout=1)
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the no-op endpoint did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"coachloop serve exited: see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("coachloop serve did not become ready")


@dataclass
class InProcessApp:
    """The Bolt app over HTTP in this process, with the sweeps at hand (for timing one request at a time)."""

    services: Services
    server: BackgroundServer
    people: SlackUserAgent
    sweeps: Sweeps

    @classmethod
    def start(cls, db: Database, standin: SlackStandIn) -> InProcessApp:
        keys = Secrets.new()
        settings = Settings(
            database_url=db.url,
            slack_bot_token=standin.token,
            slack_signing_secret=keys.signing,
            qa_webhook_secret=keys.webhook,
            slack_api_url=standin.url,
        )
        services = Services(
            settings=settings, db=db, clock=SystemClock(), slack=slack_client(settings, interactive=False)
        )
        server = BackgroundServer(create_web_app(services, create_bolt_app(services))).start()
        return cls(services, server, SlackUserAgent(server.url, keys.signing, standin), Sweeps(services))

    def stop(self) -> None:
        self.server.stop()
