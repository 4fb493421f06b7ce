"""/espi/notify's reading of a BatchList: shapes, bounds, leniency and the per-sender rate."""

from __future__ import annotations

import pytest
from scwadd_fetcher.documents import MalformedDocument
from scwadd_fetcher.notify import (
    NotifyLimits,
    SourceRateLimit,
    check_resource_url,
    read_batch_list,
)

BASE = "https://api.example:8443/GreenButtonConnect/espi/1_1/resource"
BULK = f"{BASE}/Batch/Bulk/50916?correlationID=3f2c9a1e-1b7d-4a52-9d3b-0c9e5b7a6f10"
SUBSCRIPTION = f"{BASE}/Batch/Subscription/4095251?correlationID=abc123"


def batch_list(*urls: str, declaration: bytes = b'<?xml version="1.0" encoding="UTF-8"?>') -> bytes:
    resources = b"".join(b"<ns0:resources>" + u.encode() + b"</ns0:resources>" for u in urls)
    return (
        declaration
        + b'<ns0:BatchList xmlns:ns0="http://naesb.org/espi">'
        + resources
        + b"</ns0:BatchList>"
    )


def test_a_well_formed_batch_list_is_read_strictly() -> None:
    read = read_batch_list(batch_list(BULK, SUBSCRIPTION))
    assert read.urls == [BULK, SUBSCRIPTION]
    assert read.recovered is None


def test_pges_literal_backslash_n_after_the_declaration_is_recovered() -> None:
    # The shape PG&E once POSTed: a literal backslash and "n" between the declaration and root.
    damaged = batch_list(BULK).replace(b"?><ns0:", b"?>\\n<ns0:")
    assert b"?>\\n<ns0:BatchList" in damaged
    read = read_batch_list(damaged)
    assert read.urls == [BULK]
    assert read.recovered == "removed escaped newlines between XML markup"


def test_other_damage_is_read_by_its_resources_elements_when_unambiguous() -> None:
    # Not well-formed (an unclosed root), yet its resources are plain to read.
    damaged = batch_list(BULK, SUBSCRIPTION).removesuffix(b"</ns0:BatchList>") + b"<junk"
    read = read_batch_list(damaged)
    assert read.urls == [BULK, SUBSCRIPTION]
    assert read.recovered is not None and "does not parse" in read.recovered


@pytest.mark.parametrize(
    "body",
    [
        b"hello",
        b"<ns0:resources>" + BULK.encode() + b"</ns0:resources>",  # no BatchList, no namespace
        b'<x:Feed xmlns:x="http://naesb.org/espi"><x:resources>' + BULK.encode(),  # not a list
        batch_list().replace(b"?>", b"?>\\n"),  # recovered, but names nothing
    ],
)
def test_what_no_lenient_read_can_recover_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedDocument):
        read_batch_list(body)


@pytest.mark.parametrize("url", [BULK, SUBSCRIPTION, f"{BASE}/Batch/Bulk/50916"])
def test_the_custodians_shapes_are_accepted(url: str) -> None:
    assert check_resource_url(url, BASE) is None
    assert check_resource_url(f"{BASE}/Batch/Subscription/1/UsagePoint/5391320451", BASE) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example/GreenButtonConnect/espi/1_1/resource/Batch/Bulk/1", "host"),
        (BULK.replace(":8443", ":9443"), "host"),
        (BULK.replace("https://", "http://"), "https"),
        (BULK.replace("https://", "https://user:pw@"), "user info"),
        (f"{BASE}/Batch/Bulk/1#x", "fragment"),
        (f"{BASE}/UsagePoint/1", "Batch/Bulk"),
        (f"{BASE}/Batch/Bulk/1/../../Authorization/7", "Batch/Bulk"),
        (f"{BASE}/Batch/Bulk/", "Batch/Bulk"),
        (f"{BASE}/Batch/Bulk/..", "Batch/Bulk"),
        (f"{BASE}/Batch/Bulk/%2e%2e", "Batch/Bulk"),
        (f"{BASE}/Batch/Bulk/{'9' * 200}", "Batch/Bulk"),
        ("https://api.example:8443/other/Batch/Bulk/1", "resource base"),
        (f"{BASE}/Batch/Bulk/1?access_token=x", "query parameter"),
        (f"{BASE}/Batch/Bulk/1?correlationID=<script>", "query value"),
        (f"{BASE}/Batch/Bulk/1?correlationID={'a' * 2000}", "too long"),
    ],
)
def test_anything_else_is_refused_with_a_reason(url: str, reason: str) -> None:
    found = check_resource_url(url, BASE)
    assert found is not None and reason in found


def test_the_rate_limit_is_per_sender_and_in_all() -> None:
    limits = NotifyLimits(
        per_source_rate=0.001, per_source_burst=3, total_rate=0.001, total_burst=5
    )
    limiter = SourceRateLimit(limits)
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("a") > 0  # a's burst is spent
    assert limiter.allow("b") == 0.0  # b has its own
    assert limiter.allow("c") == 0.0
    assert limiter.allow("d") > 0  # all senders together: 5


def test_the_address_table_is_bounded() -> None:
    limiter = SourceRateLimit(NotifyLimits(sources_tracked=100))
    for index in range(1_000):
        limiter.allow(f"10.0.{index // 256}.{index % 256}")
    assert len(limiter.per_source) == 100


def test_a_refusal_by_the_total_spends_no_senders_token() -> None:
    limiter = SourceRateLimit(
        NotifyLimits(per_source_rate=0.001, per_source_burst=2, total_rate=0.001, total_burst=2)
    )
    assert [limiter.allow("flood") for _ in range(2)] == [0.0, 0.0]
    for _ in range(5):
        assert limiter.allow("pge") > 0  # the total is spent
    # PG&E's own two tokens are intact once the total refills.
    limiter.total = type(limiter.total)(burst=10, per_minute=60)
    assert [limiter.allow("pge") for _ in range(3)] == [0.0, 0.0, pytest.approx(1000, rel=0.01)]
