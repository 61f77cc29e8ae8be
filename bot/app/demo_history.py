"""`coachloop demo --weeks N`: N weeks of a small contact centre, played through the real paths.

Signed scores go to the webhook, leaders and agents answer with Slack-signed payloads, and the sweeps
run under an injected clock that walks from N weeks ago to now. Two leaders coach on time, one does
not; reviews are held (or not) with outcomes; a few cases are waived; a solid performer gets a
developmental conversation; coached criteria improve. Afterwards Home, /coach, the digest and
`coachloop report` have real figures to show.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.app.demo import db_taken, demo_workspace, post_score
from bot.app.services import Services
from bot.clock import FixedClock, SystemClock
from bot.standin.client import SlackUserAgent, wait_for
from bot.standin.render import render_blocks
from bot.standin.server import SlackStandIn
from scheduler.sweeps import Sweeps
from storage.models import Case, Person

# (Slack id, email, name, time zone)
PEOPLE = [
    ("U0DANA", "dana.okafor@example.com", "Dana Okafor", "Europe/London"),
    ("U0SAM", "ops@example.com", "Sam Ops", "Europe/London"),
    ("U0PRIYA", "priya.shah@example.com", "Priya Shah", "Europe/London"),
    ("U0ANA", "ana.ruiz@example.com", "Ana Ruiz", "Europe/London"),
    ("U0TOMHALE", "tom.hale@example.com", "Tom Hale", "Europe/London"),
    ("U0NOOR", "noor.aziz@example.com", "Noor Aziz", "Europe/London"),
    ("U0MARCUS", "marcus.bell@example.com", "Marcus Bell", "America/New_York"),
    ("U0LENA", "lena.ito@example.com", "Lena Ito", "America/New_York"),
    ("U0RAJ", "raj.mehta@example.com", "Raj Mehta", "America/New_York"),
    ("U0OWEN", "owen.price@example.com", "Owen Price", "Europe/London"),
    ("U0KIM", "kim.walsh@example.com", "Kim Walsh", "Europe/London"),
    ("U0JOE", "joe.brandt@example.com", "Joe Brandt", "Europe/London"),
]
SLACK_ID = {email: uid for uid, email, _, _ in PEOPLE}

CRITERIA = {
    "Billing": [
        ("acknowledge", "Acknowledges the customer's concern", 2, False),
        ("verify-identity", "Verifies identity before account changes", 3, True),
        ("next-steps", "Confirms next steps and timescales", 1, False),
        ("ownership", "Owns the problem to the end", 2, False),
    ],
    "Retentions": [
        ("save-offer", "Presents the right save offer", 3, False),
        ("rapport", "Builds rapport", 1, False),
        ("needs", "Finds the reason for leaving", 2, False),
    ],
    "Collections": [
        ("affordability", "Checks affordability before agreeing a plan", 3, True),
        ("tone", "Keeps a calm, respectful tone", 2, False),
        ("summary", "Summarises the agreed plan", 1, False),
    ],
}


@dataclass
class Leader:
    """How a team leader behaves: working days from the score to the conversation, and to the review."""

    slack_id: str
    coach_after: tuple[int, ...]  # drawn per case
    review_after: tuple[int, ...]
    lift: float  # how much a coached criterion's pass chance rises


LEADERS = {
    "Billing": Leader("U0PRIYA", (0, 1, 1, 2), (0, 0, 1), 0.55),
    "Retentions": Leader("U0MARCUS", (1, 2, 3, 4, 6), (0, 1, 2), 0.45),
    "Collections": Leader("U0OWEN", (2, 4, 6, 7, 8), (3, 4, 6), 0.2),
}
WAIVERS = {  # (team, week index): reason — the week's first awaiting case of that team is waived
    ("Collections", 3): "On long-term sick leave from next week.",
    ("Billing", 5): "Moves to the complaints team on Monday.",
    ("Collections", 7): "Leaving the company at the end of the month.",
}


@dataclass
class Agent:
    email: str
    team: str
    pass_chance: dict[str, float] = field(default_factory=dict)


def _agents(rng: random.Random) -> list[Agent]:
    teams = {
        "Billing": ["ana.ruiz@example.com", "tom.hale@example.com", "noor.aziz@example.com"],
        "Retentions": ["lena.ito@example.com", "raj.mehta@example.com"],
        "Collections": ["kim.walsh@example.com", "joe.brandt@example.com"],
    }
    out = []
    for team, emails in teams.items():
        for email in emails:
            solid = email in ("lena.ito@example.com", "noor.aziz@example.com")
            chances = {
                key: 0.97 if solid or critical else rng.choice([0.2, 0.35, 0.5, 0.6])
                for key, _, _, critical in CRITERIA[team]
            }
            out.append(Agent(email, team, chances))
    return out


def _score(agent: Agent, rng: random.Random, now: datetime, n: int) -> dict[str, Any]:
    items = []
    for key, name, weight, critical in CRITERIA[agent.team]:
        passed = rng.random() < agent.pass_chance[key]
        score = 5 if passed else rng.choice([0, 1, 2, 3])
        item: dict[str, Any] = {
            "key": key,
            "name": name,
            "score": score,
            "max_score": 5,
            "weight": weight,
            "critical": critical,
        }
        if not passed:
            item["comment"] = f"{name}: not there on this contact."
            item["at_seconds"] = rng.randint(30, 600)
        items.append(item)
    total = sum(i["score"] * i["weight"] for i in items)
    top = sum(5 * i["weight"] for i in items)
    return {
        "id": f"hist-{n:05d}",
        "source": "zendesk-qa",
        "agent": {"email": agent.email},
        "evaluator": {"email": "lee.park@example.com", "name": "Lee Park"},
        "scorecard": {"id": f"{agent.team.lower()}-v1", "name": f"{agent.team} calls v1"},
        "score": round(100 * total / top, 1),
        "max_score": 100.0,
        "landed_at": now.isoformat(),
        "contact": {
            "id": f"C-{n:05d}",
            "channel": rng.choice(["call", "chat"]),
            "started_at": (now - timedelta(hours=rng.randint(20, 30))).isoformat(),
        },
        "items": items,
    }


class History:
    """The simulation: the running app, the people, and what each leader does day by day."""

    def __init__(self, services: Services, people: SlackUserAgent, standin: SlackStandIn, url: str) -> None:
        self.services, self.people, self.standin, self.url = services, people, standin, url
        assert isinstance(services.clock, FixedClock)
        self.clock: FixedClock = services.clock
        self.sweeps = Sweeps(services)
        self.rng = random.Random(14)
        self.agents = _agents(self.rng)
        self.plan_on: dict[int, date] = {}
        self.review_on: dict[int, date] = {}
        self.acted: set[int] = set()
        self.scores = 0
        self.week = 0

    # --- moving time -------------------------------------------------------------------------------

    def at(self, day: date, hour: int, minute: int = 0) -> None:
        self.clock.set(datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC))

    def sweep(self) -> None:
        self.sweeps.run_once()

    # --- finding what people see -------------------------------------------------------------------

    def message(self, user: str, key: str) -> dict[str, Any] | None:
        """The message in the user's DM whose dedupe key is `key` or starts with `key:`."""
        for m in self.standin.messages(self.standin.dm_of(user)):
            found = str((m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", ""))
            if found == key or found.startswith(key + ":"):
                return m
        return None

    def cases(self, **where: Any) -> list[tuple[int, str, str]]:
        """(id, team, agent email) of the cases matching `where`."""
        with self.services.db.unit_of_work() as s:
            rows = s.scalars(select(Case).filter_by(**where).order_by(Case.id))
            return [(c.id, c.team.name, c.agent.email) for c in rows]

    def case(self, case_id: int) -> Case:
        with self.services.db.unit_of_work() as s:
            case = s.get(Case, case_id)
            assert case is not None
            s.expunge(case)
            return case

    def working_days_after(self, start: date, n: int) -> date:
        day = start
        while n > 0:
            day += timedelta(days=1)
            if day.weekday() < 5:
                n -= 1
        return day

    # --- one day -----------------------------------------------------------------------------------

    def day(self, day: date, end: datetime) -> None:
        for hour, act in ((9, None), (10, self.land_scores), (11, self.answer), (15, self.lead), (17, None)):
            self.at(day, hour, 35)
            if self.clock.now() > end:
                return
            if act is not None and day.weekday() < 5:
                act(day)
            self.sweep()

    def land_scores(self, day: date) -> None:
        if day.weekday() not in (0, 2):
            return
        for agent in self.agents:
            if self.rng.random() < 0.8:
                self.scores += 1
                status, answer = post_score(
                    self.url,
                    self.services.settings.qa_webhook_secret,
                    _score(agent, self.rng, self.clock.now(), self.scores),
                    self.clock.now(),
                )
                if status not in (200, 202):
                    raise RuntimeError(f"the webhook answered {status}: {answer}")

    def answer(self, day: date) -> None:
        """Agents acknowledge yesterday's agreements (one in eight asks to discuss first)."""
        for case_id, _, email in self.cases(state="agreed") + self.cases(state="discussion_requested"):
            agreed = self.case(case_id).agreed_at
            if agreed is None or agreed.date() >= day:
                continue
            user = SLACK_ID[email]
            dm = self.message(user, f"case:{case_id}:agent_agreement")
            if dm is None:
                continue
            state = self.case(case_id).state
            action = (
                "discuss_agreement" if state == "agreed" and self.rng.random() < 0.125 else "ack_agreement"
            )
            self.people.click(user, self.standin.dm_of(user), dm, action)
            self.wait_state(case_id, state)

    def wait_state(self, case_id: int, was: str) -> None:
        def moved() -> bool:
            return self.case(case_id).state != was

        wait_for(moved, what=f"case {case_id} to move on from {was}")

    def lead(self, day: date) -> None:
        for case_id, team, _ in self.cases(state="awaiting_conversation"):
            leader = LEADERS[team]
            if case_id not in self.plan_on:
                reason = WAIVERS.pop((team, self.week), None)
                if reason is not None:
                    self.waive(case_id, leader, reason)
                    continue
                self.plan_on[case_id] = self.working_days_after(day, self.rng.choice(leader.coach_after))
            if self.plan_on[case_id] <= day:
                self.plan(case_id, leader)
        for state in ("acknowledged", "agreed", "discussion_requested"):
            for case_id, team, _ in self.cases(state=state):
                self.review(case_id, LEADERS[team], day)

    def _dm(self, leader: Leader, key: str) -> dict[str, Any] | None:
        return self.message(leader.slack_id, key)

    def plan(self, case_id: int, leader: Leader) -> None:
        dm = self._dm(leader, f"case:{case_id}:leader_dm")
        if dm is None:
            return
        view = self.people.open_modal(leader.slack_id, self.standin.dm_of(leader.slack_id), dm, "open_plan")
        proposed = ["yes"] if self.rng.random() < 0.6 else []
        status, errors = self.people.submit(leader.slack_id, view, {"agent_proposed": proposed})
        if status != 200 or errors:
            raise RuntimeError(f"the plan for case {case_id} was refused: {errors}")
        case = self.case(case_id)
        email = self._agent_of(case_id)
        agent = next(a for a in self.agents if a.email == email)
        if case.behaviour_key in agent.pass_chance:
            chance = agent.pass_chance[case.behaviour_key]
            agent.pass_chance[case.behaviour_key] = min(0.95, chance + leader.lift)

    def _agent_of(self, case_id: int) -> str:
        with self.services.db.unit_of_work() as s:
            case = s.get(Case, case_id)
            assert case is not None
            return s.get(Person, case.agent_id).email  # type: ignore[union-attr]

    def waive(self, case_id: int, leader: Leader, reason: str) -> None:
        dm = self._dm(leader, f"case:{case_id}:leader_dm")
        if dm is None:
            return
        view = self.people.open_modal(leader.slack_id, self.standin.dm_of(leader.slack_id), dm, "waive_case")
        status, errors = self.people.submit(leader.slack_id, view, {"reason": reason})
        if status != 200 or errors:
            raise RuntimeError(f"the waiver for case {case_id} was refused: {errors}")

    def review(self, case_id: int, leader: Leader, day: date) -> None:
        dm = self._dm(leader, f"case:{case_id}:review:due")
        if dm is None:
            return
        if case_id not in self.review_on:
            self.review_on[case_id] = self.working_days_after(day, self.rng.choice(leader.review_after))
        if self.review_on[case_id] > day:
            return
        view = self.people.open_modal(leader.slack_id, self.standin.dm_of(leader.slack_id), dm, "open_review")
        happened = self.rng.choices(["yes", "partly", "no"], weights=[6, 3, 1])[0]
        next_step = self.rng.choices(["close", "next", "recoach"], weights=[6, 3, 1])[0]
        worked = {
            "yes": "Did it on every call we listened to.",
            "partly": "Better, not yet every time.",
            "no": "Not yet: we agreed to try again.",
        }[happened]
        status, errors = self.people.submit(
            leader.slack_id, view, {"happened": happened, "worked": worked, "next": next_step}
        )
        if status != 200 or errors:
            raise RuntimeError(f"the review of case {case_id} was refused: {errors}")


def _start(end: datetime, weeks: int) -> date:
    today = end.date()
    return today - timedelta(days=today.weekday()) - timedelta(weeks=weeks)


def run_history(
    weeks: int = 8, keep: str | None = None, end: datetime | None = None, say: Callable[[str], None] = print
) -> int:
    """Simulate `weeks` whole weeks up to `end` (default: now); with `keep`, leave the database there."""
    started = time.monotonic()
    end = end or SystemClock().now()
    first = _start(end, weeks)
    if db_taken(keep):
        return 2
    clock = FixedClock(datetime(first.year, first.month, first.day, 8, 0, tzinfo=UTC))
    with demo_workspace(PEOPLE, "demo_history_org.yml", clock, keep) as ws:
        standin, people = ws.standin, ws.people
        history = History(ws.services, people, standin, ws.server.url)
        say(f"coachloop demo — {weeks} weeks from {first:%a %d %b %Y} to now; database {ws.db_path}")
        day = first
        while day <= end.date():
            if day.weekday() == 0:
                say(f"  week of {day:%d %b}…")
            history.week = (day - first).days // 7
            history.day(day, end)
            day += timedelta(days=1)
        clock.set(end)
        history.sweep()
        _show(standin, people, say)
        sent = len(standin.calls_to("chat.postMessage")) + len(standin.calls_to("chat.update"))
        say(
            f"\n{history.scores} scores, {sent} Slack messages sent or updated; "
            f"finished in {time.monotonic() - started:.1f}s."
        )
        if keep:
            say(
                f"The database is kept at {ws.db_path}: "
                f"DATABASE_URL=sqlite:///{ws.db_path} coachloop report --format html --out report.html"
            )
    return 0


def _show(standin: SlackStandIn, people: SlackUserAgent, say: Callable[[str], None]) -> None:
    """What leadership sees at the end: Dana's Home, her /coach answer and the last digest."""
    before = len(standin.calls_to("views.publish"))
    people.event({"type": "app_home_opened", "user": "U0DANA", "channel": "D0", "tab": "home"})
    wait_for(lambda: len(standin.calls_to("views.publish")) > before, what="Dana's App Home")
    say("\n## Dana (leadership) opens App Home\n" + render_blocks(standin.views["VHOMEU0DANA"]["blocks"]))
    before = len(standin.calls_to("response_url"))
    people.command("U0DANA", "/coach")
    answer = wait_for(lambda: standin.calls_to("response_url")[before:], what="the /coach answer")[-1].args
    say("\n## Dana types /coach\n" + render_blocks(answer["blocks"]))
    digests = [
        m
        for m in standin.messages(standin.dm_of("U0DANA"))
        if str((m.get("metadata") or {}).get("event_payload", {}).get("dedupe_key", "")).startswith("digest:")
    ]
    if digests:
        say("\n## Dana's latest Monday digest\n" + render_blocks(digests[-1]["blocks"]))
    say(
        json.dumps({"digests": len(digests), "charts": len(standin.calls_to("files.completeUploadExternal"))})
    )
