"""The contact centre the benchmarks run against: 40 teams of 25 agents (1,000), a leader per team and
one head of CX who leads all 40; evaluation payloads of ~1.3 KB with 8-12 items; bulk seeding of
history straight into the tables (never through the webhook)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

from bot.org import apply_org, parse_org
from bot.standin.server import SlackStandIn
from storage.db import Database
from storage.models import Case, Evaluation, EvaluationItem, Person, Team, TeamAgent

TEAMS, AGENTS_PER_TEAM = 40, 25
HEAD = ("U0HEAD", "head.cx@bench.example", "Harper Head")

CRITERIA = [
    ("greeting", "Greets the customer and gives their name", "Opening", 1.0, False),
    ("verify-identity", "Verifies identity before account changes", "Compliance", 3.0, True),
    ("acknowledge", "Acknowledges the customer's concern", "Empathy", 2.0, False),
    ("discovery", "Asks questions to find the real need", "Resolution", 2.0, False),
    ("accuracy", "Gives accurate information", "Resolution", 3.0, False),
    ("ownership", "Takes ownership of the problem", "Resolution", 2.0, False),
    ("hold-etiquette", "Asks before placing on hold", "Courtesy", 1.0, False),
    ("next-steps", "Confirms next steps", "Closing", 1.0, False),
    ("disclosure", "Reads the required disclosure", "Compliance", 3.0, True),
    ("tone", "Keeps a warm, calm tone", "Empathy", 1.0, False),
    ("summary", "Summarises the outcome", "Closing", 1.0, False),
    ("notes", "Leaves accurate account notes", "Wrap-up", 1.0, False),
]


def leader(t: int) -> tuple[str, str, str]:
    return (f"U0L{t:03d}", f"lead{t:02d}@bench.example", f"Leader {t:02d}")


def agent(n: int) -> tuple[str, str, str]:
    return (f"U0A{n:06d}", f"agent{n:06d}@bench.example", f"Agent {n:06d}")


@dataclass(frozen=True)
class World:
    teams: int = TEAMS
    agents_per_team: int = AGENTS_PER_TEAM
    probes_per_team: int = 2  # agents outside the load, for DM and click probes

    @property
    def agents(self) -> int:
        return self.teams * self.agents_per_team

    def team_agents(self, t: int) -> list[int]:
        """Agent numbers of team t (load agents first, then its probe agents)."""
        base = self.agents + self.teams * self.probes_per_team
        load = [t * self.agents_per_team + i for i in range(self.agents_per_team)]
        probes = [base - self.teams * self.probes_per_team + t * self.probes_per_team + i
                  for i in range(self.probes_per_team)]
        return load + probes

    def team_of(self, n: int) -> int:
        if n < self.agents:
            return n // self.agents_per_team
        return (n - self.agents) // self.probes_per_team

    def probe_agents(self) -> list[int]:
        """Probe agents, taking one team at a time in turn (so probes spread over the leaders)."""
        per = self.probes_per_team
        return [self.agents + t * per + i for i in range(per) for t in range(self.teams)]

    def load_emails(self) -> list[str]:
        return [agent(n)[1] for n in range(self.agents)]

    def org_yaml(self) -> str:
        lines = [
            "defaults:",
            "  timezone: Europe/London",
            "  working_days: [mon, tue, wed, thu, fri, sat, sun]",
            '  business_hours: {start: "00:00", end: "23:59"}',
            "  window_working_days: 5",
            "admins: [{email: ops@bench.example, name: Ops, slack_id: U0OPS}]",
            "teams:",
        ]
        for t in range(self.teams):
            sid, email, name = leader(t)
            lines += [
                f"  - name: Team {t:02d}",
                f"    team_leader: {{email: {email}, name: {name}, slack_id: {sid}}}",
                f"    escalate_to: [{{email: {HEAD[1]}, name: {HEAD[2]}, slack_id: {HEAD[0]}}}]",
                "    agents:",
            ]
            for n in self.team_agents(t):
                sid, email, name = agent(n)
                lines.append(f"      - {{email: {email}, name: {name}, slack_id: {sid}}}")
        return "\n".join(lines) + "\n"

    def add_users(self, standin: SlackStandIn) -> None:
        standin.add_user(*HEAD)
        standin.add_user("U0OPS", "ops@bench.example", "Ops")
        for t in range(self.teams):
            standin.add_user(*leader(t))
            for n in self.team_agents(t):
                standin.add_user(*agent(n))

    def import_org(self, db: Database, now: datetime) -> None:
        spec = parse_org(self.org_yaml(), source="bench-org.yml")
        with db.unit_of_work() as session:
            apply_org(session, spec, {}, now)


def evaluation_payload(rng: random.Random, ev_id: str, email: str, now: datetime) -> dict[str, Any]:
    """An "evaluation v1" body of about 1.3 KB with 8 to 12 items."""
    chosen = rng.sample(CRITERIA, rng.randint(8, 12))
    items = []
    for pos, (key, name, _category, weight, critical) in enumerate(chosen):
        score = rng.choice([0, 3, 5, 5, 5, 5])
        item: dict[str, Any] = {
            "key": key,
            "name": name,
            "score": score,
            "max_score": 5,
            "weight": weight,
        }
        if critical:
            item["critical"] = True
        if score < 5 and pos % 3 == 0:
            item["comment"] = "Missed it on this call."
            item["at_seconds"] = rng.randint(10, 900)
        items.append(item)
    total = sum(i["score"] * i["weight"] for i in items)
    most = sum(5 * i["weight"] for i in items)
    return {
        "id": ev_id,
        "source": "bench-qa",
        "agent": {"email": email},
        "evaluator": {"email": "qa@bench.example"},
        "scorecard": {"id": "voice-v7", "name": "Voice calls v7"},
        "score": round(100 * total / most, 1),
        "max_score": 100.0,
        "landed_at": now.isoformat(),
        "contact": {
            "id": f"C-{rng.randint(100000, 999999)}",
            "channel": "call",
            "started_at": (now - timedelta(hours=2)).isoformat(),
            "url": "https://qa.example/c/1",
        },
        "items": items,
    }


# --- databases ------------------------------------------------------------------------------


class BenchDatabase:
    """A fresh database for one benchmark: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, backend: str, tmp: str, pg_url: str) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp}/bench-{uuid.uuid4().hex[:8]}.db"
            self.schema: str | None = None
        else:
            self.schema = f"bench_{uuid.uuid4().hex[:10]}"
            self.admin = create_engine(pg_url)
            with self.admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            sep = "&" if "?" in pg_url else "?"
            self.url = f"{pg_url}{sep}options=-csearch_path%3D{self.schema}"
        self.db = Database(self.url)
        self.db.create_schema()

    def close(self) -> None:
        self.db.dispose()
        if self.schema:
            with self.admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
            self.admin.dispose()

    def analyze(self) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def _agent_ids(db: Database) -> list[tuple[int, int, int]]:
    """(agent id, team id, leader id) for every agent."""
    with db.unit_of_work() as s:
        rows = s.execute(select(TeamAgent.person_id, Team.id, Team.leader_id).join(Team)).all()
    return [(r[0], r[1], r[2]) for r in rows]


def seed_history(db: Database, evaluations: int, now: datetime, *, seed: int = 7, days: int = 120) -> None:
    """`evaluations` scored evaluations (3 items each) spread over the last `days` days across every agent,
    each agent's in closed cases; inserted in bulk."""
    rng = random.Random(seed + evaluations)
    agents = _agent_ids(db)
    with db.unit_of_work() as s:
        next_ev = (s.scalar(select(func.max(Evaluation.id))) or 0) + 1
        next_case = (s.scalar(select(func.max(Case.id))) or 0) + 1
    # One closed case per agent holds that agent's history (what a finished conversation leaves behind).
    closed: dict[int, int] = {}
    cases = []
    for agent_id, team_id, leader_id in agents:
        closed[agent_id] = next_case
        opened = now - timedelta(days=days)
        cases.append(
            dict(id=next_case, agent_id=agent_id, team_id=team_id, leader_id=leader_id, kind="performance",
                 state="closed", opened_at=opened, due_at=opened + timedelta(days=7),
                 behaviour_key="greeting", behaviour_name="Greets the customer", agreed_at=opened,
                 agreed_by_id=leader_id, closed_at=opened + timedelta(days=10), reviewed_at=opened,
                 review_next="close")
        )
        next_case += 1
    with db.unit_of_work() as s:
        s.execute(insert(Case), cases)
    batch = 20_000
    for start in range(0, evaluations, batch):
        evs, items = [], []
        for n in range(start, min(start + batch, evaluations)):
            agent_id = agents[n % len(agents)][0]
            landed = now - timedelta(days=1, minutes=rng.randint(0, days * 24 * 60))
            evs.append(
                dict(id=next_ev, source="bench-history", external_id=f"h-{seed}-{next_ev}", agent_email="",
                     agent_id=agent_id, score=80.0, max_score=100.0, landed_at=landed, raw={},
                     content_hash="", revision=1, intake_status="joined_case", received_at=landed,
                     case_id=closed[agent_id])
            )
            for pos, (key, name, _cat, weight, critical) in enumerate(CRITERIA[:3]):
                items.append(
                    dict(evaluation_id=next_ev, position=pos, key=key, name=name,
                         score=float(rng.choice([0, 3, 5, 5, 5])), max_score=5.0, weight=weight,
                         critical=critical)
                )
            next_ev += 1
        with db.unit_of_work() as s:
            s.execute(insert(Evaluation), evs)
            s.execute(insert(EvaluationItem), items)


def seed_open_cases(db: Database, now: datetime, *, due_in: timedelta) -> list[int]:
    """An awaiting case for every agent that has none, due `due_in` from now; returns their ids."""
    agents = _agent_ids(db)
    with db.unit_of_work() as s:
        busy = set(s.scalars(select(Case.agent_id).where(Case.state == "awaiting_conversation")))
        first = (s.scalar(select(func.max(Case.id))) or 0) + 1
    rows = []
    for agent_id, team_id, leader_id in agents:
        if agent_id in busy:
            continue
        rows.append(
            dict(id=first + len(rows), agent_id=agent_id, team_id=team_id, leader_id=leader_id,
                 kind="performance", state="awaiting_conversation", opened_at=now - timedelta(days=1),
                 due_at=now + due_in, suggested_key="acknowledge")
        )
    for start in range(0, len(rows), 20_000):
        with db.unit_of_work() as s:
            s.execute(insert(Case), rows[start : start + 20_000])
    return [r["id"] for r in rows]


def seed_people(db: Database, count: int, now: datetime) -> None:
    """`count` more agents spread over the existing teams (for the memory benchmark)."""
    with db.unit_of_work() as s:
        teams = list(s.scalars(select(Team.id).order_by(Team.id)))
        first = (s.scalar(select(func.max(Person.id))) or 0) + 1
    for start in range(0, count, 20_000):
        people, links = [], []
        for n in range(start, min(start + 20_000, count)):
            pid = first + n
            people.append(dict(id=pid, email=f"extra{n:06d}@bench.example", name=f"Extra {n:06d}",
                               slack_id=f"U0X{n:06d}", is_admin=False))
            links.append(dict(team_id=teams[n % len(teams)], person_id=pid))
        with db.unit_of_work() as s:
            s.execute(insert(Person), people)
            s.execute(insert(TeamAgent), links)


def utcnow() -> datetime:
    return datetime.now(UTC)
