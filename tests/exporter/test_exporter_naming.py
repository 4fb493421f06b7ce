from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from scwadd_exporter.naming import export_base_name, safe_part


@given(st.text(), st.uuids())
def test_names_are_always_safe(subscription, job):
    name = export_base_name(subscription, str(job), datetime(2026, 3, 1, tzinfo=UTC))
    assert name
    assert all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)
    assert ".." not in name and "/" not in name


def test_customer_like_input_is_neutralised():
    assert safe_part("../../etc/passwd") == "etc-passwd"
    assert safe_part("Jane O'Hara & Sons") == "Jane-O-Hara-Sons"
    assert safe_part("") == "unknown"
    name = export_base_name("12345", "6f1c2d3e-0000-4000-8000-000000000000", datetime(2026, 3, 1))
    assert name == "12345-20260301-6f1c2d3e"
