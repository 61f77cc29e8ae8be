"""`make bench`: the six benchmarks of a large contact centre, on SQLite and PostgreSQL. Each prints its
figures and the ratio to a baseline measured in the same run.

    PYTHONPATH=. .venv/bin/python -m bench.suite [--quick] [--backend sqlite|postgres|both]

1. ingest through `coachloop serve` (sweeps running) vs a no-op Starlette+uvicorn endpoint;
2. Slack acks (slash command, Home opened, button click, modal submission) idle and under full ingest;
3. score -> leader DM, idle and under full ingest;
4. a sweep with nothing due, and sweep(1,000,000 evaluations of history) / sweep(10,000) at equal due work;
5. Home (a leader; leadership over 40 teams) and /coach on 1,000,000 evaluations (vs on 10,000);
6. memory of `serve` with 100,000 open cases (vs with the 1,000-agent org alone).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.loadgen import percentile
from bench.probes import InProcessApp, NoopProcess, Secrets, ServeProcess, WatchedStandIn
from bench.world import (
    HEAD,
    BenchDatabase,
    World,
    agent,
    evaluation_payload,
    leader,
    seed_history,
    seed_open_cases,
    seed_people,
    utcnow,
)
from bot.app.demo import sign_webhook
from bot.standin.rates import RateLimits
from scheduler.pacing import SlackLimits
from storage.models import Case, Timer

PG_URL = os.environ.get(
    "COACHLOOP_BENCH_DATABASE_URL",
    os.environ.get("COACHLOOP_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"


def line(text_: str) -> None:
    print(text_, flush=True)


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {ms(percentile(values, 50))}, p99 {ms(percentile(values, 99))}, max {ms(max(values))} "
        f"(n={len(values)})"
    )


def fix_sequences(bdb: BenchDatabase) -> None:
    """PostgreSQL: move id sequences past the rows inserted with explicit ids."""
    if bdb.backend != "postgres":
        return
    with bdb.db.engine.begin() as conn:
        for table in ("people", "cases", "evaluations", "evaluation_items", "timers"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            )


# --- 1, 2, 3 and the baseline of 6: serve under load ----------------------------------------


class Probes:
    """Slack-signed pokes at the served app, timed from send to the HTTP answer (what Slack waits for)."""

    def __init__(self, serve: ServeProcess, keys: Secrets, standin: WatchedStandIn, world: World) -> None:
        from bot.standin.client import SlackUserAgent

        self.people = SlackUserAgent(serve.url, keys.signing, standin)
        self.serve, self.keys, self.standin, self.world = serve, keys, standin, world
        self.rng = random.Random(11)
        self.clickable: list[tuple[str, str, dict[str, Any]]] = []  # (leader, channel, leader DM)
        self.views: list[tuple[str, dict[str, Any]]] = []  # (leader, plan modal)

    def score(self, n: int) -> tuple[int, Any]:
        payload = evaluation_payload(self.rng, f"probe-{n}-{time.time_ns()}", agent(n)[1], utcnow())
        body = json.dumps(payload)
        request = urllib.request.Request(
            f"{self.serve.url}/webhooks/qa", data=body.encode(),
            headers=sign_webhook(self.keys.webhook, body, utcnow()),
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def dm_latency(self, n: int) -> float | None:
        """A score for probe agent n (no case open): seconds until the leader's DM reaches Slack."""
        mark = self.standin.mark()
        start = time.perf_counter()
        status, body = self.score(n)
        if status != 202 or body.get("status") != "case_opened":
            raise RuntimeError(f"probe score answered {status} {body}")
        key = f"case:{body['case_id']}:leader_dm"
        arrived = self.standin.wait(lambda e: e[1] == "chat.postMessage" and e[2] == key, mark, 60)
        return None if arrived is None else arrived - start

    def prepare_clicks(self, agents: list[int]) -> None:
        """Open a case for each probe agent, wait for the DM, open its plan modal once."""
        for n in agents:
            t = self.world.team_of(n)
            mark = self.standin.mark()
            status, body = self.score(n)
            key = f"case:{body['case_id']}:leader_dm"
            if self.standin.wait(lambda e, k=key: e[1] == "chat.postMessage" and e[2] == k, mark, 60) is None:
                raise RuntimeError("the leader DM of a probe case never came")
            sid = leader(t)[0]
            channel = self.standin.dm_of(sid)
            with self.standin._lock:
                message = next(
                    m for m in reversed(self.standin.channels[channel]["messages"])
                    if (m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key") == key
                )
            message = copy.deepcopy(message)  # as first posted, with its buttons (later updates drop them)
            self.clickable.append((sid, channel, message))
            view = self.people.open_modal(sid, channel, message, "open_plan")
            self.views.append((sid, view))

    def timed(self, kind: str) -> float:
        sid, channel, message = self.rng.choice(self.clickable)
        start = time.perf_counter()
        if kind == "slash command":
            status, _ = self.people.command(sid, "/coach", "")
        elif kind == "Home opened":
            status, _ = self.people.event(
                {"type": "app_home_opened", "user": sid, "channel": channel, "tab": "home"}
            )
        elif kind == "button click":
            self.people.click(sid, channel, message, "open_plan")
            status = 200
        else:
            who, view = self.views.pop() if self.views else self.rng.choice(self.clickable)[:1] + ({},)
            if not view:
                return float("nan")
            status, _ = self.people.submit(who, view)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"{kind} answered {status}")
        return elapsed


KINDS = ("slash command", "Home opened", "button click", "modal submission")


def ack_round(probes: Probes, stop: threading.Event, every: float, out: dict[str, list[float]]) -> None:
    i = 0
    while not stop.is_set():
        kind = KINDS[i % len(KINDS)]
        i += 1
        if kind == "modal submission" and not probes.views:
            continue
        started = time.perf_counter()
        try:
            value = probes.timed(kind)
        except Exception as exc:  # noqa: BLE001 - counted and shown, the probes go on
            out.setdefault(f"{kind} errors", []).append(0.0)
            print(f"     ({kind} failed: {exc})", flush=True)
            value = float("nan")
        if value == value:  # not NaN
            out.setdefault(kind, []).append(value)
        stop.wait(max(0.0, every - (time.perf_counter() - started)))


def run_loadgen(url: str, secret: str, agents_file: str, seconds: float, connections: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", "--url", url, "--secret", secret, "--agents", agents_file,
         "--seconds", str(seconds), "--connections", str(connections)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def serve_benchmarks(backend: str, tmp: str, world: World, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    bdb = BenchDatabase(backend, tmp, PG_URL)
    standin = WatchedStandIn("xoxb-bench-" + os.urandom(4).hex())
    standin.start()
    world.add_users(standin)
    world.import_org(bdb.db, utcnow())
    keys = Secrets.new()
    agents_file = os.path.join(tmp, "agents.txt")
    with open(agents_file, "w", encoding="utf-8") as fh:
        fh.write("\n".join(world.load_emails()))
    serve = ServeProcess(bdb.url, standin, keys, args.sweeps)
    noop = NoopProcess()
    try:
        probes = Probes(serve, keys, standin, world)
        probe_agents = world.probe_agents()
        dm_n = args.dm_probes
        dm_idle_agents, dm_load_agents = probe_agents[:dm_n], probe_agents[dm_n : 2 * dm_n]
        probes.prepare_clicks(probe_agents[2 * dm_n : 2 * dm_n + args.click_cases])

        # 3 (baseline): score -> DM, idle.
        idle_dm = [v for n in dm_idle_agents if (v := probes.dm_latency(n)) is not None]
        # 2 (baseline): acks, idle.
        idle_acks: dict[str, list[float]] = {}
        for _ in range(args.idle_acks):
            for kind in KINDS[:3]:
                idle_acks.setdefault(kind, []).append(probes.timed(kind))
        for _ in range(min(args.idle_acks, len(probes.views) // 3)):
            idle_acks.setdefault(KINDS[3], []).append(probes.timed(KINDS[3]))
        # 6 (baseline): memory of serve with the 1,000-agent org.
        figures["rss_small"] = serve.rss_mb()

        # 1 (baseline): the no-op endpoint.
        noop_load = run_loadgen(noop.url, keys.webhook, agents_file, args.seconds, args.connections)

        # 1, 2, 3 under ingest at full speed.
        stop = threading.Event()
        acks: dict[str, list[float]] = {}
        load_dm: list[float] = []
        missing_dm = [0]

        def dm_loop() -> None:
            time.sleep(1.0)
            for n in dm_load_agents:
                if stop.is_set():
                    return
                value = probes.dm_latency(n)
                if value is None:
                    missing_dm[0] += 1
                else:
                    load_dm.append(value)
                stop.wait(0.5)

        threads = [
            threading.Thread(target=ack_round, args=(probes, stop, 0.1, acks), daemon=True),
            threading.Thread(target=dm_loop, daemon=True),
        ]
        for th in threads:
            th.start()
        profilers = []
        if args.profile:  # the web server, and its sweeper when it runs as a process of its own
            for name, pid in zip(("serve", "sweeper"), serve.pids(), strict=False):
                out = os.path.join(args.profile, f"{name}-{backend}.txt")
                profilers.append(subprocess.Popen(
                    [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record", "--pid", str(pid),
                     "--duration", str(int(args.seconds)), "--format", "raw", "-o", out, "--nonblocking",
                     "--threads"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
        cpu_before = serve.cpu_seconds()
        try:
            serve_load = run_loadgen(serve.url, keys.webhook, agents_file, args.seconds, args.connections)
            cpu = [after - before for before, after in zip(cpu_before, serve.cpu_seconds(), strict=False)]
        finally:
            for profiler in profilers:
                profiler.wait(timeout=60)
            stop.set()
            for th in threads:
                th.join(timeout=90)
        figures["rss_after_load"] = serve.rss_mb()

        ratio = serve_load["rate"] / noop_load["rate"] if noop_load["rate"] else float("nan")
        line(f"  1. ingest ({args.connections} connections, {args.seconds:g} s, "
             f"{serve_load['body_bytes']:,.0f}-byte bodies, 1,000 agents in 40 teams)")
        line(f"     coachloop serve: {serve_load['rate']:,.0f} scores/s, p50 {ms(serve_load['p50'])}, "
             f"p99 {ms(serve_load['p99'])}, max {ms(serve_load['max'])}; answers {serve_load['statuses']}")
        scores = max(serve_load["requests"], 1)
        line(f"     CPU per score: {1000 * sum(cpu) / scores:.2f} ms (web server "
             + "; sweeper ".join(f"{1000 * c / scores:.2f} ms" for c in cpu)
             + f"; the acks and DM probes included), {sum(cpu) / serve_load['seconds']:.2f} cores")
        line(f"     no-op endpoint:  {noop_load['rate']:,.0f} requests/s, p50 {ms(noop_load['p50'])}, "
             f"p99 {ms(noop_load['p99'])}")
        line(f"     ratio serve/no-op: {ratio:.3f}x  (goal >= 1,000 scores/s, p99 < 50 ms, >= 0.15x)")
        line("  2. Slack acks (one every 100 ms)")
        for kind in KINDS:
            under = acks.get(kind, [])
            idle = idle_acks.get(kind, [])
            r = percentile(under, 99) / percentile(idle, 99) if under and idle else float("nan")
            line(f"     {kind:17} idle {summary(idle)}; under ingest {summary(under)}; p99 ratio {r:.1f}x")
        every = [v for vs in acks.values() for v in vs]
        line(f"     all kinds under ingest: {summary(every)}  (goal p99 < 300 ms)")
        r = percentile(load_dm, 99) / percentile(idle_dm, 99) if load_dm and idle_dm else float("nan")
        line("  3. score -> leader DM")
        line(f"     idle {summary(idle_dm)}; under ingest {summary(load_dm)}"
             + (f", {missing_dm[0]} not within 60 s" if missing_dm[0] else "")
             + f"; p99 ratio {r:.1f}x  (goal p99 < 500 ms idle, < 2 s under ingest)")
        figures.update(ingest=serve_load, noop=noop_load, acks=acks, idle_dm=idle_dm, load_dm=load_dm)
    finally:
        serve.stop()
        noop.stop()
        standin.stop()
        bdb.close()
    return figures


# --- 4 and 5: sweeps, Home and /coach as history grows ---------------------------------------


def add_due_work(bdb: BenchDatabase, cases: list[int], now: Any, tag: str) -> None:
    """The same due work at every size: a day-3 reminder timer due now for each of `cases`."""
    rows = [
        dict(dedupe_key=f"case:{cid}:remind:day3:{tag}", kind="remind_day3", case_id=cid,
             due_at=now - timedelta(minutes=1), status="pending")
        for cid in cases
    ]
    with bdb.db.unit_of_work() as s:
        s.execute(insert(Timer), rows)


def fresh_allowance(app: InProcessApp, standin: WatchedStandIn) -> None:
    """Slack's allowances, and the outbox's own pace, as after a quiet minute."""
    app.sweeps.outbox.limits = SlackLimits()
    if standin.rate_limits is not None:
        standin.rate_limits = RateLimits(standin.rate_limits.now)


def timed_sweep(app: InProcessApp) -> tuple[float, Any]:
    start = time.perf_counter()
    report = app.sweeps.run_once()
    return time.perf_counter() - start, report


def home_and_coach(app: InProcessApp, standin: WatchedStandIn, world: World, runs: int) -> dict[str, float]:
    """Median seconds from the signed request to what Slack shows (views.publish / response_url)."""
    out: dict[str, float] = {}
    lead = leader(0)[0]
    some_agent = agent(world.team_agents(0)[3])[0]
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("Home, a team leader", lambda: app.people.event(
            {"type": "app_home_opened", "user": lead, "channel": "D0", "tab": "home"}), "views.publish"),
        ("Home, leadership over 40 teams", lambda: app.people.event(
            {"type": "app_home_opened", "user": HEAD[0], "channel": "D0", "tab": "home"}), "views.publish"),
        ("/coach, a team leader", lambda: app.people.command(lead, "/coach", ""), "response_url"),
        ("/coach @agent", lambda: app.people.command(lead, "/coach", f"<@{some_agent}>"), "response_url"),
        ("/coach, leadership", lambda: app.people.command(HEAD[0], "/coach", ""), "response_url"),
    ]
    for label, send, method in cases:
        samples = []
        for _ in range(runs):
            mark = standin.mark()
            start = time.perf_counter()
            send()
            arrived = standin.wait(lambda e, m=method: e[1] == m, mark, 120)
            if arrived is None:
                raise RuntimeError(f"{label}: no answer within 120 s")
            samples.append(arrived - start)
            settle(standin, method)
        out[label] = statistics.median(samples)
    return out


def settle(standin: WatchedStandIn, method: str, quiet: float = 0.3) -> None:
    """Wait until `method` has not been called for `quiet` seconds: a Home opened while an earlier one
    was rendering is published once more after it, and the next sample must not take that publish
    for its own (nor the benchmark end while it is in flight)."""
    while standin.wait(lambda e: e[1] == method, standin.mark(), quiet) is not None:
        pass


def history_benchmarks(backend: str, tmp: str, world: World, args: argparse.Namespace) -> None:
    bdb = BenchDatabase(backend, tmp, PG_URL)
    standin = WatchedStandIn("xoxb-bench-" + os.urandom(4).hex())
    standin.start()
    world.add_users(standin)
    now = utcnow()
    world.import_org(bdb.db, now)
    app = InProcessApp.start(bdb.db, standin)
    try:
        small, large = args.small_history, args.large_history
        results: dict[int, dict[str, Any]] = {}
        seeded = 0
        open_cases: list[int] = []
        for size in (small, large):
            start = time.perf_counter()
            seed_history(bdb.db, size - seeded, now, seed=size)
            if not open_cases:
                open_cases = seed_open_cases(bdb.db, now, due_in=timedelta(days=3))
            fix_sequences(bdb)
            bdb.analyze()
            seeded = size
            line(f"     (seeded {size:,} evaluations of history in {time.perf_counter() - start:.0f} s)")
            app.sweeps.run_once()  # digest timers and anything left over
            idle = [timed_sweep(app)[0] for _ in range(5)]
            add_due_work(bdb, open_cases[: args.due], now, f"s{size}")
            fresh_allowance(app, standin)  # equal due work: each size starts as after a quiet minute
            due_time, report = timed_sweep(app)
            standin.compact()
            views = home_and_coach(app, standin, world, args.runs)
            results[size] = {
                "idle": statistics.median(idle), "due": due_time, "report": report, "views": views
            }
        s, g = results[small], results[large]
        line(f"  4. sweeps ({args.due} due reminders, each with its DM refresh and Home refreshes)")
        line(f"     nothing due: {ms(s['idle'])} at {small:,} evaluations, {ms(g['idle'])} at {large:,}")
        line(f"     with due work: {ms(s['due'])} at {small:,}, {ms(g['due'])} at {large:,} "
             f"({g['report'].summary()})")
        line(f"     ratio sweep({large:,}) / sweep({small:,}): {g['due'] / s['due']:.2f}x  (goal <= 1.5)")
        line(f"  5. Home and /coach (median of {args.runs}, request to what Slack shows)")
        for label in g["views"]:
            a, b = s["views"][label], g["views"][label]
            line(f"     {label:32} {ms(b)} at {large:,} evaluations; {ms(a)} at {small:,}; "
                 f"ratio {b / a:.1f}x  (goal < 1 s)")
    finally:
        app.stop()
        standin.stop()
        bdb.close()


# --- 6: memory with 100,000 open cases --------------------------------------------------------


def memory_benchmark(backend: str, tmp: str, world: World, args: argparse.Namespace, small: Any) -> None:
    bdb = BenchDatabase(backend, tmp, PG_URL)
    standin = WatchedStandIn("xoxb-bench-" + os.urandom(4).hex())
    standin.start()
    world.add_users(standin)
    now = utcnow()
    world.import_org(bdb.db, now)
    seed_people(bdb.db, args.open_cases - world.agents - world.teams * world.probes_per_team, now)
    seed_open_cases(bdb.db, now, due_in=timedelta(days=3))
    fix_sequences(bdb)
    bdb.analyze()
    with bdb.db.unit_of_work() as s:
        count = s.scalar(select(func.count()).select_from(Case).where(Case.state == "awaiting_conversation"))
    keys = Secrets.new()
    serve = ServeProcess(bdb.url, standin, keys, args.sweeps)
    try:
        probes = Probes(serve, keys, standin, world)
        time.sleep(2)  # the first sweep
        for _ in range(3):
            for sid in (HEAD[0], leader(0)[0]):
                probes.people.event({"type": "app_home_opened", "user": sid, "channel": "D0", "tab": "home"})
                probes.people.command(sid, "/coach", "")
        start = time.perf_counter()
        for n in range(20):
            probes.score(world.team_agents(n % world.teams)[0])
        took = (time.perf_counter() - start) / 20
        time.sleep(3)
        rss, peak = serve.rss_mb()
        parts = serve.memory_parts()
    finally:
        serve.stop()
        standin.stop()
        bdb.close()
    base_rss, base_peak = small
    line(f"  6. memory of coachloop serve with {count:,} open cases (after Home, /coach, scores and sweeps)")
    line(f"     resident {rss:,.0f} MB, peak {peak:,.0f} MB; with the 1,000-agent org alone peak "
         f"{base_peak:,.0f} MB; ratio {peak / base_peak:.2f}x  (goal < 200 MB)")
    line("     web server / sweeper: " + "; ".join(
        f"resident {r:,.0f} MB, peak {h:,.0f} MB, proportional {p:,.0f} MB" for r, h, p in parts))
    line(f"     (a score took {ms(took)} on average meanwhile)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--only", default="1,2,3,4,5,6", help="which benchmarks (comma-separated)")
    parser.add_argument(
        "--sweeps", choices=("process", "in-process"), default="process", help="serve's SWEEPS setting"
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="record serve and its sweeper under ingest with py-spy into DIR"
    )
    args = parser.parse_args()
    quick = args.quick
    args.seconds = 5.0 if quick else 15.0
    args.connections = 16
    args.dm_probes = 5 if quick else 10
    args.click_cases = 20 if quick else 50
    args.idle_acks = 5 if quick else 10
    args.small_history = 10_000
    args.large_history = 100_000 if quick else 1_000_000
    args.due = 100
    args.runs = 3 if quick else 5
    args.open_cases = 20_000 if quick else 100_000
    only = {int(x) for x in args.only.split(",") if x.strip()}
    world = World()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        line(f"== {backend}{' (quick)' if quick else ''}, SWEEPS={args.sweeps}")
        with tempfile.TemporaryDirectory(prefix="coachloop-bench-") as tmp:
            small = (float("nan"), float("nan"))
            if only & {1, 2, 3, 6}:
                figures = serve_benchmarks(backend, tmp, world, args)
                small = figures["rss_small"]
            if only & {4, 5}:
                history_benchmarks(backend, tmp, world, args)
            if 6 in only:
                memory_benchmark(backend, tmp, world, args, small)


if __name__ == "__main__":
    main()
