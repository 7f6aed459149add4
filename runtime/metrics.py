"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter("c360_events_consumed_total", "Events applied by a consumer.", ["group", "topic", "type"])
EVENTS_DUPLICATE = Counter(
    "c360_events_duplicate_total", "Re-delivered events skipped by the idempotency record.", ["group"]
)
EVENTS_DEAD_LETTERED = Counter(
    "c360_events_dead_lettered_total",
    "Messages that failed (invalid, or refused by the handler) and went to a .dlq topic.",
    ["group", "topic", "type"],
)
CONSUMER_LAG = Gauge(
    "c360_consumer_lag",
    "Messages not yet consumed, per assigned partition (high watermark minus position).",
    ["group", "topic", "partition"],
)
BATCH_SIZE = Histogram(
    "c360_consumer_batch_size",
    "Messages per consumed batch.",
    ["group"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
BATCH_SECONDS = Histogram(
    "c360_consumer_batch_seconds",
    "Time to apply and commit one batch.",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_LAG_SECONDS = Histogram(
    "c360_event_lag_seconds",
    "From an event's own time to the commit of its effect.",
    ["group", "topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
TRANSIENT_FAILURES = Counter(
    "c360_transient_failures_total", "Retried failures (database or broker unavailable).", ["component"]
)
OUTBOX_PUBLISHED = Counter("c360_outbox_published_total", "Outbox rows published.", ["topic"])
OUTBOX_BACKLOG = Gauge("c360_outbox_backlog", "Outbox rows not yet published (last seen).")
OUTBOX_PUBLISH_SECONDS = Histogram(
    "c360_outbox_publish_seconds",
    "From an outbox row's creation to its publication.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
HTTP_REQUESTS = Counter("c360_http_requests_total", "HTTP requests served.", ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "c360_http_request_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
JOB_ROUNDS = Counter(
    "c360_job_rounds_total",
    "Rounds of periodic jobs by outcome (done, skipped, transient, failed).",
    ["job", "outcome"],
)
