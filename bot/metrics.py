"""Prometheus metrics (no personal data in labels). Each is described in the README's Metrics table."""

from __future__ import annotations

import os
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
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
SWEEPER_RESTARTS = Counter(
    "coachloop_sweeper_restarts_total", "Sweeper processes serve started again after one crashed"
)
POLLS = Counter("coachloop_polls_total", "Polls by result", ["connector", "result"])
PULLED = Counter(
    "coachloop_pulled_evaluations_total", "Pulled evaluations by outcome", ["connector", "outcome"]
)
STATES = ("awaiting_conversation", "agreed", "acknowledged", "discussion_requested", "closed", "waived")


def error_code(error: str) -> str:
    """The Slack error code at the head of an outbox error text ("ratelimited: ..." -> "ratelimited")."""
    head = error.split(":", 1)[0].split(" ", 1)[0].strip()
    return head[:40] or "unknown"


def database_figures(session: Session, now: datetime) -> list[Metric]:
    """The gauges that describe the database, read at scrape (every replica reports the same figures).
    Built afresh each time, so a cursor row deleted (a workspace no longer polled) leaves no figure."""
    counts: dict[str, int] = {
        state: n for state, n in session.execute(select(Case.state, func.count()).group_by(Case.state))
    }
    cases = GaugeMetricFamily(
        "coachloop_cases", "Coaching cases by state (read from the database at scrape)", labels=["state"]
    )
    for state in sorted(set(STATES) | set(counts)):
        cases.add_metric([state], counts.get(state, 0))
    queued = OutboxMessage.status.in_(("pending", "sending"))
    oldest = session.scalar(select(func.min(OutboxMessage.due_at)).where(queued, OutboxMessage.due_at <= now))
    lag = GaugeMetricFamily(
        "coachloop_connector_lag_seconds",
        "How far behind now a pulling connector's cursor is (at scrape)",
        labels=["connector", "scope"],
    )
    failures = GaugeMetricFamily(
        "coachloop_poll_consecutive_failures",
        "Failed polls in a row (at scrape)",
        labels=["connector", "scope"],
    )
    for cursor in session.scalars(select(PollCursor)):
        labels = [cursor.connector, cursor.scope]
        failures.add_metric(labels, cursor.consecutive_failures)
        if cursor.position is not None:  # a cursor that never read a window has no lag yet
            lag.add_metric(labels, max(0.0, (now - cursor.position).total_seconds()))
    return [
        cases,
        GaugeMetricFamily(
            "coachloop_outbox_queued",
            "Messages due or waiting to be sent (at scrape)",
            value=session.scalar(select(func.count()).where(queued)) or 0,
        ),
        GaugeMetricFamily(
            "coachloop_outbox_lag_seconds",
            "How long the oldest queued message has been due (0 when none)",
            value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
        ),
        lag,
        failures,
    ]


class _Figures(Collector):
    def __init__(self, figures: list[Metric]) -> None:
        self.figures = figures

    def collect(self) -> list[Metric]:
        return self.figures


def exposition(figures: list[Metric]) -> bytes:
    """The Prometheus text: this process's counters and histograms (and, when `serve` runs its sweeper
    beside it, the sweeper's, added up by prometheus_client's multiprocess mode), then `figures`."""
    registry: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    read_now = CollectorRegistry(auto_describe=False)
    read_now.register(_Figures(figures))
    return generate_latest(registry) + generate_latest(read_now)
