"""The intake writer alone: batches of sixteen new scores for the 1,000-agent benchmark org, stored as
`serve` stores them (`IntakeWriter`), with no web server, sweeper or Slack around them. What one batch
costs here is the floor under benchmark 1's round trip.

    PYTHONPATH=. .venv/bin/python bench/intake_writer.py [--backend sqlite|postgres|both] [--batches 300]
        [--quick] [--statements] [--backlog 100000]

Prints milliseconds per batch and scores per second; `--statements` adds each statement's time.
`--backlog N` first stores N more agents with a case awaiting a conversation each and N messages
waiting to go (a backlog held back by Slack's limits): what a batch costs must not grow with them.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import event, insert

from bench.suite import PG_URL
from bench.world import BenchDatabase, World, evaluation_payload, seed_open_cases, seed_people, utcnow
from bot.app.config import Settings
from bot.app.services import Services
from bot.clock import SystemClock
from bot.evaluation_input import parse_evaluation
from handlers.intake_writer import IntakeWriter, _Pending
from storage.db import Database
from storage.models import OutboxMessage

BATCH = 16
WARM_UP = 20  # batches stored before timing starts (caches, the first cases of the org)


def statement_timer(bdb: BenchDatabase) -> dict[str, list[float]]:
    """Statement (its first words) -> [calls, seconds, rows], filled by engine events from now on."""
    seen: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0])

    def before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info["started"] = time.perf_counter()

    def after(conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, many: bool) -> None:
        entry = seen[" ".join(statement.split()[:4])[:60]]
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info["started"]
        entry[2] += len(params) if many else 1

    event.listen(bdb.db.engine, "before_cursor_execute", before)
    event.listen(bdb.db.engine, "after_cursor_execute", after)
    return seen


def seed_backlog(db: Database, count: int, now: datetime) -> None:
    """`count` more agents, each with an awaiting case (as every benchmark agent has), and `count`
    messages waiting to go."""
    seed_people(db, count, now)
    seed_open_cases(db, now, due_in=timedelta(days=3))
    for start in range(0, count, 20_000):
        with db.unit_of_work() as s:
            s.execute(insert(OutboxMessage), [
                dict(dedupe_key=f"backlog:{n}", kind="leader_case", status="pending", attempts=0,
                     due_at=now + timedelta(hours=1), created_at=now, payload={})
                for n in range(start, min(start + 20_000, count))
            ])  # fmt: skip


def run(backend: str, batches: int, statements: bool, backlog: int) -> None:
    world = World()
    with tempfile.TemporaryDirectory(prefix="coachloop-writer-") as tmp:
        bdb = BenchDatabase(backend, tmp, PG_URL)
        try:
            now = utcnow()
            world.import_org(bdb.db, now)
            if backlog:
                seed_backlog(bdb.db, backlog, now)
            settings = Settings(database_url=bdb.url, slack_bot_token="xoxb-unused", slack_signing_secret="-",
                                qa_webhook_secret="-")  # fmt: skip
            # The writer makes no Slack call: the client only completes the services.
            slack = WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/")
            services = Services(settings=settings, db=bdb.db, clock=SystemClock(), slack=slack)
            writer = IntakeWriter(services)
            emails, rng = world.load_emails(), random.Random(1)
            work = [
                [_Pending(parse_evaluation(evaluation_payload(rng, f"w-{b}-{i}", rng.choice(emails), now)))
                 for i in range(BATCH)]
                for b in range(WARM_UP + batches)
            ]  # fmt: skip
            for batch in work[:WARM_UP]:
                writer._write(batch)
            seen = statement_timer(bdb) if statements else {}
            started = time.perf_counter()
            for batch in work[WARM_UP:]:
                writer._write(batch)
            elapsed = time.perf_counter() - started
            failed = sum(p.future.exception() is not None for batch in work for p in batch)
            print(f"{backend}{f' ({backlog:,} awaiting cases and pending messages)' if backlog else ''}: "
                  f"{elapsed / batches * 1000:.1f} ms per batch of {BATCH} new scores, "
                  f"{batches * BATCH / elapsed:,.0f} scores/s ({batches} batches, {failed} scores failed)")
            for name, (calls, seconds, rows) in sorted(seen.items(), key=lambda kv: -kv[1][1]):
                print(f"  {seconds / batches * 1000:6.2f} ms, {calls / batches:4.1f} calls, "
                      f"{rows / max(calls, 1):6.1f} rows a call: {name}")  # fmt: skip
        finally:
            bdb.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="100 batches")
    parser.add_argument("--statements", action="store_true", help="time each statement too")
    parser.add_argument("--backlog", type=int, default=0, help="awaiting cases and pending messages first")
    # `make bench` passes on the suite's options (BENCH=...): --backend and --quick apply here too.
    args, _suite_only = parser.parse_known_args()
    batches = 100 if args.quick else args.batches
    for backend in ["sqlite", "postgres"] if args.backend == "both" else [args.backend]:
        run(backend, batches, args.statements, args.backlog)


if __name__ == "__main__":
    main()
