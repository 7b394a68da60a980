"""The Prometheus series every role exports. Module-level, so each process registers them once."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "taskhook_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
EVENTS = Counter(
    "taskhook_events_ingested_total", "Workforce events received, by result", ["type", "result"]
)
ATTEMPTS = Counter("taskhook_delivery_attempts_total", "Callback attempts, by outcome", ["outcome"])
DELIVERIES = Counter(
    "taskhook_deliveries_finished_total", "Deliveries resolved, by state", ["state"]
)
ATTEMPT_SECONDS = Histogram(
    "taskhook_delivery_attempt_seconds",
    "Duration of one callback attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
END_TO_END_SECONDS = Histogram(
    "taskhook_callback_latency_seconds",
    "From enqueue of a callback to its successful delivery",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600, 86400),
)
QUEUE_DEPTH = Gauge("taskhook_delivery_queue_depth", "Unfinished deliveries (pending+sending)")
OLDEST_DUE_AGE = Gauge(
    "taskhook_delivery_oldest_due_age_seconds",
    "How long the oldest due, unclaimed delivery has waited",
)

SHED = Counter(
    "taskhook_requests_shed_total",
    "Requests refused with 503 because the process was at capacity, by reason",
    ["reason"],
)


def _outcome(status_code: int | None, error: str | None) -> str:
    if status_code is None:
        return error or "error"
    return f"{status_code // 100}xx"


def record_attempt(
    state: str, status_code: int | None, error: str | None, duration_ms: int, enqueued_at: datetime
) -> None:
    ATTEMPTS.labels(_outcome(status_code, error)).inc()
    ATTEMPT_SECONDS.observe(duration_ms / 1000)
    if state in ("succeeded", "failed"):
        DELIVERIES.labels(state).inc()
    if state == "succeeded":
        END_TO_END_SECONDS.observe((datetime.now(UTC) - enqueued_at).total_seconds())
