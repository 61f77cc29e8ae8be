"""How fast /coach answers on a database with 100,000 evaluations.

Seeds a SQLite file (or the PostgreSQL at COACHLOOP_BENCH_DATABASE_URL) with 200 agents in 4 teams
and 100,000 evaluations of 3 items each over the last 120 days, opens a case per agent, then sends
signed `/coach` commands over HTTP and times the acknowledgement (what Slack's 3 s limit applies
to) and the answer arriving on the response_url. Prints the figures.

    python bench/coach_command.py [--evaluations 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bot.clock import FixedClock
from bot.standin.client import wait_for
from bot.standin.server import SlackStandIn
from storage.db import Database
from storage.models import Case, Evaluation, EvaluationItem, Person, Team, TeamAgent
from tests.conftest import build_stack

ITEMS = [
    ("acknowledge", "Acknowledges the customer's concern", 2.0, False),
    ("verify-identity", "Verifies identity", 3.0, True),
    ("next-steps", "Confirms next steps", 1.0, False),
]


def seed(db: Database, evaluations: int, now: datetime) -> None:
    rng = random.Random(7)
    with db.unit_of_work() as s:
        teams = list(s.scalars(select(Team)))
        billing = next(t for t in teams if t.name == "Billing")
        agent_ids = []
        for i in range(200):
            p = Person(email=f"bench{i}@example.com", name=f"Bench Agent {i}", slack_id=f"U0BENCH{i:03d}")
            s.add(p)
            s.flush()
            s.add(TeamAgent(team_id=billing.id, person_id=p.id))
            agent_ids.append(p.id)
    batch = 5000
    next_id = 1
    for start in range(0, evaluations, batch):
        evs, items = [], []
        for n in range(start, min(start + batch, evaluations)):
            landed = now - timedelta(minutes=rng.randint(0, 120 * 24 * 60))
            evs.append(
                {
                    "id": next_id,
                    "source": "bench",
                    "external_id": f"b-{n}",
                    "agent_email": "",
                    "agent_id": rng.choice(agent_ids),
                    "score": 80.0,
                    "max_score": 100.0,
                    "landed_at": landed,
                    "raw": {},
                    "content_hash": "",
                    "revision": 1,
                    "intake_status": "case_opened",
                    "received_at": landed,
                }
            )
            for pos, (key, name, weight, critical) in enumerate(ITEMS):
                items.append(
                    {
                        "evaluation_id": next_id,
                        "position": pos,
                        "key": key,
                        "name": name,
                        "score": float(rng.choice([0, 3, 5, 5, 5])),
                        "max_score": 5.0,
                        "weight": weight,
                        "critical": critical,
                    }
                )
            next_id += 1
        with db.unit_of_work() as s:
            s.execute(insert(Evaluation), evs)
            s.execute(insert(EvaluationItem), items)
    with db.unit_of_work() as s:
        billing = s.scalar(select(Team).where(Team.name == "Billing"))
        assert billing is not None
        for pid in agent_ids:
            s.add(
                Case(
                    agent_id=pid,
                    team_id=billing.id,
                    leader_id=billing.leader_id,
                    kind="performance",
                    state="awaiting_conversation",
                    opened_at=now - timedelta(days=2),
                    due_at=now + timedelta(days=3),
                    suggested_key="acknowledge",
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn("xoxb-bench") as standin:
        from bot.app.demo import PEOPLE

        for user in PEOPLE:
            standin.add_user(*user)
        url = os.environ.get("COACHLOOP_BENCH_DATABASE_URL") or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(url)
        db.create_schema()
        stack = build_stack(db, standin, FixedClock(now))
        t0 = time.perf_counter()
        seed(db, args.evaluations, now)
        print(
            f"seeded {args.evaluations:,} evaluations ({args.evaluations * 3:,} items) "
            f"in {time.perf_counter() - t0:.1f}s on {db.engine.dialect.name}"
        )
        with db.unit_of_work() as s:
            some_agent = s.scalar(select(Person.slack_id).where(Person.email == "bench7@example.com"))
        for label, user, text in (
            ("/coach (team leader's own summary)", "U0PRIYA", ""),
            ("/coach @agent (case, backlog, history)", "U0PRIYA", f"<@{some_agent}>"),
            ("/coach (leadership: team figures)", "U0DANA", ""),
        ):
            acks, answers = [], []
            for _ in range(args.runs):
                before = len(standin.calls_to("response_url"))
                start = time.perf_counter()
                status, _ = stack.people.command(user, "/coach", text)
                acks.append(time.perf_counter() - start)
                assert status == 200
                wait_for(
                    lambda n=before: len(standin.calls_to("response_url")) > n, timeout=60, what="answer"
                )
                answers.append(time.perf_counter() - start)
            print(
                f"{label}: ack median {statistics.median(acks) * 1000:.0f} ms, "
                f"max {max(acks) * 1000:.0f} ms; "
                f"answer median {statistics.median(answers) * 1000:.0f} ms, max {max(answers) * 1000:.0f} ms "
                f"({args.runs} runs)"
            )
        stack.server.stop()


if __name__ == "__main__":
    main()
