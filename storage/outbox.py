"""Outgoing Slack messages and timers: queued in the transaction that needs them,
claimed by sweeps so that any number of processes never do the same work twice."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from storage.models import AuditEntry, OutboxMessage, Timer

LEASE = timedelta(seconds=120)


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
    row = OutboxMessage(
        dedupe_key=key,
        kind=kind,
        case_id=case_id,
        person_id=person_id,
        channel=channel,
        updates_key=updates_key,
        payload=payload or {},
        due_at=due_at or now,
        status="pending",
        attempts=0,
        created_at=now,
    )
    session.add(row)
    session.info["wake"] = True
    return row


def enqueue_refresh(session: Session, updates_key: str, *, case_id: int, what: str, now: datetime) -> None:
    """Queue an in-place update of a sent message. One pending update is enough: it renders the
    state as it is when it goes out, so later changes ride along with it."""
    pending = select(OutboxMessage.id).where(
        OutboxMessage.updates_key == updates_key, OutboxMessage.status == "pending"
    )
    if session.scalar(pending.limit(1)) is None:
        key = f"{updates_key}:refresh:{what}:{uuid.uuid4().hex[:12]}"
        enqueue(session, key, "refresh", now=now, case_id=case_id, updates_key=updates_key)


def enqueue_home(session: Session, person_id: int, now: datetime) -> None:
    """Queue a re-publish of someone's App Home (one pending at a time; it renders when it goes out)."""
    pending = select(OutboxMessage.id).where(
        OutboxMessage.kind == "home", OutboxMessage.person_id == person_id, OutboxMessage.status == "pending"
    )
    if session.scalar(pending.limit(1)) is None:
        enqueue(session, f"home:{person_id}:{uuid.uuid4().hex[:12]}", "home", now=now, person_id=person_id)


def claim_outbox(session: Session, now: datetime, *, limit: int, postgres: bool) -> list[int]:
    """Lease due rows (pending, or sending with an expired lease) and return their ids."""
    query = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.due_at <= now,
            or_(
                OutboxMessage.status == "pending",
                (OutboxMessage.status == "sending") & (OutboxMessage.lease_until < now),
            ),
        )
        .order_by(OutboxMessage.due_at, OutboxMessage.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status="sending", lease_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
        )
    return ids


def schedule_timer(session: Session, key: str, kind: str, *, case_id: int | None, due_at: datetime) -> None:
    if session.scalar(select(Timer.id).where(Timer.dedupe_key == key)) is None:
        session.add(Timer(dedupe_key=key, kind=kind, case_id=case_id, due_at=due_at, status="pending"))


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
