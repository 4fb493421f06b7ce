"""The exporter's metrics, in the default registry next to the shared ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EXPORTS = Counter("scwadd_exports_total", "CSV exports, by outcome.", ["outcome"])
READINGS = Counter("scwadd_readings_exported_total", "Interval readings written to CSV files.")
REVOCATIONS = Counter(
    "scwadd_revocations_total",
    "Grant revocations, by outcome (revoked, already_revoked, failed).",
    ["outcome"],
)
UNREVOKED = Gauge(
    "scwadd_grants_unrevoked",
    "Grants still not revoked N minutes after they were received, by reason "
    "(a flag's reason code, or stuck_<state>).",
    ["reason"],
)

_seen_reasons: set[str] = set()


def set_unrevoked(counts: dict[str, int]) -> None:
    """Set every reason seen so far, so a reason that cleared drops back to 0."""
    _seen_reasons.update(counts)
    for reason in _seen_reasons:
        UNREVOKED.labels(reason).set(counts.get(reason, 0))
