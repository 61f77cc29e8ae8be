"""The outbox sweep: claim due messages, re-check the case, send once, record the result.

At-least-once made effectively-once: every message carries Slack `metadata` with its
dedupe key, and a row that was claimed before (its lease expired mid-send) is looked
up in the conversation's recent history before it is sent again.
"""

from __future__ import annotations

import http.client
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select

from bot import followup
from bot.charts import hit_rate_chart
from bot.clock import Clock
from bot.metrics import OUTBOX
from bot.report import weekly_hit_rates
from bot.roles import roles_of
from bot.slack.home import home_view
from bot.slack.messages import render, with_metadata
from storage.db import Database
from storage.models import Case, OutboxMessage, Person
from storage.outbox import claim_outbox, enqueue

log = logging.getLogger("coachloop.delivery")

PERMANENT = {
    "users_not_found",
    "user_not_found",
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "account_inactive",
    "cannot_dm_bot",
    "invalid_blocks",
    "msg_too_long",
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "no_slack_id",
    "message_not_found",
    "cant_update_message",
}
MAX_ATTEMPTS = 5
HISTORY_LOOKBACK = 100


class PermanentFailure(Exception):
    pass


@dataclass
class SweepResult:
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    recovered: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Job:
    """What one claimed row needs from Slack, decided inside a short transaction."""

    row_id: int
    key: str
    person_slack_id: str | None
    channel: str | None
    check_history: bool
    update_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any]
    created_at: datetime
    home_view: dict[str, Any] | None = None
    upload: bytes | None = None


def backoff(attempts: int) -> timedelta:
    base = min(30 * 2 ** max(0, attempts - 1), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


class OutboxSweep:
    def __init__(self, db: Database, slack: WebClient, clock: Clock, *, batch: int = 50) -> None:
        self.db, self.slack, self.clock, self.batch = db, slack, clock, batch
        self.postgres = not db.is_sqlite

    def run_once(self) -> SweepResult:
        result = SweepResult()
        now = self.clock.now()
        with self.db.unit_of_work() as session:
            ids = claim_outbox(session, now, limit=self.batch, postgres=self.postgres)
        for row_id in ids:
            self._deliver(row_id, now, result)
        return result

    def drain(self, rounds: int = 20) -> SweepResult:
        """Sweep until nothing due is left (or `rounds` sweeps ran)."""
        total = SweepResult()
        for _ in range(rounds):
            r = self.run_once()
            for name in ("sent", "skipped", "retried", "failed", "recovered"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
            total.errors += r.errors
            if not (r.sent or r.skipped or r.failed or r.recovered or r.retried):
                break
        return total

    # -- one row --------------------------------------------------------------------------

    def _prepare(self, row_id: int, now: datetime) -> _Job | str:
        """Render the message from current state, or say why there is nothing to send."""
        with self.db.unit_of_work() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status != "sending":
                return "gone"
            if row.kind == "home":
                return self._prepare_home(row, session, now)
            if row.kind == "digest_chart":
                return self._prepare_chart(row, session, now)
            moot = followup.skip_if_moot(session, row, now)
            if moot is not None:
                return moot
            case = session.get(Case, row.case_id) if row.case_id else None
            kind, update_ts, channel = row.kind, None, row.channel
            person = row.person
            if row.updates_key:
                target = session.scalar(
                    select(OutboxMessage).where(OutboxMessage.dedupe_key == row.updates_key)
                )
                if target is not None and target.status == "sending":
                    # The post is in flight with what it rendered before this change: update it after.
                    row.status, row.lease_until = "pending", None
                    row.attempts -= 1
                    row.due_at = now + timedelta(seconds=30)
                    return "the message it updates is being sent; updating it afterwards"
                if target is None or target.status != "sent":
                    row.status, row.lease_until = "skipped", None
                    return "the message it updates is not sent; when it goes out it shows the current state"
                kind, update_ts, channel = target.kind, target.slack_ts, target.slack_channel
                person = target.person  # the reader of the message being updated
            message = with_metadata(render(session, kind, case, row.payload, now, person), row)
            if channel is None and person is not None:
                channel = person.dm_channel
            return _Job(
                row_id=row.id,
                key=row.dedupe_key,
                person_slack_id=person.slack_id if person is not None else None,
                channel=channel,
                check_history=row.attempts > 1 and update_ts is None,
                update_ts=update_ts,
                text=message.text,
                blocks=message.blocks,
                metadata=message.metadata,
                created_at=row.created_at,
            )

    @staticmethod
    def _prepare_home(row: OutboxMessage, session: Any, now: datetime) -> _Job | str:
        person = row.person
        if person is None or not person.slack_id:
            row.status, row.lease_until = "skipped", None
            return "no Slack user to publish a Home for"
        return _Job(
            row_id=row.id,
            key=row.dedupe_key,
            person_slack_id=person.slack_id,
            channel="home",
            check_history=False,
            update_ts=None,
            text="",
            blocks=[],
            metadata={},
            created_at=row.created_at,
            home_view=home_view(session, person, now),
        )

    @staticmethod
    def _prepare_chart(row: OutboxMessage, session: Any, now: datetime) -> _Job | str:
        person = row.person
        if person is None:
            row.status, row.lease_until = "skipped", None
            return "no recipient"
        teams = [t.name for t in roles_of(session, person).oversees]
        png = hit_rate_chart(weekly_hit_rates(session, now, teams_named=teams))
        return _Job(
            row_id=row.id,
            key=row.dedupe_key,
            person_slack_id=person.slack_id,
            channel=person.dm_channel,
            check_history=False,
            update_ts=None,
            text="Hit rate per team, last 8 weeks",
            blocks=[],
            metadata={},
            created_at=row.created_at,
            upload=png,
        )

    def _deliver(self, row_id: int, now: datetime, result: SweepResult) -> None:
        try:
            job = self._prepare(row_id, now)
        except Exception as exc:  # a rendering bug must not stop the sweep or lose the row
            log.exception("could not render outbox row %s", row_id)
            self._fail(row_id, now, f"render_error: {type(exc).__name__}", result)
            return
        if isinstance(job, str):
            result.skipped += 1
            OUTBOX.labels("skipped").inc()
            return
        opened_channel: str | None = None
        try:
            if job.home_view is not None and job.person_slack_id:
                self.slack.views_publish(user_id=job.person_slack_id, view=job.home_view)
                self._mark_sent(row_id, "home", "", now, None)
                result.sent += 1
                OUTBOX.labels("home").inc()
                return
            if job.channel is None:
                if not job.person_slack_id:
                    raise PermanentFailure("no_slack_id")
                opened = self.slack.conversations_open(users=job.person_slack_id)
                job.channel = opened_channel = opened["channel"]["id"]
            assert job.channel is not None
            if job.check_history:
                found = self._already_sent(job.channel, job.key, job.created_at)
                if found:
                    self._mark_sent(row_id, found["channel"], found["ts"], now, opened_channel)
                    result.recovered += 1
                    OUTBOX.labels("recovered").inc()
                    return
            if job.upload is not None:
                uploaded = self.slack.files_upload_v2(
                    channel=job.channel,
                    file=job.upload,
                    filename="coaching-hit-rate.png",
                    title=job.text,
                )
                file_info: dict[str, Any] = uploaded.get("file") or {}
                channel, ts = job.channel, str(file_info.get("id", ""))
            elif job.update_ts:
                self.slack.chat_update(
                    channel=job.channel,
                    ts=job.update_ts,
                    text=job.text,
                    blocks=job.blocks,
                    metadata=job.metadata,
                )
                channel, ts = job.channel, job.update_ts
            else:
                sent = self.slack.chat_postMessage(
                    channel=job.channel, text=job.text, blocks=job.blocks, metadata=job.metadata
                )
                channel, ts = sent["channel"], sent["ts"]
        except PermanentFailure as exc:
            self._fail(row_id, now, str(exc), result)
            return
        except SlackApiError as exc:
            self._slack_error(row_id, now, exc, result)
            return
        except (OSError, http.client.HTTPException) as exc:
            self._retry_or_fail(row_id, now, f"network: {type(exc).__name__}", result)
            return
        self._mark_sent(row_id, channel, ts, now, opened_channel)
        result.sent += 1
        OUTBOX.labels("sent").inc()

    def _already_sent(self, channel: str, key: str, since: datetime) -> dict[str, str] | None:
        history = self.slack.conversations_history(
            channel=channel,
            include_all_metadata=True,
            limit=HISTORY_LOOKBACK,
            oldest=f"{since.timestamp() - 60:.6f}",
        )
        for message in history.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("dedupe_key") == key:
                return {"channel": channel, "ts": message["ts"]}
        return None

    def _mark_sent(self, row_id: int, channel: str, ts: str, now: datetime, dm_channel: str | None) -> None:
        with self.db.unit_of_work() as session:
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.status, row.slack_channel, row.slack_ts = "sent", channel, ts
            row.sent_at, row.lease_until, row.last_error = now, None, None
            if dm_channel and row.person_id:
                person = session.get(Person, row.person_id)
                if person is not None:
                    person.dm_channel = dm_channel

    def _slack_error(self, row_id: int, now: datetime, exc: SlackApiError, result: SweepResult) -> None:
        code = str(exc.response.get("error") or "")
        status = exc.response.status_code
        if status == 429 or code == "ratelimited":
            wait = int(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 30)))
            with self.db.unit_of_work() as session:
                row = session.get(OutboxMessage, row_id)
                assert row is not None
                # A rate-limited call was not carried out: it does not count as an attempt.
                row.status, row.lease_until = "pending", None
                row.attempts = max(0, row.attempts - 1)
                row.due_at = now + timedelta(seconds=wait)
                row.last_error = f"ratelimited: retry after {wait}s"
            result.retried += 1
            OUTBOX.labels("ratelimited").inc()
        elif code in PERMANENT:
            self._fail(row_id, now, code, result)
        elif status >= 500 or code in (
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ):
            self._retry_or_fail(row_id, now, code or f"http_{status}", result)
        else:
            self._fail(row_id, now, code or f"http_{status}", result)

    def _retry_or_fail(self, row_id: int, now: datetime, error: str, result: SweepResult) -> None:
        with self.db.unit_of_work() as session:
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            give_up = row.attempts >= MAX_ATTEMPTS
            if not give_up:
                row.status, row.lease_until, row.last_error = "pending", None, error
                row.due_at = now + backoff(row.attempts)
        if give_up:
            self._fail(row_id, now, f"{error} (gave up after {MAX_ATTEMPTS} attempts)", result)
        else:
            result.retried += 1
            OUTBOX.labels("retry").inc()

    def _fail(self, row_id: int, now: datetime, error: str, result: SweepResult) -> None:
        with self.db.unit_of_work() as session:
            row = session.get(OutboxMessage, row_id)
            assert row is not None
            row.status, row.lease_until, row.last_error = "failed", None, error[:500]
            if row.kind != "admin_alert":
                for admin in session.scalars(select(Person).where(Person.is_admin.is_(True))):
                    enqueue(
                        session,
                        f"alert:{row.dedupe_key}:{admin.id}",
                        "admin_alert",
                        now=now,
                        case_id=row.case_id,
                        person_id=admin.id,
                        payload={"failed_key": row.dedupe_key, "kind": row.kind, "error": error[:300]},
                    )
        result.failed += 1
        result.errors.append(f"{row_id}: {error}")
        OUTBOX.labels("failed").inc()
        log.warning("outbox row %s failed: %s", row_id, error)
