"""`purge` and `forget`: the text goes, the figures the measures count stay, and both are audit-logged
without the removed text. Driven through the real loop (webhook, Slack modals, sweeps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, select

from bot import privacy, report
from bot.measures_data import parse_period
from bot.standin.client import wait_for
from storage.db import Database
from storage.models import AuditEntry, Case, Evaluation, Person, TeamAgent
from tests.conftest import Stack, make_database
from tests.payloads import evaluation

PRIYA, ANA, MARCUS = "U0PRIYA", "U0ANA", "U0MARCUS"
EXAMPLE, NOTES, WORKED, REASON = "Example-text-1", "Notes-text-2", "Worked-text-3", "Reason-text-4"
COMMENT = "Comment-text-0"


def land(stack: Stack, payload: dict[str, Any]) -> int:
    payload["items"][0]["comment"] = COMMENT
    status, body = stack.post_score(payload)
    assert status == 202, body
    stack.sweep()
    return int(body["case_id"])


def loop(stack: Stack) -> dict[str, int]:
    """Ana: a case coached and reviewed (closed); Lena: a case waived; Tom: a case still open."""
    ana = land(stack, evaluation())
    view = stack.people.open_modal(
        PRIYA, stack.standin.dm_of(PRIYA), stack.message(PRIYA, "leader_dm"), "open_plan"
    )
    assert stack.people.submit(PRIYA, view, {"example": EXAMPLE, "notes": NOTES}) == (200, None)
    stack.sweep()
    stack.people.click(ANA, stack.standin.dm_of(ANA), stack.message(ANA, "agent_agreement"), "ack_agreement")
    wait_for(lambda: state(stack, ana) == "acknowledged", what="the acknowledgement")
    lena = land(stack, evaluation(id="ev-lena", agent={"email": "lena.ito@example.com"}))
    waive = stack.people.open_modal(
        MARCUS, stack.standin.dm_of(MARCUS), stack.message(MARCUS, f"case:{lena}:leader_dm"), "waive_case"
    )
    assert stack.people.submit(MARCUS, waive, {"reason": REASON}) == (200, None)
    tom = land(stack, evaluation(id="ev-tom", agent={"email": "tom.hale@example.com"}))
    stack.clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    stack.sweep()
    review = stack.people.open_modal(
        PRIYA, stack.standin.dm_of(PRIYA), stack.message(PRIYA, f"case:{ana}:review:due"), "open_review"
    )
    assert stack.people.submit(PRIYA, review, {"happened": "yes", "worked": WORKED, "next": "close"}) == (
        200,
        None,
    )
    stack.sweep()
    return {"ana": ana, "lena": lena, "tom": tom}


def state(stack: Stack, case_id: int) -> str:
    with stack.db.unit_of_work() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.state


def figures(db: Database, now: datetime) -> list[dict[str, str]]:
    with db.unit_of_work() as session:
        return [row.cells() for row in report.build(session, parse_period("last-4-weeks", now), now)]


def every_value(db: Database) -> str:
    """Every row of every table, as text."""
    tables = MetaData()
    with db.engine.connect() as conn:
        tables.reflect(conn)
        return json.dumps(
            {name: [list(r) for r in conn.execute(select(t))] for name, t in tables.tables.items()},
            default=str,
        )


def test_purge_removes_old_text_and_keeps_the_figures(any_stack: Stack) -> None:
    stack = any_stack
    cases = loop(stack)
    now = stack.clock.now() + timedelta(days=1)
    before = figures(stack.db, now)
    with stack.db.unit_of_work() as session:
        with pytest.raises(privacy.PrivacyError, match="future"):
            privacy.purge(session, now + timedelta(days=1), now, "test")
        removed = privacy.purge(session, now, now, "cli:ops")
    assert removed.counts == {"raw evaluation payloads": 2, "evaluator comments": 2, "case examples": 1}
    assert removed.notes == ["1 older evaluations kept their text: their case is still open"]
    with stack.db.unit_of_work() as session:
        by_case = {e.case_id: e for e in session.scalars(select(Evaluation))}
        assert by_case[cases["ana"]].raw == {} and by_case[cases["ana"]].items[0].comment is None
        assert by_case[cases["lena"]].raw == {} and by_case[cases["lena"]].items[0].comment is None
        assert by_case[cases["tom"]].raw != {} and by_case[cases["tom"]].items[0].comment == COMMENT
        ana = session.get(Case, cases["ana"])
        assert ana is not None and ana.example is None and ana.state == "closed" and ana.behaviour_key
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "data_purged")).one()
        assert entry.actor == "cli:ops" and entry.detail["case examples"] == 1
    assert figures(stack.db, now) == before
    with stack.db.unit_of_work() as session:
        assert set(privacy.purge(session, now, now, "cli:ops").counts.values()) == {0}


def test_forget_removes_a_persons_data_and_keeps_anonymous_figures(any_stack: Stack) -> None:
    stack = any_stack
    cases = loop(stack)
    now = stack.clock.now()
    before = figures(stack.db, now)
    assert "ana.ruiz@example.com" in every_value(stack.db) and "slack:U0ANA" in every_value(stack.db)
    with stack.db.unit_of_work() as session:
        with pytest.raises(privacy.PrivacyError, match="leads Billing"):
            privacy.forget(session, "priya.shah@example.com", now, "test")
        with pytest.raises(privacy.PrivacyError, match="No one with the email"):
            privacy.forget(session, "nobody@example.com", now, "test")
        removed = privacy.forget(session, "Ana.Ruiz@example.com", now, "cli:ops")
    assert removed.counts["team memberships"] == 1
    assert removed.counts["evaluations about them made anonymous (payload, contact, agent email)"] == 1
    dump = every_value(stack.db)
    for gone in ("ana.ruiz@example.com", "Ana Ruiz", "U0ANA", EXAMPLE, NOTES, WORKED):
        assert gone not in dump, gone
    assert REASON in dump  # Lena's case, not Ana's
    with stack.db.unit_of_work() as session:
        person = session.scalars(select(Person).where(Person.email.like("forgotten-%"))).one()
        assert (person.name, person.slack_id) == ("", None)
        assert session.scalar(select(TeamAgent).where(TeamAgent.person_id == person.id)) is None
        case = session.get(Case, cases["ana"])
        assert case is not None and case.agent_id == person.id and case.state == "closed"
        assert [i.comment for e in case.evaluations for i in e.items] == [None, None]
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "person_forgotten")).one()
        assert entry.detail["person_id"] == person.id and "ana" not in json.dumps(entry.detail).lower()
    assert figures(stack.db, now) == before


def cli(args: list[str], url: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QA_", "COACHLOOP_", "DATABASE"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args], env={**env, "DATABASE_URL": url},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_commands(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    db = make_database("sqlite", tmp_path, request)
    with db.unit_of_work() as session:
        session.add(Person(email="gone@example.com", name="Gone Person", slack_id="U0GONE"))
    dry = cli(["forget", "--email", "gone@example.com", "--dry-run"], db.url)
    assert dry.returncode == 0 and "(dry run: nothing was changed)" in dry.stdout
    assert "gone@example.com" in every_value(db)
    done = cli(["forget", "--email", "gone@example.com"], db.url)
    assert done.returncode == 0 and "their name, email, Slack id, time zone and DM channel: 1" in done.stdout
    assert "gone@example.com" not in every_value(db) and "Gone Person" not in every_value(db)
    again = cli(["forget", "--email", "gone@example.com"], db.url)
    assert again.returncode == 2 and "No one with the email gone@example.com is known" in again.stderr
    purged = cli(["purge", "--before", "2020-01-01"], db.url)
    assert purged.returncode == 0 and "purged text older than 2020-01-01" in purged.stdout
    assert cli(["purge", "--before", "3000-01-01"], db.url).returncode == 2
    bad = cli(["purge", "--before", "last year"], db.url)
    assert bad.returncode == 2 and "must be a date such as 2025-01-01" in bad.stderr
    with db.unit_of_work() as session:
        actions = [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["person_forgotten", "data_purged"]
    db.dispose()
