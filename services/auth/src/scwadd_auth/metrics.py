"""The auth service's metrics, in the default registry next to the shared HTTP ones."""

from __future__ import annotations

from prometheus_client import Counter

GRANTS = Counter(
    "scwadd_grants_total",
    "Authorization callbacks, by outcome (received, denied, invalid_request, custodian_error, "
    "state_rejected, exchange_failed, incomplete, duplicate).",
    ["outcome"],
)
OUTBOX_PUBLISHED = Counter(
    "scwadd_auth_outbox_published_total",
    "grant.received events published from the ledger's outbox, by path (inline, sweep).",
    ["path"],
)
