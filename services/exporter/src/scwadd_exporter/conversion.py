"""The exporter's use of the ESPI engine: raw documents in memory → CSV bytes + manifest facts."""

from __future__ import annotations

import io
from collections.abc import Sequence

from scwadd_espi.convert import ConversionError, convert
from scwadd_espi.parser import EspiParseError

from scwadd_exporter.bills import build_bills
from scwadd_exporter.service import Built

# Input the engine refuses: converting it again cannot succeed.
UNCONVERTIBLE = (EspiParseError, ConversionError)


def convert_documents(documents: Sequence[tuple[str, bytes]], layout: str) -> Built:
    """Merge one job's raw ESPI documents into one CSV; the report becomes the manifest. The
    bills they carry become ``bills.csv`` and, with their reconciliation against the intervals
    and the customer's details, sections of the manifest (:mod:`scwadd_exporter.bills`)."""
    out = io.BytesIO()
    report = convert(
        [io.BytesIO(data) for _, data in documents],
        out,
        layout=layout,
        names=[name for name, _ in documents],
    )
    bills = build_bills(documents)
    return Built(
        csv=out.getvalue(),
        manifest={**report.to_dict(), **bills.manifest},
        rows=report.rows,
        readings=report.readings_read,
        extras={"bills.csv": bills.csv} if bills.csv is not None else {},
    )
