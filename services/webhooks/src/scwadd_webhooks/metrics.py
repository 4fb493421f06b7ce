"""The webhooks service's metrics, in the default registry next to the shared ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ATTEMPTS = Counter(
    "scwadd_webhook_attempts_total",
    "Webhook delivery attempts, by event type and outcome (delivered; retry: the endpoint failed "
    "and the message will be sent again; failed: the 24 h window ended; refused: the endpoint's "
    "address is not allowed).",
    ["event_type", "outcome"],
)
DELIVERIES = Gauge(
    "scwadd_webhook_deliveries",
    "Webhook deliveries in the ledger, by state (pending, delivered, failed).",
    ["state"],
)
OLDEST_PENDING = Gauge(
    "scwadd_webhook_oldest_pending_seconds",
    "Age of the oldest webhook message not yet accepted by its endpoint (0 when none).",
)
