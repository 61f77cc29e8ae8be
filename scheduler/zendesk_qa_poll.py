"""The Zendesk QA poller: pull new and edited reviews into the same intake as the webhook.

Each workspace has a cursor row. A poll claims it (a lease, so one process polls a workspace
at a time), reads the window [position - overlap, now - END_BEHIND_NOW) page by page, hands each
review to `coaching.intake` in its own transaction, and moves `position` to the window's end only
when every page went through. The window ends a little before now so that a review created or
edited while the pages are read (even stamped by a clock somewhat behind ours) falls after it: an
edit during the poll can then only take a review out of the window, which changes the window's
total, and the client reads the window again rather than step over the review behind it.
Repeats inside the overlap are answered as repeats (source + id), so a restart or a second
replica never skips or doubles a review. A failed poll keeps the cursor, waits longer each time
(up to an hour), shows in /metrics, and after `ALERT_AFTER` failures in a row tells the org
file's admins once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import coaching
from bot.app.services import Services
from bot.evaluation_input import PayloadErrors, parse_evaluation
from bot.metrics import POLLS, PULLED
from bot.zendesk_qa import SOURCE, CategoryScale, UnknownCategory, review_to_evaluation, scales_from
from connectors.zendesk_qa import ExportApiError, ZendeskQAClient, ZendeskQAConnection
from storage.models import Person, PollCursor
from storage.outbox import enqueue

log = logging.getLogger("coachloop.zendesk_qa")
LEASE = timedelta(minutes=10)
END_BEHIND_NOW = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
ALERT_AFTER = 3


@dataclass
class PollReport:
    workspace: str
    polled: bool = False
    window: tuple[datetime, datetime] | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    error: str | None = None

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        PULLED.labels(SOURCE, outcome).inc()

    def summary(self) -> str:
        if not self.polled:
            return f"workspace {self.workspace}: not due (or polled by another process)"
        if self.error:
            return f"workspace {self.workspace}: failed: {self.error}"
        got = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items())) or "no reviews"
        return f"workspace {self.workspace}: {got}" + (
            f"; refused: {len(self.rejected)}" if self.rejected else ""
        )


class ZendeskQAPoller:
    def __init__(self, services: Services, connection: ZendeskQAConnection, client: ZendeskQAClient) -> None:
        self.services, self.connection, self.client = services, connection, client
        self._scales: dict[str, dict[str, CategoryScale]] = {}

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.connection.poll_every_minutes)

    def run_once(self, *, force: bool = False) -> list[PollReport]:
        return [self.poll(ws, force=force) for ws in self.connection.workspaces]

    # -- the cursor ----------------------------------------------------------------------------

    def _claim(self, workspace: str, now: datetime, force: bool) -> datetime | None:
        """Lease the workspace's cursor; returns where to start reading, or None when not ours now."""
        db = self.services.db
        try:
            with db.unit_of_work() as session:
                exists = session.scalar(
                    select(PollCursor.id).where(PollCursor.connector == SOURCE, PollCursor.scope == workspace)
                )
                if exists is None:
                    session.add(PollCursor(connector=SOURCE, scope=workspace, next_poll_at=now))
        except IntegrityError:
            pass  # another process created it
        with db.unit_of_work() as session:
            claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(PollCursor)
                .where(
                    PollCursor.connector == SOURCE,
                    PollCursor.scope == workspace,
                    or_(PollCursor.lease_until.is_(None), PollCursor.lease_until < now),
                    *(() if force else (PollCursor.next_poll_at <= now,)),
                )
                .values(lease_until=now + LEASE)
            )
            if claimed.rowcount != 1:
                return None
            cursor = self._cursor(session, workspace)
            first = now - timedelta(days=self.connection.first_poll_days_back)
            return (cursor.position or first) - timedelta(minutes=self.connection.overlap_minutes)

    @staticmethod
    def _cursor(session: Session, workspace: str) -> PollCursor:
        cursor = session.scalar(
            select(PollCursor).where(PollCursor.connector == SOURCE, PollCursor.scope == workspace)
        )
        assert cursor is not None
        return cursor

    def _succeeded(self, workspace: str, end: datetime, now: datetime) -> None:
        with self.services.db.unit_of_work() as session:
            cursor = self._cursor(session, workspace)
            cursor.position = max(cursor.position or end, end)
            cursor.next_poll_at = now + self.interval
            cursor.lease_until = None
            cursor.last_success_at = now
            cursor.consecutive_failures = 0
            cursor.failing_since = None
            cursor.last_error = None

    def _failed(self, workspace: str, error: str, now: datetime) -> None:
        with self.services.db.unit_of_work() as session:
            cursor = self._cursor(session, workspace)
            cursor.consecutive_failures += 1
            cursor.failing_since = cursor.failing_since or now
            cursor.last_error = error[:500]
            cursor.lease_until = None
            cursor.next_poll_at = now + min(self.interval * 2**cursor.consecutive_failures, MAX_BACKOFF)
            failures = cursor.consecutive_failures
            if failures >= ALERT_AFTER:
                for admin in session.scalars(select(Person).where(Person.is_admin.is_(True))):
                    enqueue(
                        session,
                        f"poll:{SOURCE}:{workspace}:{cursor.failing_since.isoformat()}:alert:{admin.id}",
                        "connector_alert",
                        now=now,
                        person_id=admin.id,
                        payload={
                            "connector": "Zendesk QA",
                            "scope": f"workspace {workspace}",
                            "failures": failures,
                            "error": error[:300],
                        },
                    )
        POLLS.labels(SOURCE, "failed").inc()
        log.warning("Zendesk QA workspace %s: poll %d failed: %s", workspace, failures, error)

    # -- one poll ------------------------------------------------------------------------------

    def poll(self, workspace: str, *, force: bool = False) -> PollReport:
        report = PollReport(workspace)
        now = self.services.clock.now()
        start = self._claim(workspace, now, force)
        if start is None:
            return report
        end = now - END_BEHIND_NOW
        report.polled, report.window = True, (start, end)
        try:
            for conversation in self.client.conversations(workspace, start, end, self.connection.page_size):
                for review in conversation.get("reviews") or []:
                    self._take(workspace, conversation, review, report)
        except ExportApiError as exc:
            report.error = str(exc)
            self._failed(workspace, report.error, self.services.clock.now())
            return report
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            self._failed(workspace, report.error, self.services.clock.now())
            raise
        self._succeeded(workspace, end, self.services.clock.now())
        POLLS.labels(SOURCE, "ok").inc()
        return report

    def _scales_for(self, workspace: str, *, refresh: bool = False) -> dict[str, CategoryScale]:
        if refresh or workspace not in self._scales:
            self._scales[workspace] = scales_from(self.client.scorecards(workspace))
        return self._scales[workspace]

    def _take(
        self, workspace: str, conversation: dict[str, Any], review: dict[str, Any], report: PollReport
    ) -> None:
        review_id = str(review.get("id") or "?")
        try:
            try:
                payload = review_to_evaluation(conversation, review, self._scales_for(workspace))
            except UnknownCategory:  # a scorecard changed since we read them
                payload = review_to_evaluation(
                    conversation, review, self._scales_for(workspace, refresh=True)
                )
            data = parse_evaluation(payload)
        except (UnknownCategory, ValueError) as exc:
            self._refuse(report, review_id, str(exc))
            return
        except PayloadErrors as exc:
            self._refuse(report, review_id, "; ".join(f"{e['path']}: {e['message']}" for e in exc.errors))
            return
        for attempt in range(3):
            try:
                with self.services.db.unit_of_work() as session:
                    result = coaching.intake(session, data, self.services.clock.now(), f"poll:{SOURCE}")
                break
            except IntegrityError:
                if attempt == 2:  # the same review taken by another path at the same moment
                    raise
        report.count(result.status if result.created or result.status == "revised" else "repeat")

    @staticmethod
    def _refuse(report: PollReport, review_id: str, why: str) -> None:
        report.rejected.append(f"review {review_id}: {why}")
        report.count("refused")
        log.warning("Zendesk QA review %s refused: %s", review_id, why)


def start_poller(
    scheduler: BackgroundScheduler, services: Services, connection: ZendeskQAConnection
) -> ZendeskQAPoller:
    """Tick the poller every minute (or its interval, if shorter); each cursor says when it is due."""
    poller = ZendeskQAPoller(services, connection, ZendeskQAClient(connection.base_url, connection.token))
    every = min(60.0, poller.interval.total_seconds())
    scheduler.add_job(
        poller.run_once,
        "interval",
        seconds=every,
        jitter=min(5.0, every / 4),
        id="zendesk_qa_poll",
        next_run_time=datetime.now(UTC),
    )
    return poller
