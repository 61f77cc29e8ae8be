"""Outgoing Slack messages and timers: queued in the transaction that needs them,
claimed by sweeps so that any number of processes never do the same work twice.

A claim names its owner (a token per sweeper). The owner renews a row's lease right before
each Slack call and records the outcome only while it still holds the row, so a lease needs
to outlast one Slack call, not a whole batch: a crashed sweeper's rows are free again soon."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, case, func, insert, literal_column, or_, select, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert, Select
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from storage.logcontext import REQUEST_ID
from storage.models import AuditEntry, Base, OutboxMessage, Person, TeamEscalation, TeamQALead, Timer
from storage.planner import filter_only
from storage.unique import token

LEASE = timedelta(seconds=30)  # > one Slack call (10 s timeout, no retries inside a call)


def new_owner() -> str:
    return token()


def _insert_once(session: Session, model: type[Base], values: dict[str, Any]) -> int | None:
    """Insert a row unless its dedupe key exists; a concurrent insert of the same key is not an error.
    Returns the new id, or None."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = model.__table__
    statement = (
        dialect.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id)
    )
    return session.execute(statement).scalar()


def _insert_all_once(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """`_insert_once` for many rows in one statement."""
    if not rows:
        return
    session.flush()  # as `Session.execute` would: what this transaction changed is written out first
    conn = session.connection()
    conn.execute(_insert_skipping_twins(conn.dialect.name, model.__table__), rows)


@functools.cache
def _insert_skipping_twins(dialect_name: str, table: Table) -> Insert:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING, built once per table: an executemany of it
    costs one compiled statement, whatever the count."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=["dedupe_key"])


def _scalars(session: Session, statement: Select[Any], values: dict[str, Any]) -> list[Any]:
    """A prebuilt query's first column, run on the transaction's connection (without the ORM's work per
    statement), after writing out what the transaction changed, as the ORM's own queries do."""
    session.flush()
    return list(session.connection().scalars(statement, values))


def outbox_row(
    key: str,
    kind: str,
    *,
    now: datetime,
    due_at: datetime | None = None,
    case_id: int | None = None,
    person_id: int | None = None,
    channel: str | None = None,
    updates_key: str | None = None,
    payload: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The values of a new pending outbox row (`request_id` defaults to the current request's)."""
    return {
        "dedupe_key": key,
        "kind": kind,
        "case_id": case_id,
        "person_id": person_id,
        "channel": channel,
        "updates_key": updates_key,
        "payload": payload or {},
        "due_at": due_at or now,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "request_id": request_id or REQUEST_ID.get(),
    }


def enqueue(
    session: Session,
    key: str,
    kind: str,
    *,
    now: datetime,
    due_at: datetime | None = None,
    case_id: int | None = None,
    person_id: int | None = None,
    channel: str | None = None,
    updates_key: str | None = None,
    payload: dict[str, Any] | None = None,
) -> OutboxMessage | None:
    """Queue a message once per dedupe key; a repeat of the key is a no-op (returns None)."""
    if session.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == key)) is not None:
        return None
    values = outbox_row(
        key, kind, now=now, due_at=due_at, case_id=case_id, person_id=person_id, channel=channel,
        updates_key=updates_key, payload=payload,
    )  # fmt: skip
    row_id = _insert_once(session, OutboxMessage, values)
    if row_id is None:
        return None
    session.info["wake"] = True
    return session.get(OutboxMessage, row_id)


def enqueue_all(session: Session, rows: list[dict[str, Any]]) -> None:
    """Queue many messages (rows from `outbox_row`) in one statement; a key already queued is skipped."""
    if rows:
        _insert_all_once(session, OutboxMessage, rows)
        session.info["wake"] = True


def enqueue_refresh(session: Session, updates_key: str, *, case_id: int, what: str, now: datetime) -> None:
    """Queue an in-place update of a message. One pending update is enough, and none while the message
    itself waits to go: each renders the state as it is when it goes out, so later changes ride along."""
    enqueue_refreshes(session, {updates_key: (case_id, what, None)}, now)


def enqueue_refreshes(
    session: Session, wanted: dict[str, tuple[int, str, str | None]], now: datetime
) -> None:
    """`enqueue_refresh` for many messages at once: updates key -> (case id, what, request id; None for
    the current request's), in two statements however many."""
    enqueue_all(session, refresh_rows(session, wanted, now))


_KEYS: BindParameter[Any] = bindparam("keys", expanding=True)
# Messages that will show a change without a refresh of their own: an update of them is pending, or
# they have not been tried yet (each renders the state as it is when it goes out). On PostgreSQL a
# row a sweeper is claiming at this moment is passed over (a refresh is queued, as for a message being
# sent), and one found stays locked until this transaction ends, so no sweeper claims and renders it
# before the change is visible.
_SHOWS_CHANGES = (
    select(func.coalesce(OutboxMessage.updates_key, OutboxMessage.dedupe_key))
    .where(
        or_(  # each branch names `status` itself (the second only to filter by): each reads its keys' index
            and_(OutboxMessage.updates_key.in_(_KEYS), OutboxMessage.status == "pending"),
            and_(OutboxMessage.dedupe_key.in_(_KEYS), filter_only(OutboxMessage.status == "pending"),
                 OutboxMessage.attempts == 0),
        )
    )
    .with_for_update(read=True, skip_locked=True)
)


def refresh_rows(
    session: Session, wanted: dict[str, tuple[int, str, str | None]], now: datetime
) -> list[dict[str, Any]]:
    """The outbox rows `enqueue_refreshes` would insert (for one insert with other rows): none for a
    message that will show the change anyway."""
    if not wanted:
        return []
    pending = set(_scalars(session, _SHOWS_CHANGES, {"keys": list(wanted)}))
    return [
        outbox_row(f"{key}:refresh:{what}:{token()}", "refresh", now=now, case_id=case_id,
                   updates_key=key, request_id=request_id)  # fmt: skip
        for key, (case_id, what, request_id) in wanted.items()
        if key not in pending
    ]


# Written out, not bound: the partial index ix_outbox_pending_homes then serves the query under any
# plan, including a generic plan PostgreSQL makes without the values.
_PENDING_HOME = and_(
    OutboxMessage.status == literal_column("'pending'"), OutboxMessage.kind == literal_column("'home'")
)


def enqueue_home(session: Session, person_id: int, now: datetime) -> None:
    """Queue a re-publish of someone's App Home (one pending at a time; it renders when it goes out)."""
    pending = select(OutboxMessage.id).where(_PENDING_HOME, OutboxMessage.person_id == person_id)
    if session.scalar(pending.limit(1)) is None:
        enqueue(session, f"home:{person_id}:{token()}", "home", now=now, person_id=person_id)


def enqueue_homes(
    session: Session,
    person_ids: Iterable[int],
    now: datetime,
    *,
    team_ids: Iterable[int] = (),
    request_id: str | None = None,
) -> None:
    """`enqueue_home` for these people and the escalation contacts and QA leads of `team_ids`, in two
    statements however many people: those with no Slack id, or with a re-publish already pending, are
    left out (coalesced: one pending Home per person covers every change until it goes out)."""
    enqueue_all(session, home_rows(session, person_ids, now, team_ids=team_ids, request_id=request_id))


def _homes_due(with_teams: bool) -> Select[Any]:
    wanted: ColumnElement[bool] = Person.id.in_(bindparam("people", expanding=True))
    if with_teams:
        # One set of ids, not an OR of conditions: PostgreSQL reads the whole people table for an OR.
        teams: BindParameter[Any] = bindparam("teams", expanding=True)
        contacts = select(TeamEscalation.person_id).where(TeamEscalation.team_id.in_(teams))
        qa_leads = select(TeamQALead.person_id).where(TeamQALead.team_id.in_(teams))
        wanted = Person.id.in_(union(select(Person.id).where(wanted), contacts, qa_leads))
    pending = select(OutboxMessage.id).where(_PENDING_HOME, OutboxMessage.person_id == Person.id)
    return select(Person.id).where(wanted, Person.slack_id.is_not(None), ~pending.exists())


_HOMES_DUE = {with_teams: _homes_due(with_teams) for with_teams in (False, True)}


def home_rows(
    session: Session,
    person_ids: Iterable[int],
    now: datetime,
    *,
    team_ids: Iterable[int] = (),
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """The outbox rows `enqueue_homes` would insert (for one insert with other rows)."""
    teams = sorted(set(team_ids))
    values: dict[str, Any] = {"people": list(person_ids)}
    if teams:
        values["teams"] = teams
    due = _scalars(session, _HOMES_DUE[bool(teams)], values)
    return [
        outbox_row(f"home:{person_id}:{token()}", "home", now=now, person_id=person_id,
                   request_id=request_id)  # fmt: skip
        for person_id in sorted(set(due))
    ]


# New messages first, then in-place updates of messages already shown, then Home re-publishes: under a
# burst of scores, a leader hears of a new case before the refreshes that the burst queued.
SEND_ORDER = case(
    (OutboxMessage.kind == "home", 2),
    (OutboxMessage.updates_key.is_not(None), 1),
    else_=0,
)


def _due(now: datetime) -> ColumnElement[bool]:
    """Rows a sweeper may claim: due, and pending or left sending with an expired lease."""
    return and_(
        OutboxMessage.due_at <= now,
        or_(
            OutboxMessage.status == "pending",
            (OutboxMessage.status == "sending") & (OutboxMessage.lease_until < now),
        ),
    )


def anything_due(session: Session, now: datetime) -> bool:
    """Whether a claim now would find a row: asked in a read, so that a sweep with nothing to do takes
    no write lock."""
    return session.scalar(select(OutboxMessage.id).where(_due(now)).limit(1)) is not None


def claim_outbox(
    session: Session, now: datetime, *, limit: int, postgres: bool, owner: str | None = None
) -> list[int]:
    """Lease due rows (pending, or sending with an expired lease) to `owner`; return their ids.
    Attempts are counted when a send starts (`start_attempt`), not here."""
    query = (
        select(OutboxMessage.id)
        .where(_due(now))
        .order_by(SEND_ORDER, OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status="sending", lease_until=now + LEASE, claimed_by=owner or new_owner())
        )
    return ids


def update_held(session: Session, row_id: int, owner: str, **values: Any) -> bool:
    """Set `values` on a row `owner` still holds, in one statement; False (and nothing changed) when
    another sweeper has taken it over."""
    held = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row_id,
            OutboxMessage.claimed_by == owner,
            OutboxMessage.status == "sending",
        )
        .values(**values)
    )
    return held.rowcount == 1  # type: ignore[attr-defined]


def renew_lease(session: Session, row_id: int, owner: str, now: datetime) -> bool:
    """Extend `owner`'s lease on a row it still holds; False when another sweeper has taken it over."""
    return update_held(session, row_id, owner, lease_until=now + LEASE)


def held_row(session: Session, row_id: int, owner: str) -> OutboxMessage | None:
    """The row, locked, while `owner` still holds it (None once another sweeper took it over)."""
    return next(iter(held_rows(session, [row_id], owner)), None)


def held_rows(session: Session, ids: list[int], owner: str) -> list[OutboxMessage]:
    """Those of the rows `ids` that `owner` still holds, locked, in the order they came due."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == owner)
            .where(OutboxMessage.status == "sending")
            .order_by(OutboxMessage.due_at, OutboxMessage.id)
            .with_for_update(of=OutboxMessage)
        )
    )


def insert_once(session: Session, row: object) -> bool:
    """Add `row` in a savepoint: False (and nothing added) when another transaction already holds its
    unique key, so that concurrent sweeps each do a piece of once-only work at most once."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def schedule_timer(session: Session, key: str, kind: str, *, case_id: int | None, due_at: datetime) -> None:
    """Write a timer once per dedupe key (a repeat, even from another process at once, is a no-op)."""
    if session.scalar(select(Timer.id).where(Timer.dedupe_key == key)) is None:
        values = {"dedupe_key": key, "kind": kind, "case_id": case_id, "due_at": due_at, "status": "pending"}
        _insert_once(session, Timer, values)


def schedule_timers(session: Session, rows: Sequence[tuple[str, str, int | None, datetime]]) -> None:
    """`schedule_timer` for many (key, kind, case id, due) at once, in one statement."""
    _insert_all_once(
        session,
        Timer,
        [
            {"dedupe_key": key, "kind": kind, "case_id": case_id, "due_at": due, "status": "pending"}
            for key, kind, case_id, due in rows
        ],
    )


def cancel_timers(session: Session, case_id: int, kinds: tuple[str, ...]) -> None:
    session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind.in_(kinds), Timer.status == "pending")
        .values(status="cancelled")
    )


def cancel_keys(session: Session, keys: list[str]) -> None:
    session.execute(
        update(Timer).where(Timer.dedupe_key.in_(keys), Timer.status == "pending").values(status="cancelled")
    )


def claim_timers(session: Session, now: datetime, *, limit: int, postgres: bool) -> list[Timer]:
    query = (
        select(Timer)
        .where(Timer.status == "pending", Timer.due_at <= now)
        .order_by(Timer.due_at, Timer.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def audit(
    session: Session, now: datetime, actor: str, action: str, *, case_id: int | None = None, **detail: Any
) -> None:
    session.add(AuditEntry(at=now, actor=actor, case_id=case_id, action=action, detail=detail))


_INSERT_AUDIT = insert(Base.metadata.tables[AuditEntry.__tablename__])


def audit_all(session: Session, entries: list[dict[str, Any]]) -> None:
    """Many audit entries (at, actor, case_id, action, detail) in one statement."""
    if entries:
        session.connection().execute(_INSERT_AUDIT, entries)
