import io
import re
from datetime import date

import pytest
from espi_support import (
    ELECTRIC,
    GAS,
    PACIFIC,
    assert_schema_valid,
    feed_bytes,
    local_day_blocks,
    pacific_time,
    schema_checking,
    usage_point,
)
from lxml import etree
from scwadd_espi.model import (
    ATOM_NS,
    ESPI_NS,
    Authorization,
    BatchList,
    DateTimeInterval,
    Entry,
    LineItem,
    RetailCustomer,
    ServiceStatus,
    SummaryMeasurement,
    UsageSummary,
)
from scwadd_espi.parser import read_all
from scwadd_espi.writer import (
    EspiWriter,
    to_bytes,
    write_entry_document,
)

SUMMARY = UsageSummary(
    status_time_stamp=1722556800,
    billing_period=DateTimeInterval(1719817200, 2678400),
    bill_last_period=12345000,
    bill_to_date=2345000,
    cost_additional_last_period=100000,
    cost_additional_detail_last_period=(
        LineItem(note="State tax", item_kind=1, amount=45000, date_time=1722556800),
    ),
    currency=840,
    overall_consumption_last_period=SummaryMeasurement(-3, 1722556800, 72, 612000),
    current_billing_period_overall_consumption=SummaryMeasurement(-3, None, 72, 10000),
    quality_of_reading=0,
    commodity=1,
    tariff_profile="HAG5A",
    read_cycle="12",
)
AUTHORIZATION = Authorization(
    status=1,
    expires_at=1767225600,
    scope="FB=1_3_4_5_8_13_14_15_18_19_31_32_35_37_38_39_40;IntervalDuration=900_3600;",
    resource_uri="https://api.pge.com/GreenButtonConnect/espi/1_1/resource/Batch/Subscription/7",
    authorization_uri="https://api.pge.com/GreenButtonConnect/espi/1_1/resource/Authorization/9",
    authorized_period=DateTimeInterval(1735689600, 31536000),
    published_period=DateTimeInterval(1704067200, 31536000),
    grant_type="authorization_code",
    customer_resource_uri="https://api.pge.com/GreenButtonConnect/espi/1_1/resource/RetailCustomer/3",
)


def _point() -> list:
    blocks = list(local_day_blocks(date(2024, 7, 1), 2, PACIFIC, cost=lambda t: 2000))
    point = usage_point("UP1", [("MR1", ELECTRIC, blocks)], local_time=pacific_time())
    point.usage_summaries = [SUMMARY]
    return [point]


def test_pge_style_has_pge_prefixes_hrefs_and_block_ids() -> None:
    data = feed_bytes(_point(), style="pge")
    root = etree.fromstring(data)
    assert root.prefix == "ns1"
    assert root.nsmap == {"ns0": ESPI_NS, "ns1": ATOM_NS}
    hrefs = [link.get("href") for link in root.iter(f"{{{ATOM_NS}}}link")]
    base = "https://api.pge.com/GreenButtonConnect/espi/1_1/resource/Subscription/SUB1"
    block_hrefs = [h for h in hrefs if "/IntervalBlock/" in h]
    first_block_start = int(root.find(f".//{{{ESPI_NS}}}interval/{{{ESPI_NS}}}start").text)
    assert f"{base}/UsagePoint/UP1/MeterReading/MR1/IntervalBlock/{first_block_start}" in hrefs
    assert len(block_hrefs) == 2
    # The ReadingType lives below its MeterReading and is linked from it.
    assert any(re.search(r"/MeterReading/MR1/ReadingType/[\w-]+$", h) for h in hrefs)
    assert b'<ns0:IntervalBlock xmlns:ns0="http://naesb.org/espi">' in data


def test_generic_style_looks_like_the_green_button_sample() -> None:
    data = feed_bytes(_point(), style="generic")
    root = etree.fromstring(data)
    assert root.nsmap == {None: ATOM_NS}
    ids = [e.text for e in root.iter(f"{{{ATOM_NS}}}id")]
    assert all(i.startswith("urn:uuid:") for i in ids)
    selfs = [
        link.get("href") for link in root.iter(f"{{{ATOM_NS}}}link") if link.get("rel") == "self"
    ]
    assert "/espi/1_1/resource/ReadingType/UP1-MR1" in selfs
    assert "/espi/1_1/resource/LocalTimeParameters/1" in selfs
    assert b'<UsagePoint xmlns="http://naesb.org/espi">' in data


@pytest.mark.parametrize("style", ["pge", "generic"])
@pytest.mark.parametrize(
    "obj",
    [
        AUTHORIZATION,
        BatchList(("https://api.pge.com/x/Batch/Bulk/1?correlationID=a", "https://x/2")),
        ServiceStatus(1),
        SUMMARY,
        RetailCustomer("Ada Lovelace"),
        GAS,
    ],
    ids=lambda o: type(o).__name__,
)
def test_every_object_is_schema_valid_and_reads_back(style: str, obj: object) -> None:
    bare = to_bytes(obj, style=style)  # type: ignore[arg-type]
    assert_schema_valid(bare)
    assert [e.obj for e in read_all(io.BytesIO(bare))] == [obj]
    entry = Entry(content=obj, self_href="https://example.test/x/1", id="urn:uuid:1")  # type: ignore[arg-type]
    single = to_bytes(entry, style=style)  # type: ignore[arg-type]
    assert_schema_valid(single)
    parsed = read_all(io.BytesIO(single))
    assert [p.obj for p in parsed] == [obj]
    assert parsed[0].self_href == "https://example.test/x/1"


def test_times_in_milliseconds_read_back_as_seconds() -> None:
    data = to_bytes(AUTHORIZATION, style="pge", times_in_ms=True)
    assert b"<ns0:expires_at>1767225600000</ns0:expires_at>" in data
    assert_schema_valid(data)
    assert read_all(io.BytesIO(data))[0].obj == AUTHORIZATION


def test_feed_streams_entries_from_a_generator() -> None:
    buffer = io.BytesIO()
    produced = []

    def entries():
        for index in range(3):
            produced.append(index)
            yield Entry(ServiceStatus(1), self_href=f"/s/{index}", id=f"urn:uuid:{index}")

    with EspiWriter(buffer, style="generic") as feed:
        for entry in entries():
            feed.write(entry)
    assert produced == [0, 1, 2]
    assert feed.entries_written == 3
    assert [e.self_href for e in read_all(io.BytesIO(buffer.getvalue()))] == [
        "/s/0",
        "/s/1",
        "/s/2",
    ]


def test_single_entry_document_to_a_path(tmp_path) -> None:
    path = tmp_path / "entry.xml"
    write_entry_document(path, Entry(ServiceStatus(0), self_href="/s", id="urn:uuid:s"))
    assert read_all(path)[0].obj == ServiceStatus(0)


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ESPI style"):
        to_bytes(ServiceStatus(1), style="xml")  # type: ignore[arg-type]


@pytest.mark.skipif(not schema_checking(), reason="ESPI_XSD not set: schema checks are off")
def test_schema_check_catches_an_out_of_order_document() -> None:
    bad = (
        b'<LocalTimeParameters xmlns="http://naesb.org/espi"><tzOffset>0</tzOffset>'
        b"<dstEndRule>B40E2000</dstEndRule><dstOffset>0</dstOffset>"
        b"<dstStartRule>360E2000</dstStartRule></LocalTimeParameters>"
    )
    with pytest.raises(AssertionError):
        assert_schema_valid(bad)
