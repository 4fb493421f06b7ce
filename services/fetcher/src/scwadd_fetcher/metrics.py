"""The fetcher's own Prometheus metrics (the shared HTTP, rate-limit and custodian-call ones
come from scwadd_core)."""

from __future__ import annotations

from prometheus_client import Counter

READINGS_FETCHED = Counter(
    "scwadd_readings_fetched_total",
    "Interval readings in the raw ESPI documents the fetcher stored.",
)
FETCH_JOBS = Counter(
    "scwadd_fetch_jobs_total",
    "Fetch jobs finished, by outcome.",
    ["outcome"],
)
BATCH_NOTIFICATIONS = Counter(
    "scwadd_batch_notifications_total",
    "BatchList notifications received on /espi/notify, by outcome.",
    ["outcome"],
)
