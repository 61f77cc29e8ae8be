"""Migrations: models and migrations agree; a database holding data upgrades from the first revision
(or from a database the first release made with create_all) and keeps every row; every command that
touches data refuses a database behind or ahead of the code, naming what to run."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, insert, select, text

from storage.db import Database
from storage.models import AuditEntry, Base, Case, Evaluation, OutboxMessage, Person, Team, Timer
from storage.schema import FIRST_REVISION, SchemaError, code_head, status, upgrade
from tests.conftest import empty_database, pg_schema_url

T0 = datetime(2026, 11, 2, 10, 0)  # naive UTC, as the first revision stores it
STATES = ("awaiting_conversation", "agreed", "acknowledged", "discussion_requested", "closed", "waived")

backends = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


def test_models_and_migrations_agree(db: Database) -> None:
    """Fails when storage/models.py changed without a migration (`coachloop db revision -m ...`)."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], f"models and migrations differ; write a revision: {differences}"


def test_partial_indexes_keep_the_models_conditions(tmp_path: Path) -> None:
    """Alembic's comparison does not read a partial index's condition: compare the indexes SQLite
    holds after the migrations with those the models make, condition included."""
    migrated = Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    made = Database(f"sqlite:///{tmp_path / 'made.db'}")
    try:
        migrated.create_schema()
        Base.metadata.create_all(made.engine)

        def partial(db: Database) -> dict[str, str]:
            with db.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                return {
                    name: " ".join(sql.replace('"', "").split()).partition(" WHERE ")[2]
                    for name, sql in rows
                    if sql and " WHERE " in sql
                }

        found = partial(migrated)
        assert found == partial(made)
        partial_ones = {"uq_cases_one_awaiting_per_agent", "ix_outbox_updates", "ix_outbox_pending_homes"}
        assert partial_ones <= found.keys()
    finally:
        migrated.dispose()
        made.dispose()


def first_revision_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows as the first release stored them: a team, its people, a case in every state with its
    evaluation and items, pending and fired timers, sent, pending and failed outbox rows, audit entries."""
    people = [
        {
            "id": 1,
            "email": "lead@example.com",
            "name": "Lead",
            "slack_id": "U1",
            "timezone": "Europe/London",
            "dm_channel": "DU1",
            "is_admin": False,
        },
        {
            "id": 2,
            "email": "boss@example.com",
            "name": "Boss",
            "slack_id": "U2",
            "timezone": None,
            "dm_channel": None,
            "is_admin": True,
        },
    ] + [
        {
            "id": 10 + i,
            "email": f"agent{i}@example.com",
            "name": f"Agent {i}",
            "slack_id": f"UA{i}",
            "timezone": "Europe/London",
            "dm_channel": None,
            "is_admin": False,
        }
        for i in range(len(STATES))
    ]
    team = {
        "id": 1,
        "name": "Billing",
        "leader_id": 1,
        "timezone": "Europe/London",
        "working_days": "mon,tue,wed,thu,fri",
        "day_start": "09:00",
        "day_end": "17:30",
        "holiday_country": "GB",
        "holiday_subdivision": "ENG",
        "closed_dates": ["2026-12-24"],
        "window_days": 5,
        "escalation_channels": ["C0LEADERS"],
    }
    cases, evaluations, items, timers, outbox, audit = [], [], [], [], [], []
    for i, state in enumerate(STATES):
        done = state in ("agreed", "acknowledged", "discussion_requested", "closed")
        cases.append(
            {
                "id": 100 + i,
                "agent_id": 10 + i,
                "team_id": 1,
                "leader_id": 1,
                "kind": "performance",
                "state": state,
                "opened_at": T0,
                "due_at": T0 + timedelta(days=7),
                "breached_at": T0 + timedelta(days=7) if state == "waived" else None,
                "suggested_key": "acknowledge",
                "behaviour_key": "acknowledge" if done else None,
                "behaviour_name": "Acknowledges" if done else None,
                "example": f"example {i}" if done else None,
                "action": f"action {i}" if done else None,
                "action_date": date(2026, 11, 20) if done else None,
                "review_method": "listen" if done else None,
                "agent_proposed": True if done else None,
                "notes": f"notes {i}" if done else None,
                "agreed_at": T0 + timedelta(days=1) if done else None,
                "agreed_by_id": 1 if done else None,
                "acknowledged_at": T0 + timedelta(days=2) if state in ("acknowledged", "closed") else None,
                "discussion_requested_at": T0 + timedelta(days=2)
                if state == "discussion_requested"
                else None,
                "reviewed_at": T0 + timedelta(days=20) if state == "closed" else None,
                "review_happened": "yes" if state == "closed" else None,
                "review_worked": "it worked" if state == "closed" else None,
                "review_next": "close" if state == "closed" else None,
                "waived_reason": "on leave" if state == "waived" else None,
                "waived_at": T0 + timedelta(days=8) if state == "waived" else None,
                "closed_at": T0 + timedelta(days=20) if state == "closed" else None,
                "previous_case_id": None,
            }
        )
        evaluations.append(
            {
                "id": 200 + i,
                "source": "zendesk-qa",
                "external_id": f"ev-{i}",
                "agent_email": f"agent{i}@example.com",
                "agent_id": 10 + i,
                "evaluator_email": "qa@example.com",
                "evaluator_name": "QA",
                "scorecard_id": "sc",
                "scorecard_name": "Scorecard",
                "score": 60.0 + i,
                "max_score": 100.0,
                "landed_at": T0,
                "contact_id": f"C-{i}",
                "contact_channel": "call",
                "contact_started_at": T0,
                "contact_url": "https://qa.example.com/c",
                "raw": {"id": f"ev-{i}"},
                "content_hash": "h" * 64,
                "revision": 1,
                "intake_status": "case_opened",
                "received_at": T0,
                "case_id": 100 + i,
            }
        )
        items.append(
            {
                "id": 300 + i,
                "evaluation_id": 200 + i,
                "position": 0,
                "key": "acknowledge",
                "name": "Acknowledges",
                "category": "Empathy",
                "score": 0.0,
                "max_score": 5.0,
                "weight": 2.0,
                "critical": False,
                "comment": f"comment {i}",
                "at_seconds": 42,
                "good_looks_like": "Name the frustration.",
            }
        )
        timers.append(
            {
                "id": 400 + i,
                "dedupe_key": f"case:{100 + i}:escalate:1",
                "kind": "escalate",
                "case_id": 100 + i,
                "due_at": T0 + timedelta(days=7),
                "status": "pending" if state == "awaiting_conversation" else "cancelled",
                "fired_at": None,
            }
        )
        outbox.append(
            {
                "id": 500 + i,
                "dedupe_key": f"case:{100 + i}:leader_dm",
                "kind": "leader_dm",
                "case_id": 100 + i,
                "person_id": 1,
                "channel": None,
                "updates_key": None,
                "payload": {"n": i},
                "due_at": T0,
                "status": ("sent", "pending", "failed")[i % 3],
                "attempts": 1 + i % 3,
                "lease_until": None,
                "last_error": "channel_not_found" if i % 3 == 2 else None,
                "slack_channel": "DU1" if i % 3 == 0 else None,
                "slack_ts": f"1700000000.00000{i}" if i % 3 == 0 else None,
                "created_at": T0,
                "sent_at": T0 if i % 3 == 0 else None,
            }
        )
        audit.append(
            {
                "id": 600 + i,
                "at": T0,
                "actor": "webhook:zendesk-qa",
                "case_id": 100 + i,
                "action": "case_opened",
                "detail": {"evaluation": 200 + i},
            }
        )
    timers.append(
        {
            "id": 499,
            "dedupe_key": "digest:2026-11-02",
            "kind": "digest",
            "case_id": None,
            "due_at": T0,
            "status": "done",
            "fired_at": T0,
        }
    )
    return {
        "people": people,
        "teams": [team],
        "team_agents": [{"team_id": 1, "person_id": 10 + i} for i in range(6)],
        "team_escalations": [{"team_id": 1, "person_id": 2}],
        "cases": cases,
        "evaluations": evaluations,
        "evaluation_items": items,
        "timers": timers,
        "outbox": outbox,
        "audit_log": audit,
    }


def fill_first_revision(db: Database) -> dict[str, list[dict[str, Any]]]:
    rows = first_revision_rows()
    tables = MetaData()
    with db.engine.begin() as conn:
        tables.reflect(conn)
        for name, values in rows.items():
            conn.execute(insert(tables.tables[name]), values)
        if not db.is_sqlite:  # rows were given ids: move the sequences past them, as real inserts would
            for name in rows:
                if "id" in tables.tables[name].c:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), 1000)"))
    return rows


def assert_data_kept(db: Database, rows: dict[str, list[dict[str, Any]]]) -> None:
    with db.unit_of_work() as session:
        cases = {c.id: c for c in session.scalars(select(Case))}
        assert sorted(c.state for c in cases.values()) == sorted(STATES)
        for expected in rows["cases"]:
            case = cases[expected["id"]]
            for column in (
                "state",
                "example",
                "action",
                "notes",
                "waived_reason",
                "review_worked",
                "action_date",
            ):
                assert getattr(case, column) == expected[column], column
            assert case.opened_at == T0.replace(tzinfo=UTC)
            assert [e.external_id for e in case.evaluations] == [f"ev-{expected['id'] - 100}"]
            assert case.evaluations[0].items[0].comment == f"comment {expected['id'] - 100}"
        assert {t.dedupe_key: t.status for t in session.scalars(select(Timer))} == {
            r["dedupe_key"]: r["status"] for r in rows["timers"]
        }
        assert {
            o.dedupe_key: (o.status, o.slack_ts, o.attempts) for o in session.scalars(select(OutboxMessage))
        } == {r["dedupe_key"]: (r["status"], r["slack_ts"], r["attempts"]) for r in rows["outbox"]}
        team = session.scalars(select(Team)).one()
        assert (
            team.closed_dates == ["2026-12-24"] and [a.email for a in team.agents][0] == "agent0@example.com"
        )
        assert session.scalar(select(Person).where(Person.is_admin.is_(True))).email == "boss@example.com"
        assert len(list(session.scalars(select(AuditEntry)))) == len(rows["audit_log"])
        assert len(list(session.scalars(select(Evaluation)))) == len(rows["evaluations"])
        # New rows still get fresh ids after the upgrade.
        session.add(AuditEntry(at=datetime.now(UTC), actor="test", action="after_upgrade", detail={}))


@backends
def test_a_database_holding_data_upgrades_from_the_first_revision(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = empty_database(backend, tmp_path, request)
    assert upgrade(db, FIRST_REVISION).after == FIRST_REVISION
    assert status(db).problem() is not None
    rows = fill_first_revision(db)
    report = upgrade(db)
    assert (report.before, report.after) == (FIRST_REVISION, code_head())
    assert status(db).up_to_date
    assert_data_kept(db, rows)
    assert upgrade(db).lines() == [f"already at {code_head()}; nothing to do"]
    db.dispose()


def cli(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QA_", "COACHLOOP_", "DATABASE"))
    }
    env.update(
        DATABASE_URL=database_url,
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_SIGNING_SECRET="0123456789abcdef0123456789abcdef",
        QA_WEBHOOK_SECRET="whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot.app.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def url_of(db: Database) -> str:
    return db.url if db.is_sqlite else pg_schema_url(db.url, str(db.schema))


@backends
def test_a_database_made_before_migrations_upgrades_with_the_command_and_keeps_its_data(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The first release made its tables with create_all and had no alembic_version table."""
    db = empty_database(backend, tmp_path, request)
    upgrade(db, FIRST_REVISION)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    rows = fill_first_revision(db)
    assert status(db).legacy

    refused = cli(["sweep"], url_of(db))
    assert refused.returncode == 2
    assert "made before coachloop had migrations: run `coachloop db upgrade`" in refused.stderr

    done = cli(["db", "upgrade"], url_of(db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"database made before migrations: recognised as revision {FIRST_REVISION}",
        f"upgraded from {FIRST_REVISION} to {code_head()}",
    ]
    current = cli(["db", "current"], url_of(db))
    assert current.returncode == 0 and "up to date" in current.stdout
    assert_data_kept(db, rows)
    db.dispose()


def test_commands_refuse_a_database_behind_or_ahead_of_the_code(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = empty_database("sqlite", tmp_path, request)
    for command in (["serve"], ["sweep"], ["report"], ["calendar", "--team", "A", "--year", "2027"]):
        empty = cli(command, db.url)
        assert empty.returncode == 2, command
        assert "has no coachloop tables yet: run `coachloop db upgrade`" in empty.stderr, command

    upgrade(db, FIRST_REVISION)
    behind = cli(["sweep"], db.url)
    assert behind.returncode == 2
    assert f"at revision {FIRST_REVISION} and this code needs {code_head()}: run `coachloop db upgrade`" in (
        behind.stderr
    )
    assert cli(["db", "current"], db.url).returncode == 2

    upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    ahead = cli(["org", "import", "org.yml"], db.url)
    assert ahead.returncode == 2
    assert "revision 9999, which this version of coachloop does not know" in ahead.stderr
    with pytest.raises(SchemaError, match="does not know"):
        upgrade(db)
    db.dispose()


def test_history_lists_every_revision_and_marks_the_head() -> None:
    result = cli(["db", "history"], "sqlite://")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(code_head()) and lines[0].endswith("<- head")
    assert lines[-1].startswith(f"{FIRST_REVISION}  The schema as first released")


@backends
def test_concurrent_upgrades_migrate_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Several processes starting at once: the schema lock lets one migrate; the others find it done."""
    url = url_of(empty_database(backend, tmp_path, request))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot.app.cli", "db", "upgrade"],
            env={**os.environ, "DATABASE_URL": url},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum("upgraded from an empty database" in out for out in outputs) == 1
    assert sum("nothing to do" in out for out in outputs) == 2


NEW_REVISION = """
import shutil
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Index, String

import storage.schema as schema
from storage.db import Database
from storage.models import Base

copy = Path(sys.argv[1]) / "migrations"
shutil.copytree(schema.migrations_dir(), copy)
schema.migrations_dir = lambda: copy  # write into a copy, not the package
people = Base.metadata.tables["people"]
people.append_column(Column("pronouns", String(40), nullable=True))
Index("ix_people_pronouns", people.c.pronouns)
print(schema.new_revision("People may give pronouns")[0])
db = Database(sys.argv[2])
print(schema.upgrade(db).lines())
with db.engine.connect() as conn:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    print("differences:", compare_metadata(context, Base.metadata))
"""


@backends
def test_a_model_change_becomes_a_revision_with_one_command(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """What a developer does: change storage/models.py, run `coachloop db revision -m ...`; the revision
    it writes applies on SQLite and on PostgreSQL and leaves no difference."""
    db = empty_database(backend, tmp_path, request)
    upgrade(db)  # a database in use, at the current head
    result = subprocess.run(
        [sys.executable, "-c", NEW_REVISION, str(tmp_path), url_of(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    written, upgraded, differences = result.stdout.strip().splitlines()[-3:]
    assert written.endswith(f"{int(code_head()) + 1:04d}_people_may_give_pronouns.py")
    script = Path(written).read_text()
    assert "with op.batch_alter_table('people'" in script
    assert "batch_op.add_column(sa.Column('pronouns', sa.String(length=40), nullable=True))" in script
    assert "batch_op.create_index('ix_people_pronouns', ['pronouns']" in script
    assert f"down_revision: str | None = '{code_head()}'" in script
    assert f"upgraded from {code_head()} to {int(code_head()) + 1:04d}" in upgraded
    assert differences == "differences: []"
    db.dispose()


@backends
def test_two_awaiting_cases_of_one_agent_are_merged_by_the_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The first release could leave two cases awaiting a conversation for one agent; the revision
    that makes that impossible keeps the earliest, moves the other's scores onto it and says so."""
    db = empty_database(backend, tmp_path, request)
    upgrade(db, FIRST_REVISION)
    rows = first_revision_rows()
    awaiting = next(c for c in rows["cases"] if c["state"] == "awaiting_conversation")
    twin = {**awaiting, "id": 900, "opened_at": T0 + timedelta(hours=1)}
    twin_score = {
        **next(e for e in rows["evaluations"] if e["case_id"] == awaiting["id"]),
        "id": 900,
        "external_id": "ev-twin",
        "case_id": 900,
        "content_hash": "twin",
    }
    rows["cases"].append(twin)
    rows["evaluations"].append(twin_score)
    tables = MetaData()
    with db.engine.begin() as conn:
        tables.reflect(conn)
        for name, values in rows.items():
            conn.execute(insert(tables.tables[name]), values)
    upgrade(db)
    with db.unit_of_work() as session:
        kept, merged = session.get(Case, awaiting["id"]), session.get(Case, 900)
        assert kept is not None and merged is not None
        assert kept.state == "awaiting_conversation"
        assert sorted(e.external_id for e in kept.evaluations) == sorted(
            [f"ev-{awaiting['id'] - 100}", "ev-twin"]
        )
        assert (merged.state, merged.waived_reason) == ("waived", f"merged into case #{awaiting['id']}")
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "case_merged")).one()
        assert (entry.case_id, entry.detail) == (900, {"into": awaiting["id"]})
    db.dispose()
