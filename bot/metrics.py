"""Prometheus metrics (no personal data in labels)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter("coachloop_webhooks_total", "QA webhook requests by outcome", ["outcome"])
OUTBOX = Counter("coachloop_outbox_total", "Outbox deliveries by result", ["result"])
TIMERS = Counter("coachloop_timers_fired_total", "Timers fired by kind", ["kind"])
SWEEP_SECONDS = Histogram("coachloop_sweep_seconds", "Time spent in one sweep", ["sweep"])

POLL_LAG = Gauge(
    "coachloop_poll_lag_seconds", "How far behind now a poller's cursor is", ["connector", "scope"]
)
POLL_FAILURES = Gauge("coachloop_poll_consecutive_failures", "Failed polls in a row", ["connector", "scope"])
POLLS = Counter("coachloop_polls_total", "Polls by result", ["connector", "result"])
PULLED = Counter(
    "coachloop_pulled_evaluations_total", "Pulled evaluations by outcome", ["connector", "outcome"]
)
