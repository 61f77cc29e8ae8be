"""What an import does with each evaluation, and doing it in bulk.

Every evaluation takes the webhook's path (`coachloop.intake`: same idempotency on source + id,
same corrections rule, same case logic), except one kind: a new evaluation of a known agent
whose coaching window has already passed. That is history: it is stored, for the measures and
for the leverage ranking's recurrence, without opening a case, so nobody is sent a DM about an
old score. History is written with bulk inserts, which is what makes a large backfill fast.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from bot import coaching
from bot.calendar import WorkCalendar
from bot.evaluation_input import EvaluationInput
from bot.importing.readers import Record
from bot.intake_batch import Incoming, intake_many
from bot.team_calendar import calendar_for
from storage.bulk import insert_items, item_values
from storage.models import Base, Evaluation, Person, Team, TeamAgent
from storage.outbox import audit

NEW, HISTORY, REPEAT, CORRECTION, STALE = "new", "history", "repeat", "correction", "stale"
UNKNOWN_AGENT = "unknown agent"
HISTORY_STATUS = "history"
CLEARLY_PAST = timedelta(days=120)  # no window (at most 30 working days) reaches this far
CHUNK = 5000
SQLITE_CACHE_KIB = 32 * 1024  # the page cache of the connection that stores history on SQLite
EVALUATIONS = Base.metadata.tables[Evaluation.__tablename__]
WORDS = {
    NEW: "new, opening or joining a coaching case",
    HISTORY: "history (window already passed): stored for the measures, no case opened",
    REPEAT: "already imported, unchanged",
    CORRECTION: "corrections of evaluations already imported",
    STALE: "older versions of evaluations already imported (updated_at not newer): the stored ones are kept",
    UNKNOWN_AGENT: "for agents the org file does not name (kept; a case opens when the org file names them)",
}


@dataclass
class ImportSummary:
    counts: Counter[str] = field(default_factory=Counter)
    cases: set[int] = field(default_factory=set)

    def merge(self, other: ImportSummary) -> None:
        self.counts.update(other.counts)
        self.cases |= other.cases

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would be" if dry_run else "were"
        out = [f"{self.counts[kind]:>8,}  {WORDS[kind]}" for kind in WORDS if self.counts[kind]]
        total = sum(self.counts[k] for k in WORDS)
        head = f"{total:,} evaluation(s) {verb} read:"
        if not dry_run and self.cases:
            out.append(f"{len(self.cases):>8,}  coaching case(s) opened or joined")
        return [head, *out]


class Planner:
    """Sorts evaluations into NEW, HISTORY, REPEAT, CORRECTION, STALE and UNKNOWN_AGENT."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.now = now
        teams = {t.id: t for t in session.scalars(select(Team))}
        self.calendars: dict[int, tuple[WorkCalendar, int]] = {
            tid: (calendar_for(t), t.window_days) for tid, t in teams.items()
        }
        self._due: dict[tuple[int, date], datetime] = {}
        self.agents: dict[str, tuple[int, int]] = {
            email: (pid, tid)
            for email, pid, tid in session.execute(
                select(Person.email, Person.id, TeamAgent.team_id).join(
                    TeamAgent, TeamAgent.person_id == Person.id
                )
            )
        }
        self.dialect = session.get_bind().dialect

    def window_passed(self, data: EvaluationInput, team_id: int) -> bool:
        if self.now - data.landed_at > CLEARLY_PAST:
            return True
        cal, window = self.calendars[team_id]
        day = cal.effective_landing_day(data.landed_at)
        due = self._due.get((team_id, day))
        if due is None:  # the same as cal.deadline(), counted once per team and landing day
            due = self._due[(team_id, day)] = cal.end_of_business(cal.add_working_days(day, window))
        return due < self.now

    def classify(self, records: list[Record]) -> list[tuple[Record, str]]:
        """Each valid record with its kind as if nothing were stored yet (NEW, HISTORY or
        UNKNOWN_AGENT): no database needed, so it is worked out before a write transaction."""
        out: list[tuple[Record, str]] = []
        agents, now = self.agents, self.now
        for record in records:
            data = record.data
            if data is None or record.problems:
                continue
            agent = agents.get(data.agent_email)
            if agent is None:
                out.append((record, UNKNOWN_AGENT))
            elif now - data.landed_at > CLEARLY_PAST or self.window_passed(data, agent[1]):
                out.append((record, HISTORY))
            else:
                out.append((record, NEW))
        return out

    def sort(self, session: Session, classified: list[tuple[Record, str]]) -> list[tuple[Record, str]]:
        """`classify`'s kinds, with those already stored made REPEAT, STALE or CORRECTION (inside the
        transaction that writes them, so that no other writer can store one in between)."""
        conn = session.connection()
        existing = stored_by_key(
            conn, ("content_hash", "source_updated_at"), [r.data for r, _ in classified if r.data is not None]
        )
        if not existing:
            return classified
        stored_time = _stored_times(conn.dialect)
        out: list[tuple[Record, str]] = []
        for record, kind in classified:
            data = record.data
            assert data is not None
            stored = existing.get((data.source, data.external_id))
            if stored is not None:
                content_hash, updated_at = stored
                if content_hash == data.content_hash:
                    kind = REPEAT
                elif coaching.is_stale(stored_time(updated_at), data.updated_at):
                    kind = STALE
                else:
                    kind = CORRECTION
            out.append((record, kind))
        return out

    def history_rows(self, batch: list[EvaluationInput]) -> list[HistoryRow]:
        """The rows `insert_history` writes for `batch`, built before the write transaction."""
        return history_rows(batch, {e: a for e, (a, _) in self.agents.items()}, self.now, self.dialect)


def stored_by_key(
    conn: Connection, columns: tuple[str, ...], batch: list[EvaluationInput]
) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The values of `columns` of the stored evaluations among `batch` (as the driver gives them),
    by (source, external id)."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    found: dict[tuple[str, str], tuple[Any, ...]] = {}
    by_source: dict[str, list[str]] = {}
    for d in batch:
        by_source.setdefault(d.source, []).append(d.external_id)
    for source, ids in by_source.items():
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = (
                f"SELECT external_id, {', '.join(columns)} FROM {EVALUATIONS.name} "
                f"WHERE source = {mark} AND external_id IN ({', '.join([mark] * len(part))})"
            )
            rows = conn.exec_driver_sql(sql, (source, *part)).all()
            found.update({(source, row[0]): tuple(row[1:]) for row in rows})
    return found


def drop_repeats_within(records: list[Record], name: str) -> tuple[list[Record], int]:
    """The file's records without exact repeats of an earlier line (and how many were dropped);
    a repeat with other content is a problem: which version is meant cannot be told."""
    first: dict[tuple[str, str], Record] = {}
    kept: list[Record] = []
    dropped = 0
    for record in records:
        if record.data is None:
            kept.append(record)
            continue
        key = (record.data.source, record.data.external_id)
        earlier = first.get(key)
        if earlier is None:
            first[key] = record
            kept.append(record)
        elif earlier.data is not None and earlier.data.content_hash == record.data.content_hash:
            dropped += 1
        else:
            record.problems.append(
                f"{name}:{record.line}: id {key[1]!r} appears again (first on line {earlier.line}) "
                "with other content; keep one version per file"
            )
            kept.append(record)
    return kept, dropped


HISTORY_COLUMNS = ("source", "external_id", "agent_email", "agent_id", "evaluator_email", "evaluator_name",
                   "scorecard_id", "scorecard_name", "score", "max_score", "landed_at", "contact_id",
                   "contact_channel", "contact_started_at", "contact_url", "raw", "content_hash", "revision",
                   "intake_status", "received_at", "case_id", "source_updated_at")  # fmt: skip


def _same(value: Any) -> Any:
    return value


def _sqlite_times(dialect: Any) -> Callable[[datetime], Any]:
    """How a time is bound on SQLite: the column type's own bind processor (UTC, SQLite's text format),
    or one C call that gives the very same text (checked here) for the years a payload may hold."""
    bind = EVALUATIONS.c.landed_at.type._cached_bind_processor(dialect) or _same

    def formatted(value: datetime) -> Any:
        if value.tzinfo is None:
            return bind(value)  # which refuses it
        return value.astimezone(UTC).isoformat(" ", "microseconds")[:26]  # without "+00:00"

    probes = [datetime(1970, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    probes.append(datetime.fromisoformat("2026-11-23T14:02:00.5-05:30"))
    return formatted if all(formatted(t) == bind(t) for t in probes) else bind


def _stored_times(dialect: Any) -> Callable[[Any], datetime | None]:
    """How a time read by `stored_by_key` (as the driver gives it) becomes what the model reads."""
    column_type = EVALUATIONS.c.source_updated_at.type.dialect_impl(dialect)
    return column_type.result_processor(dialect, None) or _same


def _history_row(
    d: EvaluationInput, agent_id: int, received: Any, when: Callable[[datetime], Any]
) -> tuple[Any, ...]:
    """The evaluations row `coachloop.intake` would write, in HISTORY_COLUMNS order, with `raw` as its
    JSON text (sorted keys), from which `content_hash` is taken as `EvaluationInput.content_hash` takes it."""
    raw_text = d.raw_json
    digest = sha256(raw_text.encode()).hexdigest()
    started = None if d.contact_started_at is None else when(d.contact_started_at)
    updated = None if d.updated_at is None else when(d.updated_at)
    return (d.source, d.external_id, d.agent_email, agent_id, d.evaluator_email, d.evaluator_name,
            d.scorecard_id, d.scorecard_name, d.score, d.max_score, when(d.landed_at), d.contact_id,
            d.contact_channel, started, d.contact_url, raw_text, digest, 1, HISTORY_STATUS, received,
            None, updated)  # fmt: skip


HistoryRow = tuple[Any, list[tuple[Any, ...]]]  # an evaluations row, and its items without the id
LARGEST_ID = 2**63 - 1  # SQLite's largest rowid: past it, SQLite picks new ids at random


def history_rows(
    batch: list[EvaluationInput], agents: dict[str, int], now: datetime, dialect: Any
) -> list[HistoryRow]:
    """The rows of `batch` as `insert_history` takes them on `dialect`: the evaluations row (on SQLite a
    tuple for the driver, the JSON text as it is and times as the column type binds them; elsewhere a
    dict), and its items' rows without the evaluation id."""
    if dialect.name == "sqlite":
        when = _sqlite_times(dialect)
        received = when(now)
        return [(_history_row(d, agents[d.agent_email], received, when), item_values(d.items)) for d in batch]
    return [
        (dict(zip(HISTORY_COLUMNS, _history_row(d, agents[d.agent_email], now, _same), strict=True)),
         item_values(d.items))
        for d in batch
    ]  # fmt: skip


def insert_history(session: Session, batch: list[EvaluationInput], rows: list[HistoryRow]) -> None:
    """Bulk-insert evaluations and their items (`history_rows(batch)`), without cases."""
    if not batch:
        return
    # Core executemany (not the ORM's bulk path, nor RETURNING, which SQLite would take row by row).
    conn = session.connection()
    before = conn.exec_driver_sql(f"SELECT max(id) FROM {EVALUATIONS.name}").scalar() or 0
    ids: list[int] | range
    if conn.dialect.name == "sqlite":
        # Each row goes into several indexes at scattered places: a page cache that holds them (SQLite's
        # own is 2 MiB) spares reading the same pages back again and again. The connection keeps it.
        conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        values: list[tuple[Any, ...]] = [row for row, _ in rows]
        given = before + len(rows) <= LARGEST_ID
        if given:  # the ids SQLite would pick (the write lock is held), given here: nothing to read back
            ids = range(before + 1, before + 1 + len(rows))
            values = [(*row, ev_id) for row, ev_id in zip(values, ids, strict=True)]
        columns = (*HISTORY_COLUMNS, "id") if given else HISTORY_COLUMNS
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {EVALUATIONS.name} ({', '.join(columns)}) VALUES ({marks})"
        conn.exec_driver_sql(sql, values)
        if not given:
            ids = _new_ids(conn, batch, before)
    else:
        conn.execute(insert(EVALUATIONS), [row for row, _ in rows])
        ids = _new_ids(conn, batch, before)
    insert_items(
        conn, [(ev_id, *item) for ev_id, (_, items) in zip(ids, rows, strict=True) for item in items]
    )


def _new_ids(conn: Connection, batch: list[EvaluationInput], before: int) -> list[int]:
    """The ids of the evaluations of `batch` just inserted: read back past the highest id before, by
    their key; any not found there (ids are not promised to grow) by their key alone."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    found = conn.exec_driver_sql(
        f"SELECT source, external_id, id FROM {EVALUATIONS.name} WHERE id > {mark}", (before,)
    )
    by_key = {(source, ext): ev_id for source, ext, ev_id in found.all()}
    found_ids = [by_key.get((d.source, d.external_id)) for d in batch]
    if None in found_ids:
        missing = [d for d, ev_id in zip(batch, found_ids, strict=True) if ev_id is None]
        by_key.update({key: ev_id for key, (ev_id,) in stored_by_key(conn, ("id",), missing).items()})
        found_ids = [by_key[(d.source, d.external_id)] for d in batch]
    return found_ids  # type: ignore[return-value]  # every one found by now


def import_records(
    unit_of_work: Callable[[], Any],
    records: Iterable[Record],
    now: datetime,
    actor: str,
    *,
    dry_run: bool,
    progress: Callable[[int], None] | None = None,
    defer: list[Record] | None = None,
) -> ImportSummary:
    """Sort (and unless `dry_run`, store) valid records chunk by chunk; each chunk commits on its own,
    and a re-run skips what is already stored. With `defer`, the records that take the webhook's intake
    (NEW, CORRECTION, UNKNOWN_AGENT) are put there instead, neither counted nor stored: the importing
    process takes those of every share in the file's order, as one process would."""
    summary = ImportSummary()
    to_intake = (NEW, CORRECTION, UNKNOWN_AGENT)
    chunk: list[Record] = []
    planner: Planner | None = None

    def store(session: Session, sorted_records: list[tuple[Record, str]], rows: dict[int, Any]) -> None:
        history = [r.data for r, kind in sorted_records if kind == HISTORY and r.data is not None]
        insert_history(session, history, [rows[id(d)] for d in history])
        taken = [(r.data, kind) for r, kind in sorted_records if kind in to_intake and r.data is not None]
        # The webhook's intake: in bulk where it can be, then the rest one by one in the file's order
        # (with every later evaluation of their agents, so each agent's take effect in file order).
        results = intake_many(session, [Incoming(data, actor) for data, _ in taken], now) if taken else []
        for (data, kind), result in zip(taken, results, strict=True):
            if result is None:
                result = coaching.intake(session, data, now, actor)
            if result.case_id is not None and kind == NEW:
                summary.cases.add(result.case_id)
        if history:
            audit(session, now, actor, "evaluations_backfilled", count=len(history))

    def flush() -> None:
        nonlocal planner
        if planner is None:
            with unit_of_work() as session:
                planner = Planner(session, now)
        classified = planner.classify(chunk)
        # History rows are built before the write transaction; those found stored by then are dropped.
        history = [r.data for r, kind in classified if kind == HISTORY and r.data is not None]
        rows = {} if dry_run else dict(zip(map(id, history), planner.history_rows(history), strict=True))
        with unit_of_work() as session:
            sorted_records = planner.sort(session, classified)
            if defer is not None:
                defer.extend(record for record, kind in sorted_records if kind in to_intake)
                sorted_records = [(record, kind) for record, kind in sorted_records if kind not in to_intake]
            summary.counts.update(kind for _, kind in sorted_records)
            if not dry_run:
                store(session, sorted_records, rows)
        if progress is not None:
            progress(len(chunk))
        chunk.clear()

    for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()
    return summary
