"""The outbox sweep: claim due messages, re-check the case, send once, record the result.

At-least-once made effectively-once: every message carries Slack `metadata` with its
dedupe key, and a row that was claimed before (its lease expired mid-send) is looked
up in the conversation's recent history before it is sent again.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot import coaching_blocks, followup
from bot.charts import WeeklySeries, hit_rate_chart
from bot.clock import Clock
from bot.measures_weekly import weekly_figures
from bot.metrics import OUTBOX, OUTBOX_FAILURES, error_code
from bot.roles import roles_of
from bot.slack.home import home_view
from bot.slack.messages import message_metadata
from bot.slack.outbox import render
from bot.team_calendar import calendar_for
from scheduler.pacing import POST, SlackLimits
from storage import logcontext
from storage.db import Database
from storage.models import Case, OutboxMessage, Person
from storage.outbox import (
    LEASE,
    anything_due,
    claim_outbox,
    enqueue,
    held_row,
    held_rows,
    new_owner,
    renew_lease,
    update_held,
)

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
MAX_ATTEMPTS = 8  # with the backoff below, about an hour of Slack failing before an admin hears
HISTORY_PAGE = 200  # messages per page when looking for a post an earlier attempt may have made
HISTORY_PAGES = 10  # pages read at most; past them, whether it was posted cannot be told
CLOCK_SKEW = timedelta(hours=1)  # how far this host's clock may be from Slack's
FRESH_LEASE = LEASE.total_seconds() / 3  # a lease younger than this outlasts the Slack call ahead


class PermanentFailure(Exception):
    pass


class LeaseLost(Exception):
    """Another sweeper holds the row now (this one's lease ran out): leave the row to it."""


class UnexpectedAnswer(Exception):
    """Slack answered ok, but without what the call returns (a channel id, a ts)."""


class HeldBack(Exception):
    """The call would go over one of Slack's limits (`SlackLimits`): the row waits until `until`
    without calling Slack."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"rate-limited until {until.isoformat()}")
        self.until = until


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
    home_for: int | None = None  # the person whose Home to render (after the claim's transaction)
    message: _Rendering | None = None  # the message to render (after the claim's transaction)
    leased_at: float | None = None  # when preparing it renewed the lease (monotonic seconds)
    paced: str | None = None  # the limit whose turn starting it took (its first call's, as the row told)
    chart: WeeklySeries | None = None  # drawn after the transaction closes
    upload: bytes | None = None  # a file ready to upload (the coaching blocks' calendar)
    filename: str = "coaching-hit-rate.png"


@dataclass(frozen=True)
class _Rendering:
    """What a message is rendered from, read again in a read transaction once the row is prepared."""

    kind: str
    case_id: int | None
    payload: dict[str, Any]
    person_id: int | None


class _Later:
    """A row to start again once the rest of its batch is delivered."""


LATER = _Later()
# What starting a row gave; a started row is its id, case and request (for the logs) and that.
_Start = _Job | str | HeldBack | _Later | Exception
_Started = tuple[int, int | None, str | None, _Start]


@dataclass
class _Outcome:
    channel: str
    ts: str
    recovered: bool = False


def _file_job(row: OutboxMessage, person: Person, title: str, **file: Any) -> _Job:
    """A file for a person's DM: a chart to draw (`chart`) or bytes ready to upload (`upload`)."""
    return _Job(
        row_id=row.id,
        key=row.dedupe_key,
        person_slack_id=person.slack_id,
        channel=person.dm_channel,
        check_history=False,
        update_ts=None,
        text=title,
        blocks=[],
        metadata={},
        created_at=row.created_at,
        **file,
    )


def _first_limit(job: _Job) -> str:
    """The Slack limit (as `OutboxSweep._call` names it) of the first call the job makes."""
    if job.home_for is not None or job.home_view is not None:
        return "views.publish"
    if job.channel is None:
        return "conversations.open"
    if job.check_history:
        return "conversations.history"
    if job.chart is not None or job.upload is not None:
        return "files.getUploadURLExternal"
    return "chat.update" if job.update_ts else f"chat.postMessage:{job.channel}"


def _row_limit(row: OutboxMessage) -> str | None:
    """The limit of the row's first call, as far as the row itself tells (before it is re-checked);
    None for a file, whose first call is known once it is prepared."""
    if row.kind == "home":
        return "views.publish"
    if row.kind in ("digest_chart", "block_ics"):
        return None
    if row.updates_key:
        return "chat.update"
    channel = row.channel or (row.person.dm_channel if row.person is not None else None)
    if channel is None:
        return "conversations.open"
    return "conversations.history" if row.attempts > 0 else f"{POST}:{channel}"


def backoff(attempts: int) -> timedelta:
    base = min(30 * 2 ** max(0, attempts - 1), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def retry_after(exc: SlackApiError) -> int | None:
    """The seconds Slack asks to wait when it rate-limited the call (429 `ratelimited`), else None."""
    if exc.response.status_code != 429 and exc.response.get("error") != "ratelimited":
        return None
    headers = exc.response.headers or {}
    value = headers.get("Retry-After", headers.get("retry-after", 30))
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 30


def _answer_text(answer: Any, *path: str) -> str:
    value = answer
    for name in path:
        value = value.get(name) if hasattr(value, "get") else None  # a dict or a SlackResponse
    if not isinstance(value, str) or not value:
        raise UnexpectedAnswer(f"the answer has no {'.'.join(path)}")
    return value


class OutboxSweep:
    """One sweeper: claims rows under its own owner token, renews a row's lease before each Slack
    call, and records an outcome only for rows it still holds."""

    def __init__(self, db: Database, slack: WebClient, clock: Clock, *, batch: int = 10) -> None:
        self.db, self.slack, self.clock, self.batch = db, slack, clock, batch
        self.postgres = not db.is_sqlite
        self.owner = new_owner()
        self.limits = SlackLimits()
        self._opened: dict[str, str] = {}  # Slack user -> DM conversation opened in this batch

    def run_once(self) -> SweepResult:
        """Claim a few due rows and, in the same transaction, start an attempt on each (`_start`); then
        render and send them one at a time, with no transaction open. An update of a message posted in
        the same batch starts once that post has gone (it needs the post's `ts`)."""
        result = SweepResult()
        now = self.clock.now()
        self._opened = {}
        with self.db.read() as session:
            if not anything_due(session, now):
                return result
        with self.db.unit_of_work() as session:
            ids = claim_outbox(session, now, limit=self.batch, postgres=self.postgres, owner=self.owner)
            started = self._start_rows(session, ids, now, mates=set(ids))
        later = self._deliver_rows(started, now, result)
        if later:
            now = self.clock.now()
            with self.db.unit_of_work() as session:
                started = self._start_rows(session, later, now, mates=set())
            self._deliver_rows(started, now, result)
        return result

    def _start_rows(self, session: Session, ids: list[int], now: datetime, mates: set[int]) -> list[_Started]:
        """Start an attempt on each of the rows `ids` this sweeper holds, in the order they came due:
        all in one savepoint, or, when one of them cannot be started, each in a savepoint of its own,
        so that it fails alone."""
        try:
            with session.begin_nested():
                rows = held_rows(session, ids, self.owner)
                return [self._start_one(session, row, now, mates, alone=False) for row in rows]
        except Exception:  # noqa: BLE001 - started again one at a time, below
            log.info("a row of this batch could not be started; starting them one at a time")
        rows = held_rows(session, ids, self.owner)
        return [self._start_one(session, row, now, mates, alone=True) for row in rows]

    def _start_one(
        self, session: Session, row: OutboxMessage, now: datetime, mates: set[int], *, alone: bool
    ) -> _Started:
        row_id, case_id, request_id = row.id, row.case_id, row.request_id
        # Log lines of this delivery carry the row, its case and the request that queued it.
        with logcontext.bound(outbox_id=row_id, case_id=case_id, request_id=request_id):
            if not alone:
                return row_id, case_id, request_id, self._start(row, session, now, mates)
            try:
                with session.begin_nested():
                    start: _Start = self._start(row, session, now, mates)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop the sweep
                start = exc
        return row_id, case_id, request_id, start

    def _deliver_rows(self, started: list[_Started], now: datetime, result: SweepResult) -> list[int]:
        """Deliver each started row; return those to start again after the others."""
        later = []
        for row_id, case_id, request_id, start in started:
            if isinstance(start, _Later):
                later.append(row_id)
                continue
            with logcontext.bound(outbox_id=row_id, case_id=case_id, request_id=request_id):
                self._deliver(row_id, start, now, result)
        return later

    def drain(self, rows: int = 1000) -> SweepResult:
        """Sweep until nothing due is left (or about `rows` rows were taken). Each round claims a few
        rows, so that a new message queued meanwhile waits for a few sends, not for a whole backlog."""
        total = SweepResult()
        for _ in range(-(-rows // self.batch)):
            r = self.run_once()
            for name in ("sent", "skipped", "retried", "failed", "recovered"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
            total.errors += r.errors
            if not (r.sent or r.skipped or r.failed or r.recovered or r.retried):
                break
        return total

    # -- one row --------------------------------------------------------------------------

    def _start(
        self, row: OutboxMessage, session: Session, now: datetime, mates: set[int]
    ) -> _Job | str | HeldBack | _Later:
        """Start an attempt on a row just claimed: decide what to send, or why nothing. A row whose
        first call must wait under Slack's limits goes back to the queue until its turn, not re-checked,
        not rendered and with no attempt counted (the `HeldBack` returned says until when)."""
        if row.attempts >= MAX_ATTEMPTS:
            # Earlier attempts ended with no outcome recorded (the sending process died).
            raise PermanentFailure(f"gave up after {MAX_ATTEMPTS} attempts that ended without an answer")
        limit = _row_limit(row)
        if limit is not None and (held := self.limits.turn(limit, row.id, now)) is not None:
            row.status, row.lease_until = "pending", None
            row.due_at, row.last_error = held, "held: waiting for its turn under Slack's rate limits"
            return HeldBack(held)
        job: _Job | str | _Later
        if row.kind == "home":
            job = self._prepare_home(row, session, now)
        elif row.kind == "digest_chart":
            job = self._prepare_chart(row, session, now)
        elif row.kind == "block_ics":
            job = self._prepare_calendar(row, session, now)
        else:
            job = self._recheck_and_render(row, session, now, mates)
        if not isinstance(job, _Job):
            return job
        # Only posts carry their dedupe key in metadata; updates, Home views and uploads are idempotent
        # or cannot be found again.
        only_posts = (
            job.update_ts is None and job.home_for is None and job.chart is None and job.upload is None
        )
        job.check_history = row.attempts > 0 and only_posts
        job.paced = limit
        row.attempts += 1
        row.lease_until = now + LEASE  # the first Slack call needs no renewal of its own
        job.leased_at = time.monotonic()
        return job

    def _first_call_waits(self, job: _Job, now: datetime) -> datetime | None:
        """Until when the job's first call must wait: its turn was taken for the row's first call as
        the row told it (`_row_limit`), but preparing it (the message it updates, a file) or a row
        delivered before it in its batch (that opened its person's conversation) may have made it
        another; and a 429 may have come since."""
        if job.channel is None and job.person_slack_id in self._opened:
            job.channel = self._opened[job.person_slack_id]
        first = _first_limit(job)
        if first == job.paced:
            return self.limits.held_until(first, now)
        job.paced = first
        return self.limits.turn(first, job.row_id, now)

    def _render(self, job: _Job, now: datetime) -> None:
        """Render what the job sends, in a read transaction: it holds no write lock, so scores and
        clicks are not kept waiting while a Home reads its figures or a message its case."""
        if job.home_for is not None:
            with self.db.read() as session:
                job.home_view = home_view(session, session.get(Person, job.home_for), now)
        if job.message is not None:
            what = job.message
            with self.db.read() as session:
                case = session.get(Case, what.case_id) if what.case_id else None
                person = session.get(Person, what.person_id) if what.person_id else None
                message = render(session, what.kind, case, what.payload, now, person)
            job.text, job.blocks = message.text, message.blocks

    def _recheck_and_render(
        self, row: OutboxMessage, session: Session, now: datetime, mates: set[int]
    ) -> _Job | str | _Later:
        """The one place a queued message meets the current state at send time: re-check that it is
        still due, and say what to render from the case as it is now (or why nothing goes out)."""
        if row.kind == "block_start" and not coaching_blocks.waiting_cases(session, row.person_id or 0):
            row.status, row.lease_until = "skipped", None
            return "nothing is waiting for the block any more"
        moot = followup.skip_if_moot(session, row, now)
        if moot is not None:
            return moot
        kind, update_ts, channel = row.kind, None, row.channel
        person = row.person
        if row.updates_key:
            target = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == row.updates_key))
            if target is not None and target.status == "sending" and target.id in mates:
                return LATER  # this sweeper is about to send it
            if target is not None and (
                target.status == "sending" or (target.status == "pending" and target.attempts)
            ):
                # The post is in flight, or an earlier attempt may have made it (its retry finds it and
                # keeps it), with what it rendered before this change: update it after.
                row.status, row.lease_until, row.claimed_by = "pending", None, None
                row.due_at = max(target.due_at, now) + timedelta(seconds=30)
                return "the message it updates is being sent; updating it afterwards"
            if target is None or target.status != "sent":
                row.status, row.lease_until = "skipped", None
                return "the message it updates is not sent; when it goes out it shows the current state"
            kind, update_ts, channel = target.kind, target.slack_ts, target.slack_channel
            person = target.person  # rendered for the reader of the message being updated
        if channel is None and person is not None:
            channel = person.dm_channel
        return _Job(
            row_id=row.id,
            key=row.dedupe_key,
            person_slack_id=person.slack_id if person is not None else None,
            channel=channel,
            check_history=False,
            update_ts=update_ts,
            text="",
            blocks=[],
            metadata=message_metadata(row),
            created_at=row.created_at,
            message=_Rendering(kind, row.case_id, dict(row.payload), person.id if person else None),
        )

    @staticmethod
    def _prepare_home(row: OutboxMessage, session: Session, now: datetime) -> _Job | str:
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
            home_for=person.id,
        )

    @staticmethod
    def _prepare_chart(row: OutboxMessage, session: Session, now: datetime) -> _Job | str:
        """The chart's figures; it is drawn after the transaction closes."""
        person = row.person
        if person is None:
            row.status, row.lease_until = "skipped", None
            return "no recipient"
        teams = [t.name for t in roles_of(session, person).oversees]
        series = weekly_figures(session, now, teams_named=teams).hit_rate
        if series.empty:  # the digest's text says there is nothing to chart yet
            row.status, row.lease_until = "skipped", None
            return "no data yet"
        return _file_job(row, person, "Hit rate per team, last 8 weeks", chart=series)

    @staticmethod
    def _prepare_calendar(row: OutboxMessage, session: Session, now: datetime) -> _Job | str:
        """The leader's coaching blocks as an .ics file, uploaded to their DM."""
        person = row.person
        team = coaching_blocks.led_team(session, person) if person is not None else None
        specs = coaching_blocks.blocks_of(session, person, team) if person and team else []
        if person is None or team is None or not specs:
            row.status, row.lease_until = "skipped", None
            return "no coaching blocks to put in a calendar"
        return _file_job(
            row,
            person,
            "Your coaching blocks: open the file to add them to your calendar, weekly",
            upload=coaching_blocks.calendar_file(specs, calendar_for(team), person, now),
            filename="coaching-blocks.ics",
        )

    def _deliver(
        self, row_id: int, start: _Job | str | Exception, started_at: datetime, result: SweepResult
    ) -> None:
        """Carry a started row through: render it, send it, record the outcome."""
        now = self.clock.now()
        if isinstance(start, HeldBack):  # already back in the queue
            result.retried += 1
            OUTBOX.labels("held").inc()
            return
        if isinstance(start, str):
            result.skipped += 1
            OUTBOX.labels("skipped").inc()
            return
        if isinstance(start, PermanentFailure):
            self._fail(row_id, now, str(start), result)
            return
        job = start
        if isinstance(job, _Job) and (until := self._first_call_waits(job, now)) is not None:
            self._hold(row_id, until, result)  # not rendered: Slack would not take it yet
            return
        try:
            if isinstance(job, Exception):  # starting it failed on what it read
                raise job
            self._render(job, started_at)
        except Exception as exc:  # a rendering bug must not stop the sweep or lose the row
            log.exception("could not render outbox row %s", row_id)
            self._fail(row_id, now, f"render_error: {type(exc).__name__}", result)
            return
        try:
            outcome = self._send(job)
        except LeaseLost:
            log.warning("outbox row %s was taken over by another sweeper; leaving it to that one", row_id)
            result.skipped += 1
            return
        except HeldBack as exc:
            self._hold(row_id, exc.until, result)
            return
        except PermanentFailure as exc:
            self._fail(row_id, now, str(exc), result)
            return
        except SlackApiError as exc:
            self._slack_error(row_id, now, exc, result)
            return
        except (OSError, http.client.HTTPException) as exc:
            self._retry_or_fail(row_id, now, f"network: {type(exc).__name__}", result)
            return
        except Exception as exc:  # noqa: BLE001 - one bad row must not stop the sweep
            log.exception("unexpected error sending outbox row %s", row_id)
            self._retry_or_fail(row_id, now, f"unexpected: {type(exc).__name__}", result)
            return
        if not self._mark_sent(row_id, outcome, now):
            result.skipped += 1
            return
        if outcome.recovered:
            result.recovered += 1
            OUTBOX.labels("recovered").inc()
        else:
            result.sent += 1
            OUTBOX.labels("home" if job.home_view is not None else "sent").inc()

    def _renew(self, job: _Job) -> None:
        """Right before a Slack call: extend this sweeper's lease, or stop if the row is not ours now.
        The first call after `_prepare` goes on its lease, unless rendering took a good part of it."""
        if job.leased_at is not None and time.monotonic() - job.leased_at < FRESH_LEASE:
            job.leased_at = None
            return
        job.leased_at = None
        with self.db.unit_of_work() as session:
            if not renew_lease(session, job.row_id, self.owner, self.clock.now()):
                raise LeaseLost(job.row_id)

    def _call(self, job: _Job, limit: str, call: Callable[[], Any]) -> Any:
        """One Slack call for the row under `limit` (a method, or a post's channel): held back until
        its turn under Slack's limits (preparing the row took the first call's), else made after
        renewing the lease. A 429 puts the limit in force for its Retry-After."""
        now = self.clock.now()
        if limit == job.paced:
            job.paced, until = None, self.limits.held_until(limit, now)
        else:
            until = self.limits.turn(limit, job.row_id, now)
        if until is not None:
            raise HeldBack(until)
        self._renew(job)
        try:
            return call()
        except SlackApiError as exc:
            wait = retry_after(exc)
            if wait is not None:
                now = self.clock.now()
                self.limits.hold(limit, now + timedelta(seconds=wait), now)
            raise

    def _send(self, job: _Job) -> _Outcome:
        """The Slack calls for one row, each preceded by a lease renewal; no transaction is open."""
        slack = self.slack
        if job.home_view is not None:
            if not job.person_slack_id:
                raise PermanentFailure("no_slack_id")
            user, view = job.person_slack_id, job.home_view
            self._call(job, "views.publish", lambda: slack.views_publish(user_id=user, view=view))
            return _Outcome("home", "")
        upload = hit_rate_chart(job.chart) if job.chart is not None else job.upload
        if job.channel is None:
            job.channel = self._dm_channel(job)
        channel = job.channel
        if job.check_history:
            found = self._already_sent(job, channel)
            if found is not None:
                return _Outcome(channel, found, recovered=True)
        if upload is not None:
            uploaded = self._call(
                job,
                "files.getUploadURLExternal",
                lambda: slack.files_upload_v2(
                    channel=channel, file=upload, filename=job.filename, title=job.text
                ),
            )
            file_info: dict[str, Any] = uploaded.get("file") or {}
            return _Outcome(channel, str(file_info.get("id", "")))
        if job.update_ts:
            ts = job.update_ts
            self._call(
                job,
                "chat.update",
                lambda: slack.chat_update(
                    channel=channel, ts=ts, text=job.text, blocks=job.blocks, metadata=job.metadata
                ),
            )
            return _Outcome(channel, ts)
        sent = self._call(
            job,
            f"chat.postMessage:{channel}",
            lambda: slack.chat_postMessage(
                channel=channel, text=job.text, blocks=job.blocks, metadata=job.metadata
            ),
        )
        return _Outcome(_answer_text(sent, "channel"), _answer_text(sent, "ts"))

    def _dm_channel(self, job: _Job) -> str:
        """Open the DM conversation with the job's person, and keep it on the person at once: a post
        Slack holds back, and the next message to them, do not open it again (one started in the same
        batch, before it was kept, finds it in `_opened`)."""
        user = job.person_slack_id
        if not user:
            raise PermanentFailure("no_slack_id")
        answer = self._call(job, "conversations.open", lambda: self.slack.conversations_open(users=user))
        channel = _answer_text(answer, "channel", "id")
        with self.db.unit_of_work() as session:
            session.execute(
                update(Person)
                .where(Person.slack_id == user, Person.dm_channel.is_(None))
                .values(dm_channel=channel)
            )
        self._opened[user] = channel
        return channel

    def _already_sent(self, job: _Job, channel: str) -> str | None:
        """The `ts` of the job's message if an earlier attempt posted it: the conversation's history
        since the row was queued, page by page. Message times are Slack's clock and the row's is this
        host's, so the search starts CLOCK_SKEW earlier."""
        oldest = f"{(job.created_at - CLOCK_SKEW).timestamp():.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):

            def read(after: str | None = cursor) -> Any:
                return self.slack.conversations_history(
                    channel=channel,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    oldest=oldest,
                    cursor=after,
                )

            page = self._call(job, "conversations.history", read)
            for message in page.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("dedupe_key") == job.key:
                    return str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not page.get("has_more") or not cursor:
                return None
        # Neither found nor shown absent: sending could double it, so it is not sent, and admins are told.
        raise PermanentFailure(
            f"history_too_long: more than {HISTORY_PAGES * HISTORY_PAGE} messages to search"
        )

    def _mark_sent(self, row_id: int, outcome: _Outcome, now: datetime) -> bool:
        """Record the message as sent, only while this sweeper still holds the row."""
        with self.db.unit_of_work() as session:
            held = update_held(
                session, row_id, self.owner, status="sent", slack_channel=outcome.channel,
                slack_ts=outcome.ts, sent_at=now, lease_until=None, last_error=None,
            )  # fmt: skip
        if not held:
            log.warning("outbox row %s was taken over while it was sent; the taker checks first", row_id)
        return held

    def _slack_error(self, row_id: int, now: datetime, exc: SlackApiError, result: SweepResult) -> None:
        code = str(exc.response.get("error") or "")
        status = exc.response.status_code
        wait = retry_after(exc)
        if wait is not None:
            self._defer(row_id, now + timedelta(seconds=wait), f"ratelimited: retry after {wait}s")
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

    def _hold(self, row_id: int, until: datetime, result: SweepResult) -> None:
        """Back to pending while Slack's limit on the row's call is in force."""
        self._defer(row_id, until, "ratelimited: held back until Slack's Retry-After has passed")
        result.retried += 1
        OUTBOX.labels("held").inc()

    def _defer(self, row_id: int, until: datetime, reason: str) -> None:
        """Back to pending until `until`. An attempt Slack refused to carry out is not counted."""
        with self.db.unit_of_work() as session:
            row = held_row(session, row_id, self.owner)
            if row is None:
                return
            row.status, row.lease_until = "pending", None
            row.attempts = max(0, row.attempts - 1)
            row.due_at, row.last_error = until, reason

    def _retry_or_fail(self, row_id: int, now: datetime, error: str, result: SweepResult) -> None:
        with self.db.unit_of_work() as session:
            row = held_row(session, row_id, self.owner)
            if row is None:
                return
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
            row = held_row(session, row_id, self.owner)
            if row is None:
                return
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
        OUTBOX_FAILURES.labels(error_code(error)).inc()
        log.warning("outbox row %s failed: %s", row_id, error)
