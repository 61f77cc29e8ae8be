"""Prometheus metrics (no personal data in labels)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter("coachloop_webhooks_total", "QA webhook requests by outcome", ["outcome"])
OUTBOX = Counter("coachloop_outbox_total", "Outbox deliveries by result", ["result"])
TIMERS = Counter("coachloop_timers_fired_total", "Timers fired by kind", ["kind"])
SWEEP_SECONDS = Histogram("coachloop_sweep_seconds", "Time spent in one sweep", ["sweep"])
