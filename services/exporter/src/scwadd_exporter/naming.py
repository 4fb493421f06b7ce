"""Export object names: derived from identifiers, never from a customer's name."""

from __future__ import annotations

import re
from datetime import datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_SUBSCRIPTION_PART = 64


def safe_part(value: str, limit: int = MAX_SUBSCRIPTION_PART) -> str:
    """Letters, digits, '-' and '_' only; runs of anything else become one '-'."""
    cleaned = _UNSAFE.sub("-", value).strip("-_")
    return cleaned[:limit].rstrip("-_") or "unknown"


def export_base_name(subscription_id: str, job_id: str, when: datetime) -> str:
    """``<subscription>-<UTC date>-<job short id>``: stable for one job, so a redelivered
    event overwrites the same object instead of adding a second CSV."""
    job_short = safe_part(job_id.replace("-", ""), 12)[:8]
    return f"{safe_part(subscription_id)}-{when.strftime('%Y%m%d')}-{job_short}"
