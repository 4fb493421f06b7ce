"""The bill summary `scwadd run --demo` prints: one line per billing period from an export's
manifest (its ``bills`` and ``reconciliation`` sections, written by the exporter). No customer
name or address: those stay in the manifest."""

from __future__ import annotations

from typing import Any


def bill_summary(manifest: dict[str, Any]) -> list[str]:
    """Lines for a person: the bills' count, total and tariffs, then per billing period the
    local dates, billed and interval consumption, and the reconciliation's status."""
    bills = manifest.get("bills") or {}
    if not bills.get("count"):
        return ["bills: none (the customer did not share them, or the custodian sent none)"]
    reconciliation = manifest.get("reconciliation") or {}
    periods = reconciliation.get("periods") or []
    lines = [
        f"bills: {bills['count']} billing period(s), {bills.get('total_bill_amount', '?')} "
        f"{bills.get('currency', '')} in all, tariff(s) {', '.join(bills.get('tariffs', []))}; "
        f"file {manifest.get('bills_csv', '?')}"
    ]
    for period in periods:
        start = str(period.get("period_start_local", ""))[:10]
        end = str(period.get("period_end_local", ""))[:10]
        unit = period.get("unit") or ""
        lines.append(
            f"  {period.get('usage_point_id')} {start} → {end}: billed {period.get('billed')} "
            f"{unit}, intervals {period.get('interval')} {unit} — {period.get('status')}"
        )
    warnings = reconciliation.get("warnings") or []
    lines.append(
        f"reconciliation: {len(periods) - len(warnings)} period(s) within "
        f"{reconciliation.get('tolerance_percent', '1')}%, {len(warnings)} warning(s)"
    )
    lines.extend(f"  warning: {warning}" for warning in warnings)
    return lines
