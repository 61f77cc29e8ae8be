"""Prometheus metrics (no personal data in labels). Each is described in the README's Metrics table."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Case, OutboxMessage, PollCursor

WEBHOOKS = Counter("coachloop_webhooks_total", "QA webhook requests by outcome", ["outcome"])
OUTBOX = Counter("coachloop_outbox_total", "Outbox deliveries by result", ["result"])
OUTBOX_FAILURES = Counter(
    "coachloop_outbox_failures_total", "Messages given up, by Slack error code", ["error"]
)
TIMERS = Counter("coachloop_timers_fired_total", "Timers fired by kind", ["kind"])
SWEEP_SECONDS = Histogram("coachloop_sweep_seconds", "Time spent in one sweep", ["sweep"])
ACK_SECONDS = Histogram(
    "coachloop_listener_ack_seconds",
    "Time from a Slack request's arrival to its acknowledgement",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 3.0, 5.0),
)
CONNECTOR_LAG = Gauge(
    "coachloop_connector_lag_seconds",
    "How far behind now a pulling connector's cursor is (at scrape)",
    ["connector", "scope"],
)
POLL_FAILURES = Gauge(
    "coachloop_poll_consecutive_failures", "Failed polls in a row (at scrape)", ["connector", "scope"]
)
POLLS = Counter("coachloop_polls_total", "Polls by result", ["connector", "result"])
PULLED = Counter(
    "coachloop_pulled_evaluations_total", "Pulled evaluations by outcome", ["connector", "outcome"]
)
CASES = Gauge("coachloop_cases", "Coaching cases by state (read from the database at scrape)", ["state"])
OUTBOX_QUEUED = Gauge("coachloop_outbox_queued", "Messages due or waiting to be sent (at scrape)")
OUTBOX_LAG = Gauge(
    "coachloop_outbox_lag_seconds", "How long the oldest queued message has been due (0 when none)"
)
STATES = ("awaiting_conversation", "agreed", "acknowledged", "discussion_requested", "closed", "waived")


def error_code(error: str) -> str:
    """The Slack error code at the head of an outbox error text ("ratelimited: ..." -> "ratelimited")."""
    head = error.split(":", 1)[0].split(" ", 1)[0].strip()
    return head[:40] or "unknown"


def refresh_from_database(session: Session, now: datetime) -> None:
    """Set the gauges that describe the database (every replica reports the same figures)."""
    counts: dict[str, int] = {
        state: n for state, n in session.execute(select(Case.state, func.count()).group_by(Case.state))
    }
    for state in sorted(set(STATES) | set(counts)):
        CASES.labels(state).set(counts.get(state, 0))
    queued = OutboxMessage.status.in_(("pending", "sending"))
    OUTBOX_QUEUED.set(session.scalar(select(func.count()).where(queued)) or 0)
    oldest = session.scalar(select(func.min(OutboxMessage.due_at)).where(queued, OutboxMessage.due_at <= now))
    OUTBOX_LAG.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
    CONNECTOR_LAG.clear()  # a cursor row deleted (a workspace no longer polled) leaves no figure behind
    POLL_FAILURES.clear()
    for cursor in session.scalars(select(PollCursor)):
        POLL_FAILURES.labels(cursor.connector, cursor.scope).set(cursor.consecutive_failures)
        if cursor.position is not None:  # a cursor that never read a window has no lag yet
            lag = (now - cursor.position).total_seconds()
            CONNECTOR_LAG.labels(cursor.connector, cursor.scope).set(max(0.0, lag))
