"""`coachloop import`: CSV through a mapping and JSONL, into the webhook's intake; dry run, errors
with file, line and column, --skip-invalid, idempotent re-import, and history without cases."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from bot.app import import_cmd
from bot.app.cli import main
from bot.app.config import ConfigError
from bot.app.import_cmd import rejects_path, run_import
from bot.importing.mapping import MappingError, parse_mapping, template
from storage.db import Database
from storage.models import AuditEntry, Case, Evaluation, EvaluationItem, OutboxMessage, Timer
from tests.conftest import MONDAY_AFTERNOON, Stack, make_database, sample_org

MAPPING = """source: acme-qa
delimiter: ";"
columns:
  id: Review
  agent.email: Agent
  evaluator.name: Reviewer
  scorecard.name: Scorecard
  score: Total
  landed_at: Reviewed at
  contact.id: Ticket
  item.key: Criterion ID
  item.name: Criterion
  item.score: Rating
  item.critical: Critical
  item.comment: Comment
constants:
  max_score: 100
  item.max_score: 4
"""
HEADER = ["Review", "Agent", "Reviewer", "Scorecard", "Total", "Reviewed at", "Ticket", "Criterion ID",
          "Criterion", "Rating", "Critical", "Comment"]  # fmt: skip
RECENT = (MONDAY_AFTERNOON - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
OLD = "2026-09-01T10:00:00Z"


def rows(
    review: str, agent: str, at: str, ratings: tuple[int, int] = (1, 4), total: str = "55"
) -> list[list[str]]:
    head = [review, agent, "Lee Park", "Billing v3", total, at, f"T-{review}"]
    return [
        [*head, "ack", "Acknowledges", str(ratings[0]), "no", "Read the policy first"],
        [*head, "verify", "Verifies identity", str(ratings[1]), "yes", ""],
    ]


def write_csv(path: Path, body: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(HEADER)
        writer.writerows(body)
    return path


def export(tmp_path: Path) -> tuple[Path, Path]:
    """A recent review for Ana, two old ones for Tom and Ana, one for an agent the org does not name;
    the rows of one review are not next to each other."""
    ana_recent, tom_old, ana_old, stranger = (
        rows("R1", "ana.ruiz@example.com", RECENT),
        rows("R2", "tom.hale@example.com", OLD),
        rows("R3", "Ana.Ruiz@example.com", "2026-08-03T09:00:00Z"),
        rows("R4", "new.hire@example.com", RECENT),
    )
    body = [ana_recent[0], tom_old[0], ana_old[0], ana_recent[1], tom_old[1], ana_old[1], *stranger]
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    return write_csv(tmp_path / "scores.csv", body), mapping


def counts(db: Database) -> tuple[int, ...]:
    with db.unit_of_work() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Evaluation, EvaluationItem, Case, OutboxMessage, AuditEntry)
        )


def quiet() -> Console:
    return Console(file=StringIO(), width=200)


def test_a_csv_export_imports_through_its_mapping(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, mapping = export(tmp_path)
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 0
    out = capsys.readouterr().out
    assert "4 evaluation(s) were read" in out
    assert "1  new, opening or joining a coaching case" in out
    assert "2  history (window already passed)" in out
    assert "1  for agents the org file does not name" in out
    with stack.db.unit_of_work() as s:
        evs = {e.external_id: e for e in s.scalars(select(Evaluation))}
        assert {e.source for e in evs.values()} == {"acme-qa"}
        r1 = evs["R1"]
        assert (r1.agent_email, r1.score, r1.max_score, r1.contact_id) == (
            "ana.ruiz@example.com",
            55,
            100,
            "T-R1",
        )
        assert [(i.key, i.score, i.max_score, i.critical, i.comment) for i in r1.items] == [
            ("ack", 1, 4, False, "Read the policy first"),
            ("verify", 4, 4, True, None),
        ]
        assert r1.case_id is not None and r1.intake_status == "case_opened"
        assert evs["R2"].case_id is None and evs["R2"].intake_status == "history"
        assert evs["R3"].agent_id == r1.agent_id and evs["R3"].case_id is None
        assert evs["R4"].intake_status == "unassigned_agent"
        assert s.query(Case).count() == 1
    stack.sweep()
    # The history counts as recurrence in the leader's suggestion: "ack" was missed in both of Ana's.
    assert "missed in all of the last 2 evaluations" in json.dumps(stack.message("U0PRIYA", "leader_dm"))

    before = counts(stack.db)
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 0
    assert "4  already imported, unchanged" in capsys.readouterr().out
    assert counts(stack.db) == before


ON_BOTH_DATABASES = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


def database_with_org(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """A fresh database of that kind with the sample organisation imported."""
    from bot.org import import_org, parse_org

    db = make_database(backend, tmp_path, request)
    import_org(db, parse_org(sample_org()), None, MONDAY_AFTERNOON)
    return db


@ON_BOTH_DATABASES
def test_history_is_stored_in_bulk_on_both_databases(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = database_with_org(backend, tmp_path, request)
    body = [
        row for i in range(30) for row in rows(f"H{i}", "tom.hale@example.com", OLD, ratings=(i % 4 + 1, 2))
    ]
    data = write_csv(tmp_path / "history.csv", body)
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    assert run_import(db, data, mapping, MONDAY_AFTERNOON, console=quiet()) == 0
    assert "30  history" in capsys.readouterr().out
    with db.unit_of_work() as s:
        evs = list(s.scalars(select(Evaluation).order_by(Evaluation.external_id)))
        assert len(evs) == 30 and all(e.case_id is None and e.agent_id for e in evs)
        h7 = next(e for e in evs if e.external_id == "H7")
        assert [(i.position, i.key, i.score) for i in h7.items] == [(0, "ack", 4), (1, "verify", 2)]
        assert h7.landed_at == datetime(2026, 9, 1, 10, tzinfo=UTC) and h7.received_at == MONDAY_AFTERNOON
        assert h7.raw["id"] == "H7" and h7.raw["items"][0]["score"] == 4.0 and h7.intake_status == "history"
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "evaluations_backfilled")
            )
            == 1
        )
    db.dispose()


def test_a_dry_run_says_what_would_happen_and_changes_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, mapping = export(tmp_path)
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 0
    capsys.readouterr()
    changed = rows("R2", "tom.hale@example.com", OLD, ratings=(3, 4))
    more = rows("R5", "lena.ito@example.com", RECENT)
    body = [*rows("R1", "ana.ruiz@example.com", RECENT), *changed, *more]
    write_csv(data, body)
    before = counts(stack.db)
    assert run_import(stack.db, data, mapping, stack.clock.now(), dry_run=True, console=quiet()) == 0
    out = capsys.readouterr().out
    assert "3 evaluation(s) would be read" in out and "dry run: nothing was changed" in out
    assert "1  new" in out and "1  already imported" in out and "1  corrections" in out
    assert counts(stack.db) == before


def test_errors_name_file_line_and_column_and_a_file_with_errors_imports_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, mapping = export(tmp_path)
    good = rows("R1", "ana.ruiz@example.com", RECENT)
    bad_rating = rows("R2", "tom.hale@example.com", OLD)
    bad_rating[1][9] = "four"
    over = rows("R3", "tom.hale@example.com", OLD, ratings=(9, 1))
    differs = rows("R6", "tom.hale@example.com", OLD)
    differs[1][4] = "60"
    no_agent = rows("R7", "", OLD)
    data = write_csv(tmp_path / "scores.csv", [*good, *bad_rating, *over, *differs, *no_agent])
    before = counts(stack.db)
    console = quiet()
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=console) == 1
    said = console.file.getvalue()  # type: ignore[attr-defined]
    assert 'scores.csv:5: column "Rating": items[1].score must be a number' in said
    assert 'scores.csv:6: column "Rating": items[0].score must not exceed max_score (4)' in said
    assert "scores.csv:9: column \"Total\": '60' differs from '55' on line 8" in said
    assert 'scores.csv:10: column "Agent": agent.email is required' in said
    assert "nothing was imported" in capsys.readouterr().out
    assert counts(stack.db) == before


def test_skip_invalid_imports_the_rest_and_writes_the_rejects_beside_the_file(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, mapping = export(tmp_path)
    bad = rows("R2", "tom.hale@example.com", "last Tuesday")
    data = write_csv(tmp_path / "scores.csv", [*rows("R1", "ana.ruiz@example.com", RECENT), *bad])
    assert run_import(stack.db, data, mapping, stack.clock.now(), skip_invalid=True, console=quiet()) == 0
    assert "1  with problems" in capsys.readouterr().out
    with stack.db.unit_of_work() as s:
        assert [e.external_id for e in s.scalars(select(Evaluation))] == ["R1"]
    with rejects_path(data).open(newline="") as fh:
        rejected = list(csv.reader(fh, delimiter=";"))
    assert rejected[0] == [*HEADER, "coachloop_errors"]
    assert [r[0] for r in rejected[1:]] == ["R2", "R2"] and "landed_at must be an ISO 8601" in rejected[1][-1]


def test_jsonl_imports_with_errors_by_line_and_column(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.payloads import evaluation

    recent = evaluation(id="J1", landed_at=RECENT)
    old = evaluation(id="J2", landed_at=OLD)
    old["agent"] = {"email": "tom.hale@example.com"}
    broken = evaluation(id="J3")
    broken["items"][0]["score"] = 7
    lines = [
        json.dumps(recent),
        json.dumps(old),
        "",
        '{"id": "J4", "agent": ',
        json.dumps(broken),
        json.dumps(recent),
    ]
    data = tmp_path / "scores.jsonl"
    data.write_text("\n".join(lines) + "\n")
    console = quiet()
    assert run_import(stack.db, data, None, stack.clock.now(), console=console) == 1
    said = console.file.getvalue()  # type: ignore[attr-defined]
    assert "scores.jsonl:4: column 23: not JSON (Expecting value)" in said
    assert "scores.jsonl:5: items[0].score must not exceed max_score (5)" in said
    assert run_import(stack.db, data, None, stack.clock.now(), skip_invalid=True, console=quiet()) == 0
    out = capsys.readouterr().out
    assert "1  new" in out and "1  history" in out and "1  already imported" in out  # line 6 repeats line 1
    rejected = [json.loads(x) for x in rejects_path(data).read_text().splitlines()]
    assert [r["line"] for r in rejected] == [4, 5] and rejected[1]["record"] == json.dumps(broken)


def test_the_template_is_a_working_mapping_and_bad_mappings_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["import", "--template"]) == 0
    printed = capsys.readouterr().out
    assert printed == template()
    parsed = parse_mapping(printed)
    assert parsed.columns["item.score"] == "Rating" and parsed.constants["max_score"] == "100"
    with pytest.raises(MappingError) as refused:
        parse_mapping("columns:\n  id: Review\n  agent.mail: Agent\n")
    assert "map.yml:3: columns.agent.mail: is not a field of evaluation v1" in str(refused.value)
    assert "columns.landed_at: is required" in str(refused.value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    data, _ = export(tmp_path)
    assert main(["import", str(data)]) == 2
    assert "needs a mapping: --map map.yml" in capsys.readouterr().err


def test_the_command_line_shows_a_progress_bar_on_long_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_cmd, "LONG_FILE", 0)
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    db.create_schema()
    data, mapping = export(tmp_path)
    screen = Console(file=StringIO(), force_terminal=True, width=120)
    assert run_import(db, data, mapping, MONDAY_AFTERNOON, console=screen) == 0
    shown = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "reading scores.csv" in shown and "importing" in shown and "100%" in shown
    db.dispose()


def test_a_file_that_is_not_utf8_is_refused_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    _, mapping = export(tmp_path)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(";".join(HEADER).encode() + "\nR1;zoë@example.com\n".encode("latin-1"))
    assert main(["import", str(latin), "--map", str(mapping)]) == 2
    assert "latin1.csv is not UTF-8 text" in capsys.readouterr().err


def test_history_times_are_bound_as_the_column_type_binds_them() -> None:
    from sqlalchemy import create_engine

    from bot.importing.backfill import EVALUATIONS, _sqlite_times

    dialect = create_engine("sqlite://").dialect
    bind = EVALUATIONS.c.landed_at.type._cached_bind_processor(dialect)
    assert bind is not None
    when = _sqlite_times(dialect)
    for text in ("1970-01-01T00:00:00Z", "2026-11-23T14:02:00.5-05:30", "2099-12-31T23:59:59.999999+14:00",
                 "2026-03-29T01:30:00+01:00", "2026-07-25T12:48:20Z"):  # fmt: skip
        moment = datetime.fromisoformat(text)
        assert when(moment) == bind(moment)
    with pytest.raises(ValueError, match="naive"):
        when(datetime(2026, 11, 23, 14, 2))


def test_new_history_ids_are_found_by_key_when_sqlite_does_not_count_up(tmp_path: Path) -> None:
    """Past the largest rowid SQLite picks new ids at random: the items still join their evaluation."""
    from sqlalchemy import text

    from bot.evaluation_input import parse_evaluation
    from bot.importing.backfill import history_rows, insert_history

    db = Database(f"sqlite:///{tmp_path / 'ids.db'}")
    db.create_schema()
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    with db.unit_of_work() as s:
        s.execute(text("INSERT INTO people (email, name, is_admin) VALUES ('ana@example.com', 'Ana', 0)"))
        agent_id = s.execute(text("SELECT id FROM people")).scalar_one()
        s.execute(
            text(
                "INSERT INTO evaluations (id, source, external_id, agent_email, score, max_score, "
                "landed_at, raw, content_hash, revision, intake_status, received_at) VALUES "
                "(9223372036854775807, 'old', 'last', 'ana@example.com', 1, 1, "
                "'2026-01-01 00:00:00.000000', '{}', '', 1, 'history', '2026-01-01 00:00:00.000000')"
            )
        )
    batch = [
        parse_evaluation(
            {"id": f"E{i}", "source": "csv", "agent": {"email": "ana@example.com"}, "score": i,
             "max_score": 10, "landed_at": "2026-05-01T10:00:00Z",
             "items": [{"key": f"k{i}", "name": "Criterion", "score": i, "max_score": 10}]}
        )
        for i in range(1, 6)
    ]  # fmt: skip
    with db.unit_of_work() as s:
        rows = history_rows(batch, {"ana@example.com": agent_id}, now, s.get_bind().dialect)
        insert_history(s, batch, rows)
    with db.unit_of_work() as s:
        joined = s.execute(
            select(Evaluation.external_id, EvaluationItem.key).join(
                EvaluationItem, EvaluationItem.evaluation_id == Evaluation.id
            )
        ).all()
    assert sorted(joined) == [(f"E{i}", f"k{i}") for i in range(1, 6)]
    db.dispose()


@pytest.mark.parametrize("flags", [[], ["--skip-invalid"], ["--dry-run"], ["--dry-run", "--skip-invalid"]])
def test_a_header_without_a_mapped_column_is_refused_whatever_the_flags(
    flags: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    _, mapping = export(tmp_path)
    data = tmp_path / "m.csv"
    data.write_text("Review;Agent\nR1;ana.ruiz@example.com\n")
    assert main(["import", str(data), "--map", str(mapping), *flags]) == 2
    said = capsys.readouterr()
    assert said.err.startswith('coachloop: m.csv:1: the header has no column "Reviewer" (evaluator.name), ')
    assert '"Comment" (item.comment); it has: "Review", "Agent"; nothing was imported' in said.err
    assert "--skip-invalid" not in said.out + said.err and "evaluation(s)" not in said.out
    assert not rejects_path(data).exists()
    db = Database(url)
    assert counts(db) == (0, 0, 0, 0, 0)
    db.dispose()


@pytest.mark.parametrize(
    ("name", "text", "refusal"),
    [
        ("empty.csv", "", "empty.csv is empty"),
        ("blank.csv", "\n\nR1;ana.ruiz@example.com\n", "blank.csv:1: the header is empty"),
        ("empty.jsonl", "\n \n", "empty.jsonl is empty"),
        ("rows.jsonl", "id,agent\nJ1,ana\n", "rows.jsonl is not JSON Lines: no line of it is JSON"),
    ],
)
def test_an_empty_file_or_one_not_in_its_format_is_refused_as_a_whole(
    name: str, text: str, refusal: str, stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, mapping = export(tmp_path)
    data = tmp_path / name
    data.write_text(text)
    before = counts(stack.db)
    for dry_run in (False, True):
        with pytest.raises(ConfigError) as refused:
            run_import(
                stack.db,
                data,
                mapping,
                stack.clock.now(),
                dry_run=dry_run,
                skip_invalid=True,
                console=quiet(),
            )
        assert str(refused.value).startswith(refusal) and str(refused.value).endswith("nothing was imported")
    assert capsys.readouterr().out == ""
    assert not rejects_path(data).exists() and counts(stack.db) == before


def test_the_skip_invalid_advice_is_given_only_when_some_evaluations_are_valid(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, mapping = export(tmp_path)
    data = write_csv(tmp_path / "scores.csv", rows("R2", "tom.hale@example.com", "last Tuesday"))
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 1
    out = capsys.readouterr().out
    assert "1 evaluation(s) in scores.csv have problems; nothing was imported" in out
    assert "--skip-invalid" not in out
    write_csv(data, [*rows("R1", "ana.ruiz@example.com", RECENT), *rows("R2", "tom.hale@example.com", "x")])
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 1
    assert "give --skip-invalid to import the 1 valid evaluation(s)" in capsys.readouterr().out


UPDATED_MAPPING = MAPPING.replace(
    "  landed_at: Reviewed at\n", "  landed_at: Reviewed at\n  updated_at: Updated\n"
)


def write_versions(path: Path, versions: list[tuple[str, str, str, str, str]]) -> Path:
    """(review, agent, landed at, total, updated at) for each evaluation."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow([*HEADER, "Updated"])
        for review, agent, at, total, updated in versions:
            writer.writerows([*row, updated] for row in rows(review, agent, at, total=total))
    return path


@ON_BOTH_DATABASES
def test_a_version_not_newer_than_the_stored_one_is_reported_as_such_and_changes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    db = database_with_org(backend, tmp_path, request)
    mapping = tmp_path / "map.yml"
    mapping.write_text(UPDATED_MAPPING)
    ana, tom, stored_at = "ana.ruiz@example.com", "tom.hale@example.com", "2026-11-20T10:00:00Z"
    first = write_versions(
        tmp_path / "first.csv", [("R1", ana, RECENT, "55", stored_at), ("R2", tom, OLD, "55", stored_at)]
    )
    assert run_import(db, first, mapping, MONDAY_AFTERNOON, console=quiet()) == 0
    assert "1  new" in capsys.readouterr().out  # and R2 is history, stored in bulk
    before = counts(db)

    # An older version of the recent one, and one as old as the stored one (of the history), other totals.
    stale = write_versions(
        tmp_path / "stale.csv",
        [("R1", ana, RECENT, "70", "2026-11-19T10:00:00Z"), ("R2", tom, OLD, "70", stored_at)],
    )
    for dry_run in (True, False):
        assert run_import(db, stale, mapping, MONDAY_AFTERNOON, dry_run=dry_run, console=quiet()) == 0
        out = capsys.readouterr().out
        assert "2  older versions of evaluations already imported" in out and "corrections" not in out
    assert counts(db) == before
    with db.unit_of_work() as s:
        stored = {e.external_id: (e.score, e.source_updated_at) for e in s.scalars(select(Evaluation))}
    kept = datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert stored == {"R1": (55, kept), "R2": (55, kept)}

    newer = write_versions(tmp_path / "newer.csv", [("R2", tom, OLD, "70", "2026-11-21T10:00:00Z")])
    assert run_import(db, newer, mapping, MONDAY_AFTERNOON, console=quiet()) == 0
    assert "1  corrections of evaluations already imported" in capsys.readouterr().out
    with db.unit_of_work() as s:
        assert s.scalar(select(Evaluation.score).where(Evaluation.external_id == "R2")) == 70
    db.dispose()


def test_problems_written_to_a_pipe_stay_on_one_line(tmp_path: Path) -> None:
    _, mapping = export(tmp_path)
    data = write_csv(tmp_path / "scores.csv", rows("R1", "ana.ruiz@example.com", "last Tuesday"))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'pipe.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "bot.app.cli", "import", str(data), "--map", str(mapping)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    problem = (
        'scores.csv:2: column "Reviewed at": landed_at must be an ISO 8601 timestamp '
        "such as 2026-11-23T14:02:00Z"
    )
    assert problem in done.stderr.splitlines()


def test_a_dry_run_of_a_file_with_problems_says_the_import_would_import_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, mapping = export(tmp_path)
    bad = rows("R2", "tom.hale@example.com", "last Tuesday")
    data = write_csv(tmp_path / "scores.csv", [*rows("R1", "ana.ruiz@example.com", RECENT), *bad])
    nothing = "without --skip-invalid, the import itself imports nothing from a file with problems"
    assert run_import(stack.db, data, mapping, stack.clock.now(), dry_run=True, console=quiet()) == 1
    out = capsys.readouterr().out
    assert "1 evaluation(s) would be read" in out and "1  with problems" in out and nothing in out
    assert (
        run_import(
            stack.db, data, mapping, stack.clock.now(), dry_run=True, skip_invalid=True, console=quiet()
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "1  with problems" in out and nothing not in out
    write_csv(data, rows("R1", "ana.ruiz@example.com", RECENT))
    assert run_import(stack.db, data, mapping, stack.clock.now(), dry_run=True, console=quiet()) == 0
    assert nothing not in capsys.readouterr().out


@pytest.mark.parametrize(("found", "expected"), [(";", ","), ("\t", ","), (",", "|")])
def test_a_header_split_by_another_delimiter_gets_a_hint(
    found: str, expected: str, stack: Stack, tmp_path: Path
) -> None:
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING.replace('delimiter: ";"', f"delimiter: {json.dumps(expected)}"))
    data = tmp_path / "scores.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=found).writerows([HEADER, *rows("R1", "ana.ruiz@example.com", RECENT)])
    with pytest.raises(ConfigError) as refused:
        run_import(stack.db, data, mapping, stack.clock.now(), console=quiet())
    shown = json.dumps(found)
    assert f"it has: {json.dumps(found.join(HEADER))}" in str(refused.value)
    assert (
        f" (the header is one column holding {shown}, and the mapping's delimiter is {json.dumps(expected)}: "
        f"for a file delimited by {shown}, put delimiter: {shown} in the mapping); nothing was imported"
    ) in str(refused.value)


def test_a_dry_run_longer_than_a_chunk_counts_each_evaluation_once(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.importing import backfill

    monkeypatch.setattr(backfill, "CHUNK", 3)
    _, mapping = export(tmp_path)
    body = [row for i in range(7) for row in rows(f"H{i}", "tom.hale@example.com", OLD)]
    data = write_csv(tmp_path / "history.csv", body)
    assert run_import(stack.db, data, mapping, stack.clock.now(), dry_run=True, console=quiet()) == 0
    out = capsys.readouterr().out
    assert "7 evaluation(s) would be read" in out and "       7  history" in out
    assert run_import(stack.db, data, mapping, stack.clock.now(), console=quiet()) == 0
    assert "7 evaluation(s) were read" in capsys.readouterr().out


def recent(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """A file of n recent reviews for three agents of two teams: the first of each opens a case, the
    rest join it."""
    agents = ["ana.ruiz@example.com", "tom.hale@example.com", "lena.ito@example.com"]
    body = [row for i in range(n) for row in rows(f"N{i}", agents[i % 3], RECENT, ratings=(i % 4 + 1, 2))]
    mapping = tmp_path / "map.yml"
    mapping.write_text(MAPPING)
    return write_csv(tmp_path / f"recent-{n}.csv", body), mapping


def kept(db: Database) -> list[object]:
    """`stored`, with the cases' rows and what was queued and audited."""
    with db.unit_of_work() as s:
        cases = [(c.agent_id, c.kind, c.state, c.due_at) for c in s.scalars(select(Case).order_by(Case.id))]
        queued = sorted(  # without the random tail that keeps a refresh's key apart from earlier ones
            (m.kind, m.dedupe_key.rsplit(":", 1)[0] if m.kind in ("refresh", "home") else m.dedupe_key)
            for m in s.scalars(select(OutboxMessage))
        )
        timed = sorted((t.kind, t.dedupe_key, t.due_at) for t in s.scalars(select(Timer)))
        audited = sorted((a.action, a.actor) for a in s.scalars(select(AuditEntry)))
    return [*stored(db), cases, queued, timed, audited]


@ON_BOTH_DATABASES
def test_new_evaluations_take_the_webhooks_intake_in_bulk_at_a_fixed_cost(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.importing import backfill
    from tests.test_intake_cost import statements

    spent = []
    for n in (12, 60):
        (folder := tmp_path / f"bulk-{n}").mkdir()
        db = database_with_org(backend, folder, request)
        with statements(db) as seen:
            assert run_import(db, *recent(tmp_path, n), MONDAY_AFTERNOON, console=quiet()) == 0
        spent.append(len(seen))
        with db.unit_of_work() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 3
        bulk = kept(db)
        db.dispose()
    assert spent[0] == spent[1], f"{spent[0]} statements for 12 new evaluations, {spent[1]} for 60"

    # What the bulk intake stored is what the webhook's intake, one evaluation at a time, stores.
    monkeypatch.setattr(backfill, "intake_many", lambda _s, scores, _now: [None] * len(scores))
    (folder := tmp_path / "one-by-one").mkdir()
    db = database_with_org(backend, folder, request)
    assert run_import(db, *recent(tmp_path, 60), MONDAY_AFTERNOON, console=quiet()) == 0
    assert kept(db) == bulk
    db.dispose()


def stored(db: Database) -> list[tuple[object, ...]]:
    """What an import left: each evaluation with its items, and the cases and messages it opened."""
    with db.unit_of_work() as s:
        evaluations = [
            (
                e.source,
                e.external_id,
                e.agent_email,
                e.intake_status,
                e.case_id is not None,
                e.score,
                e.raw,
                tuple((i.position, i.key, i.score, i.comment) for i in e.items),
            )  # fmt: skip
            for e in s.scalars(select(Evaluation).order_by(Evaluation.source, Evaluation.external_id))
        ]
        cases = s.scalar(select(func.count()).select_from(Case))
        messages = s.scalar(select(func.count()).select_from(OutboxMessage))
    return [*evaluations, (cases, messages)]


@ON_BOTH_DATABASES
@pytest.mark.parametrize("shares", [2, 3])
def test_a_file_shared_between_processes_imports_as_one_process_does(
    backend: str,
    shares: int,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same lines said, the same rows stored and the same rejects written, step by step: a file
    with problems, its dry run, --skip-invalid, a re-import with a correction, and a JSONL file whose
    evaluations open cases in the file's order."""
    from tests.payloads import evaluation

    _, mapping = export(tmp_path)
    tom, ana = "tom.hale@example.com", "ana.ruiz@example.com"
    history = [row for i in range(24) for row in rows(f"H{i}", tom, OLD, ratings=(i % 4, 2))]
    bad_rating = rows("B1", tom, OLD)
    bad_rating[1][9] = "four"
    differs = rows("B2", ana, OLD)
    differs[1][4] = "60"
    recent = [row for i in range(6) for row in rows(f"N{i}", ana, RECENT, total=str(50 + i))]
    stranger = rows("R4", "new.hire@example.com", RECENT)
    body = [*stranger, *history[:20], *bad_rating, *recent, *differs, *history[20:]]
    corrected = [*body[:-2], *rows("H23", tom, OLD, ratings=(1, 1))]
    lines = [json.dumps(evaluation(id=f"J{i}", landed_at=RECENT, score=40 + i)) for i in range(8)]
    lines[5:5] = ['{"id": "J9", "agent": ', lines[2]]
    steps: list[tuple[str, list[list[str]] | list[str], dict[str, bool]]] = [
        ("scores.csv", body, {}),
        ("scores.csv", body, {"dry_run": True}),
        ("scores.csv", body, {"skip_invalid": True}),
        ("scores.csv", corrected, {"skip_invalid": True}),
        ("scores.jsonl", lines, {"skip_invalid": True}),
    ]
    seen: dict[int, list[object]] = {}
    for workers in (1, shares):
        place = tmp_path / f"w{workers}"
        place.mkdir()
        db = database_with_org(backend, place, request)
        seen[workers] = []
        for name, content, flags in steps:
            data = place / name
            if name.endswith(".csv"):
                write_csv(data, content)  # type: ignore[arg-type]
            else:
                data.write_text("\n".join(content) + "\n")  # type: ignore[arg-type]
            rejects_path(data).unlink(missing_ok=True)
            console = quiet()
            code = run_import(db, data, mapping, MONDAY_AFTERNOON, console=console, workers=workers, **flags)
            said = console.file.getvalue()  # type: ignore[attr-defined]
            rejected = rejects_path(data).read_text() if rejects_path(data).exists() else None
            out = capsys.readouterr().out.replace(str(place), "DIR")
            seen[workers].append((name, flags, code, said, out, rejected, stored(db)))
        db.dispose()
    for single, shared in zip(seen[1], seen[shares], strict=True):
        assert shared == single
    first, _, skipped, corrected_run, jsonl = seen[1]
    assert first[2] == 1 and "nothing was imported" in first[4] and first[6][-1] == (0, 0)  # type: ignore[index]
    assert "1  corrections" in corrected_run[4] and "opened or joined" in jsonl[4]  # type: ignore[operator]
    assert skipped[5] is not None and "J9" not in str(jsonl[6])


def test_an_import_process_that_dies_in_its_turn_fails_the_import_instead_of_hanging(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from bot.app import import_shares

    db = database_with_org("sqlite", tmp_path, request)
    _, mapping = export(tmp_path)
    history = [row for i in range(12) for row in rows(f"H{i}", "tom.hale@example.com", OLD)]
    data = write_csv(tmp_path / "h.csv", history)
    real = import_cmd.import_records

    def dies_in_its_turn(unit_of_work: object, *_: object, **__: object) -> None:
        with unit_of_work():  # type: ignore[operator]
            os._exit(3)

    def after_it(*args: object, **kwargs: object) -> object:
        time.sleep(1)  # the helper (which dies at once) takes the first turn
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(import_shares, "import_records", dies_in_its_turn)  # the helper's
    monkeypatch.setattr(import_cmd, "import_records", after_it)  # the importing process's
    with pytest.raises(RuntimeError, match="an import process ended without a word"):
        run_import(db, data, mapping, MONDAY_AFTERNOON, console=quiet(), workers=2)
    db.dispose()
