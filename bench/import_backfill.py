"""Backfill benchmark: `coachloop import` of a 100,000-evaluation CSV export on SQLite.

Generates an org of 200 agents and a CSV with three criterion rows per evaluation (300,000
rows) spread over the last year, imports it through the mapping into a fresh SQLite file,
and prints evaluations per second (goal: at least 10,000/s). Then imports it again, which
must change nothing, and prints that time too.

    PYTHONPATH=. .venv/bin/python bench/import_backfill.py [--evaluations 100000] [--jsonl] [--workers N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from bot.app.import_cmd import run_import
from bot.org import import_org, parse_org
from storage.db import Database
from storage.models import Case, Evaluation, EvaluationItem

AGENTS = 200
CRITERIA = [("greet", "Greets the customer"), ("verify", "Verifies identity"), ("resolve", "Resolves it")]
MAPPING = """source: bench-export
columns:
  id: Review
  agent.email: Agent email
  score: Total
  landed_at: Reviewed at
  item.key: Criterion ID
  item.name: Criterion
  item.score: Rating
constants:
  max_score: 100
  item.max_score: 4
"""


def org_yaml() -> str:
    lines = ["teams:"]
    for t in range(4):
        lines += [f"  - name: Team {t}", f"    team_leader: {{email: lead{t}@example.com}}", "    agents:"]
        lines += [f"      - {{email: agent{a}@example.com}}" for a in range(t * 50, (t + 1) * 50)]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, n: int, now: datetime, rng: random.Random) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Review", "Agent email", "Total", "Reviewed at", "Criterion ID", "Criterion", "Rating"])
        for i in range(n):
            at = (now - timedelta(days=8, minutes=rng.randrange(0, 504_000))).strftime("%Y-%m-%dT%H:%M:%SZ")
            agent = f"agent{rng.randrange(AGENTS)}@example.com"
            total = str(rng.randrange(40, 101))
            for key, name in CRITERIA:
                w.writerow([f"r{i}", agent, total, at, key, name, str(rng.randrange(1, 5))])


def write_jsonl(path: Path, n: int, now: datetime, rng: random.Random) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            at = now - timedelta(days=8, minutes=rng.randrange(0, 60 * 24 * 350))
            ev = {
                "id": f"r{i}",
                "source": "bench-export",
                "agent": {"email": f"agent{rng.randrange(AGENTS)}@example.com"},
                "score": rng.randrange(40, 101),
                "max_score": 100,
                "landed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "items": [
                    {"key": k, "name": nm, "score": rng.randrange(0, 4), "max_score": 3} for k, nm in CRITERIA
                ],
            }
            fh.write(json.dumps(ev) + "\n")


def timed_import(
    db: Database, data: Path, mapping: Path | None, now: datetime, workers: int | None
) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) for one import."""
    quiet = StringIO()
    start, cpu = time.perf_counter(), time.process_time()
    code = run_import(db, data, mapping, now, console=Console(file=quiet), workers=workers)
    took, cpu = time.perf_counter() - start, time.process_time() - cpu
    if code != 0:
        sys.exit(f"import failed:\n{quiet.getvalue()}")
    return took, cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--jsonl", action="store_true", help="a JSONL file instead of the CSV export")
    parser.add_argument("--workers", type=int, help="processes sharing the file (default: as chosen)")
    args = parser.parse_args()
    n, rng, now = args.evaluations, random.Random(7), datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = Database(f"sqlite:///{root / 'bench.db'}")
        db.create_schema()
        import_org(db, parse_org(org_yaml()), None, now)
        mapping: Path | None = None
        if args.jsonl:
            data = root / "scores.jsonl"
            write_jsonl(data, n, now, rng)
        else:
            data, mapping = root / "scores.csv", root / "map.yml"
            write_csv(data, n, now, rng)
            mapping.write_text(MAPPING)
        size = data.stat().st_size / 1e6
        print(f"{data.name}: {n:,} evaluations, {size:.1f} MB, SQLite")
        print("(wall clock includes waiting for a busy machine; CPU is the importing process's own time)")
        for label in ("import", "re-import"):
            took, cpu = timed_import(db, data, mapping, now, args.workers)
            print(
                f"{label:<10} {took:6.2f} s wall {n / took:9,.0f} evaluations/s | "
                f"{cpu:6.2f} s CPU {n / cpu:9,.0f} evaluations/s"
            )
        print("goal: 10,000 evaluations/s; the re-import must change nothing")
        with db.unit_of_work() as s:
            evs = s.scalar(select(func.count()).select_from(Evaluation))
            items = s.scalar(select(func.count()).select_from(EvaluationItem))
            cases = s.scalar(select(func.count()).select_from(Case))
        print(f"stored: {evs:,} evaluations, {items:,} items, {cases} cases opened (history opens none)")
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
