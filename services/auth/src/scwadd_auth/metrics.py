"""The auth service's metrics, in the default registry next to the shared HTTP ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
EXCHANGE_RETRIES = Counter(
    "scwadd_auth_exchange_retries_total",
    "Code exchanges tried again after a 5xx, 429, timeout or transport error.",
)
RECONCILE_PASSES = Counter(
    "scwadd_reconcile_passes_total",
    "Reconciler passes over the custodian's list of our authorizations, by outcome (ok, failed).",
    ["outcome"],
)
RECONCILE_ACTIONS = Counter(
    "scwadd_reconcile_actions_total",
    "What the reconciler did about an active authorization nobody owned, by action (revoked, "
    "already_revoked, flagged, retry) and reason.",
    ["action", "reason"],
)
ORPHANS_FLAGGED = Gauge(
    "scwadd_orphan_authorizations_flagged",
    "Active authorizations at the custodian that the reconciler flagged for the operator "
    "(not revoked), by reason; refreshed at every pass.",
    ["reason"],
)
AUTHORIZE_REFUSED = Counter(
    "scwadd_auth_authorize_refused_total",
    "POST /authorize refused, by reason (cross_origin, rate_limited).",
    ["reason"],
)
