"""`coachloop demo`: the whole loop on a temporary database against the local Slack stand-in.

The real server (uvicorn + Bolt + the QA webhook + the sweeps) runs on this machine;
signed scores go to the webhook, and signed Slack payloads play the team leader and
the agent. Each message and modal is printed as a person would read it.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from standardwebhooks import Webhook

from bot import calibration
from bot.app.config import Settings
from bot.app.factory import build_services, create_bolt_app
from bot.app.server import BackgroundServer
from bot.app.services import Services
from bot.channels import resolve_channels
from bot.clock import Clock, SystemClock
from bot.org import ImportReport, import_org, parse_org
from bot.standin.client import SlackUserAgent, wait_for
from bot.standin.render import render_blocks, render_view
from bot.standin.server import SlackStandIn
from bot.standin.zendesk_qa import BILLING_SCORECARD, ZendeskQAStandIn, sample_review
from connectors.zendesk_qa import ZendeskQAConnection
from handlers.directory import SlackChannels, SlackDirectory
from handlers.http import create_web_app
from scheduler.runner import start_scheduler
from scheduler.zendesk_qa_poll import start_poller
from storage.models import Case, Person

PEOPLE = [
    ("U0PRIYA", "priya.shah@example.com", "Priya Shah", "Europe/London"),
    ("U0DANA", "dana.okafor@example.com", "Dana Okafor", "Europe/London"),
    ("U0ANA", "ana.ruiz@example.com", "Ana Ruiz", "Europe/London"),
    ("U0TOMHALE", "tom.hale@example.com", "Tom Hale", "Europe/London"),
    ("U0MARCUS", "marcus.bell@example.com", "Marcus Bell", "America/New_York"),
    ("U0LENA", "lena.ito@example.com", "Lena Ito", "America/New_York"),
    ("U0SAM", "ops@example.com", "Sam Ops", "Europe/London"),
    ("U0LEE", "lee.park@example.com", "Lee Park", "Europe/London"),
]


def sign_webhook(secret: str, body: str, at: datetime) -> dict[str, str]:
    msg_id = f"msg_{secrets.token_hex(8)}"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
        "Content-Type": "application/json",
    }


def post_score(url: str, secret: str, payload: dict[str, Any], at: datetime | None = None) -> tuple[int, Any]:
    body = json.dumps(payload)
    req = urllib.request.Request(
        f"{url}/webhooks/qa", data=body.encode(), headers=sign_webhook(secret, body, at or datetime.now(UTC))
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# Ana's two sample scores share the scorecard and two of its items.
_BILLING_CALLS = ("billing-v3", "Billing calls v3")
_ACKNOWLEDGE = "Acknowledges the customer's concern"
_VERIFY_IDENTITY = "Verifies identity before account changes"
_NAME_THE_FRUSTRATION = "Name the frustration before explaining the policy."


def _named(email: str) -> dict[str, str]:
    return {"email": email, "name": next(name for _, e, name, _ in PEOPLE if e == email)}


def _item(key: str, name: str, *, score: int, weight: int, category: str = "", **more: Any) -> dict[str, Any]:
    """A scorecard item scored out of 5 (`more`: critical, at_seconds, comment, good_looks_like)."""
    return {
        "key": key,
        "name": name,
        **({"category": category} if category else {}),
        "score": score,
        "max_score": 5,
        "weight": weight,
        **more,
    }


def _sample_score(
    ev_id: str,
    agent: str,
    scorecard: tuple[str, str],
    *,
    score: float,
    landed_at: datetime,
    contact: dict[str, str],
    items: list[dict[str, Any]],
    evaluator: str = "",
) -> dict[str, Any]:
    """A score as the QA platform sends it; `agent` and `evaluator` are emails of the demo's people."""
    card_id, card_name = scorecard
    return {
        "id": ev_id,
        "source": "zendesk-qa",
        "agent": _named(agent),
        **({"evaluator": _named(evaluator)} if evaluator else {}),
        "scorecard": {"id": card_id, "name": card_name},
        "score": score,
        "max_score": 100.0,
        "landed_at": landed_at.isoformat(),
        "contact": contact,
        "items": items,
    }


def sample_scores(now: datetime) -> list[dict[str, Any]]:
    """Ana's billing call of yesterday and her chat of today, and Lena's perfect retention call."""
    yesterday = now - timedelta(days=1)
    contact = yesterday.replace(hour=11, minute=23, second=0, microsecond=0)
    return [
        _sample_score(
            "ev-demo-0042",
            "ana.ruiz@example.com",
            _BILLING_CALLS,
            score=68.0,
            landed_at=now - timedelta(minutes=20),
            contact={
                "id": "C-88912",
                "channel": "call",
                "started_at": contact.isoformat(),
                "url": "https://qa.example.com/c/88912",
            },
            items=[
                _item(
                    "acknowledge",
                    _ACKNOWLEDGE,
                    score=0,
                    weight=2,
                    category="Empathy",
                    critical=False,
                    at_seconds=252,
                    comment="Customer asked why the refund was late; agent read the policy without "
                    "acknowledging the frustration.",
                    good_looks_like=_NAME_THE_FRUSTRATION,
                ),
                _item(
                    "verify-identity",
                    _VERIFY_IDENTITY,
                    score=5,
                    weight=3,
                    category="Compliance",
                    critical=True,
                ),
                _item(
                    "next-steps",
                    "Confirms next steps and timescales",
                    score=3,
                    weight=1,
                    category="Resolution",
                    comment="Said the refund would come 'soon' without a date.",
                    good_looks_like="Give the date the refund will land, and what to do if it doesn't.",
                ),
            ],
            evaluator="lee.park@example.com",
        ),
        _sample_score(
            "ev-demo-0057",
            "ana.ruiz@example.com",
            _BILLING_CALLS,
            score=74.0,
            landed_at=now - timedelta(minutes=5),
            contact={
                "id": "C-89001",
                "channel": "chat",
                "started_at": (now - timedelta(hours=3)).isoformat(),
            },
            items=[
                _item(
                    "acknowledge",
                    _ACKNOWLEDGE,
                    score=2,
                    weight=2,
                    comment="Acknowledged late, after the customer repeated the complaint.",
                    good_looks_like=_NAME_THE_FRUSTRATION,
                ),
                _item("verify-identity", _VERIFY_IDENTITY, score=5, weight=3, critical=True),
            ],
        ),
        _sample_score(
            "ev-demo-0101",
            "lena.ito@example.com",
            ("ret-v1", "Retention calls v1"),
            score=100.0,
            landed_at=now - timedelta(minutes=2),
            contact={
                "id": "C-70110",
                "channel": "call",
                "started_at": (now - timedelta(hours=5)).isoformat(),
            },
            items=[
                _item("save-offer", "Presents the right save offer", score=5, weight=3),
                _item("rapport", "Builds rapport", score=5, weight=1),
            ],
        ),
    ]


def _say(title: str, body: str = "") -> None:
    print(f"\n## {title}")
    if body:
        print(body)


def _message_in(
    standin: SlackStandIn, user: str, kind: str, *, edited: bool = False
) -> dict[str, Any] | None:
    for m in standin.messages(standin.dm_of(user)):
        payload = (m.get("metadata") or {}).get("event_payload", {})
        if kind in payload.get("dedupe_key", "") and (not edited or m.get("edited")):
            return m
    return None


def _wait_message(standin: SlackStandIn, user: str, kind: str, containing: str = "") -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for m in standin.messages(standin.dm_of(user)):
            payload = (m.get("metadata") or {}).get("event_payload", {})
            if kind in payload.get("dedupe_key", "") and containing in json.dumps(m["blocks"]):
                return m
        return None

    return wait_for(found, what=f"{kind} for {user}")


def _pull_from_zendesk_qa(services: Services, scheduler: BackgroundScheduler, standin: SlackStandIn) -> None:
    """A review made in Zendesk QA (the stand-in of its Export API) is pulled by the poller."""
    with ZendeskQAStandIn("zqa-demo-" + secrets.token_hex(6)) as zqa:
        zqa.add_workspace("101", "Billing QA", [BILLING_SCORECARD])
        conversation, review = sample_review(
            "48213",
            "tom.hale@example.com",
            services.clock.now() - timedelta(minutes=7),
            acknowledge=1,
            verify=0,
        )
        zqa.add_review("101", conversation, review)
        _say(
            "Zendesk QA: a review of Tom's ticket is pulled from the Export API (a local stand-in)",
            f"  GET {zqa.url}/api/export/workspace/101/reviews?fromDate=…&toDate=…&page=0&pageSize=100",
        )
        start_poller(
            scheduler,
            services,
            ZendeskQAConnection(base_url=zqa.url, token=zqa.token, workspaces=("101",)),
        )
        dm = _wait_message(standin, "U0PRIYA", "leader_dm", containing="Tom Hale")
        for r in zqa.requests:
            print(f"  {r.path.removeprefix('/qa')} -> HTTP {r.status}")
        _say("Priya gets a DM for Tom, from the pulled review", render_blocks(dm["blocks"]))
        scheduler.remove_job("zendesk_qa_poll")


def _case_of(services: Services, email: str) -> int:
    with services.db.unit_of_work() as session:
        return session.scalars(
            select(Case.id).join(Person, Case.agent_id == Person.id).where(Person.email == email)
        ).one()


def _qa_lead_advises(services: Services, standin: SlackStandIn, people: SlackUserAgent) -> None:
    """Lee, the QA lead, turns a Slack message into evidence on Ana's case with the message shortcut."""
    message = {
        "type": "message",
        "user": "U0DANA",
        "ts": f"{time.time():.6f}",
        "text": "Listen to C-90417 this morning: Ana read the refund policy twice before saying sorry.",
    }
    trigger = people.message_shortcut("U0LEE", "C0LEADERS", message, "add_to_coaching_case")
    view = people.opened_with(trigger, "the advice form")
    _say("Lee (QA lead) uses “Add to coaching case” on a message in #cx-leadership", render_view(view))
    note = "She told me angry callers throw her; maybe start from how the call felt."
    status, _ = people.submit(
        "U0LEE", view, {"case": str(_case_of(services, "ana.ruiz@example.com")), "note": note}
    )
    print(f"\n  Lee picks Ana's case, adds a note for Priya and sends it: HTTP {status}")
    told = _wait_message(standin, "U0PRIYA", ":advice:")
    _say("Priya is told (she decides; Ana sees none of it)", render_blocks(told["blocks"]))


def _calibration_rating(services: Services, standin: SlackStandIn, people: SlackUserAgent) -> None:
    """The weekly calibration sample, and Lee's rating of Priya's plan against the structure."""
    now = services.clock.now()
    with services.db.unit_of_work() as session:
        drawn = calibration.sample(session, now, week=calibration.week_of(now.date()))
        sample_id = drawn[0].id
    _say(
        "Each Monday a sweep draws last week's agreed plans per team for calibration",
        f"  (the demo draws this week's now) {len(drawn)} plan(s) sampled",
    )
    people.event({"type": "app_home_opened", "user": "U0LEE", "channel": "D0", "tab": "home"})

    def with_the_sample() -> dict[str, Any] | None:
        # Lee's Home is also re-published from the outbox; wait for the one that shows the sample.
        home = standin.views.get("VHOMEU0LEE")
        return home if home is not None and '"rate_plan"' in json.dumps(home) else None

    home = wait_for(with_the_sample, what="Lee's App Home with the calibration sample")
    _say("Lee (QA lead) opens App Home", render_blocks(home["blocks"]))
    trigger = people.click_home("U0LEE", "rate_plan", value=str(sample_id))
    view = people.opened_with(trigger, "the rating form")
    _say("Lee clicks “Rate”", render_view(view))
    suggestion = "Ask Ana for the example before you read it out: she will remember it better."
    met = ["one_behaviour", "specific_example", "dated_action", "agents_action"]
    status, _ = people.submit("U0LEE", view, {"structure": met, "suggestion": suggestion})
    print(f"\n  Lee ticks all four parts and adds one suggestion for Priya: HTTP {status}")
    try:
        told = _wait_message(standin, "U0PRIYA", "calibration:rating:")
        _say("Priya receives the suggestion", render_blocks(told["blocks"]))
    except TimeoutError:
        print("  The suggestion waits for Priya's working hours (Europe/London) before it is sent.")


def db_taken(keep: str | None) -> bool:
    """Whether `keep` names a file that exists already (said on stderr): a demo does not write over it."""
    if keep and Path(keep).exists():
        print(f"{Path(keep)} exists already; choose a new file for --db", file=sys.stderr)
        return True
    return False


@dataclass(frozen=True)
class DemoWorkspace:
    """A demo's running app: the Slack stand-in, the services, the web server and the people's clicks."""

    standin: SlackStandIn
    services: Services
    server: BackgroundServer
    people: SlackUserAgent
    db_path: Path
    org: ImportReport


@contextmanager
def demo_workspace(
    people: Iterable[tuple[str, str, str, str]], org_file: str, clock: Clock, keep: str | None = None
) -> Iterator[DemoWorkspace]:
    """The app on a new SQLite database (at `keep`, or a temporary file) with `org_file` (in bot.app)
    imported, `people` (Slack id, email, name, time zone) and #cx-leadership in the Slack stand-in."""
    token = "xoxb-demo-" + secrets.token_hex(8)
    # A simulated clock moves Slack's time too (message times, and the rate limits: weeks simulated
    # in a minute are weeks to Slack, not a minute's burst).
    now = time.time if isinstance(clock, SystemClock) else lambda: clock.now().timestamp()
    with tempfile.TemporaryDirectory() as tmp, SlackStandIn(token, now=now) as standin:
        for user in people:
            standin.add_user(*user)
        standin.add_channel("C0LEADERS", "cx-leadership", bot_member=True)
        db_path = Path(keep) if keep else Path(tmp) / "coachloop.db"
        settings = Settings(
            database_url=f"sqlite:///{db_path}",
            slack_bot_token=token,
            slack_signing_secret=secrets.token_hex(16),
            qa_webhook_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
            slack_api_url=standin.url,
        )
        services = build_services(settings, clock, migrate=True)
        try:
            spec = parse_org(resources.files("bot.app").joinpath(org_file).read_text(), org_file)
            spec, _ = resolve_channels(spec, SlackChannels(services.slack))
            org = import_org(services.db, spec, SlackDirectory(services.slack), clock.now())
            server = BackgroundServer(create_web_app(services, create_bolt_app(services))).start()
            try:
                clicks = SlackUserAgent(server.url, settings.slack_signing_secret, standin)
                yield DemoWorkspace(standin, services, server, clicks, db_path, org)
            finally:
                server.stop()
        finally:
            services.db.dispose()


def run_demo(keep: str | None = None) -> int:
    """Run the loop; with `keep`, the database is written to that path and left for `coachloop report`."""
    started = time.monotonic()
    if db_taken(keep):
        return 2
    with demo_workspace(PEOPLE, "demo_org.yml", SystemClock(), keep) as ws:
        services, standin, server, people, db_path = ws.services, ws.standin, ws.server, ws.people, ws.db_path
        webhook_secret = services.settings.qa_webhook_secret
        print(f"coachloop demo — database {services.settings.database_url}, Slack stand-in at {standin.url}")
        _say("Org file imported", "\n".join(f"  {line}" for line in ws.org.lines()))
        scheduler = start_scheduler(services, interval=2, jitter=0.5)
        try:
            _say("QA scores arrive at POST /webhooks/qa (signed, Standard Webhooks)")
            scores = sample_scores(services.clock.now())
            for payload in scores:
                status, answer = post_score(server.url, webhook_secret, payload)
                print(f"  {payload['id']} for {payload['agent']['email']}: HTTP {status} {answer}")
            status, answer = post_score(server.url, webhook_secret, scores[0])
            print(f"  ev-demo-0042 again (a retry): HTTP {status} {answer}")

            priya_dm = _wait_message(standin, "U0PRIYA", "leader_dm")
            _say("Priya (team leader) gets a DM", render_blocks(priya_dm["blocks"]))
            marcus_dm = _wait_message(standin, "U0MARCUS", "leader_dm")
            _say(
                "Marcus (Retentions, New York) gets a DM for a developmental conversation",
                render_blocks(marcus_dm["blocks"]),
            )

            _qa_lead_advises(services, standin, people)
            view = people.open_modal("U0PRIYA", standin.dm_of("U0PRIYA"), priya_dm, "open_plan")
            _say("Priya clicks “Plan the conversation”: the modal opens, pre-filled", render_view(view))

            status, answer = people.submit("U0PRIYA", view, {"agent_proposed": ["yes"]})
            print(f"\n  Priya ticks “the agent proposed this action” and submits: HTTP {status}")
            ana_dm = _wait_message(standin, "U0ANA", "agent_agreement")
            _say("Ana (agent) gets the agreement", render_blocks(ana_dm["blocks"]))

            people.click("U0TOMHALE", standin.dm_of("U0ANA"), ana_dm, "ack_agreement")
            refusal = wait_for(lambda: standin.calls_to("chat.postEphemeral"), what="the refusal")
            _say(
                "Tom tries to acknowledge Ana's agreement: refused, nothing changes",
                f"  (only Tom sees) {refusal[-1].args['text']}",
            )

            people.click("U0ANA", standin.dm_of("U0ANA"), ana_dm, "ack_agreement")
            updated = _wait_message(standin, "U0PRIYA", "leader_dm", containing="acknowledged the action")
            _say("Ana acknowledges; Priya's original DM updates in place", render_blocks(updated["blocks"]))

            status, _ = people.event(
                {"type": "app_home_opened", "user": "U0PRIYA", "channel": "D0", "tab": "home"}
            )
            home = wait_for(lambda: standin.views.get("VHOMEU0PRIYA"), what="Priya's App Home")
            _say("Priya opens coachloop's App Home", render_blocks(home["blocks"]))
            status, _ = people.command("U0DANA", "/coach")
            answer = wait_for(lambda: standin.calls_to("response_url"), what="the /coach answer")[-1].args
            _say(
                "Dana (leadership) types /coach (only Dana sees the answer)", render_blocks(answer["blocks"])
            )

            _calibration_rating(services, standin, people)
            _pull_from_zendesk_qa(services, scheduler, standin)

            with services.db.unit_of_work() as session:
                cases = session.query(Case).order_by(Case.id).all()
                _say("Cases")
                for case in cases:
                    print(
                        f"  #{case.id} {case.agent.display:<10} {case.kind:<13} {case.state:<22} "
                        f"{len(case.evaluations)} score(s), due {case.due_at:%a %d %b %H:%M} UTC"
                    )
            sent = len(standin.calls_to("chat.postMessage")) + len(standin.calls_to("chat.update"))
            print(
                f"\n{sent} Slack messages sent or updated through the outbox; "
                f"finished in {time.monotonic() - started:.1f}s."
            )
            if keep:
                print(f"The database is kept at {db_path}: DATABASE_URL=sqlite:///{db_path} coachloop report")
        finally:
            scheduler.shutdown(wait=False)
    return 0
