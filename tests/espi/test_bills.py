"""UsageSummary read fully (schema valid both ways), PG&E's millisecond times, ``iter_bills`` and
``read_customer``: exact consumption and dollars, cost lines, tariff, riders, local time."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from espi_support import ELECTRIC, PACIFIC, assert_schema_valid, local_day_blocks, pacific_time
from espi_support import usage_point as usage_point_data
from scwadd_espi import EspiParseError, iter_bills, read_customer
from scwadd_espi.model import (
    CustomerAgreement,
    DateTimeInterval,
    Entry,
    LineItem,
    RetailCustomer,
    ServiceLocation,
    SummaryMeasurement,
    TariffRiderRef,
    UsageSummary,
)
from scwadd_espi.parser import read_all
from scwadd_espi.writer import EspiWriter, to_bytes, write_usage_feed

JULY = 1719817200  # 2024-07-01 00:00 Pacific (PDT)
FULL = UsageSummary(
    status_time_stamp=JULY + 2678400,
    billing_period=DateTimeInterval(JULY, 2678400),
    bill_last_period=12345678,
    bill_to_date=2345001,
    cost_additional_last_period=-5000,
    cost_additional_detail_last_period=(
        LineItem(
            note="Base Services Charge",
            item_kind=4,
            amount=1224283,
            rounding=-3,
            date_time=JULY + 2678400,
            measurement=SummaryMeasurement(0, None, 72, 31),
            unit_cost=39493,
            item_period=DateTimeInterval(JULY, 2678400),
        ),
        LineItem(note="California Climate Credit", item_kind=7, amount=-1229283),
    ),
    currency=840,
    overall_consumption_last_period=SummaryMeasurement(-3, JULY + 2678400, 72, 612345678),
    current_billing_period_overall_consumption=SummaryMeasurement(-3, None, 72, 10000),
    current_day_last_year_net_consumption=SummaryMeasurement(-3, None, 72, 1),
    current_day_net_consumption=SummaryMeasurement(-3, None, 72, 2),
    current_day_overall_consumption=SummaryMeasurement(-3, None, 72, 3),
    peak_demand=SummaryMeasurement(0, None, 38, 4200),
    previous_day_last_year_overall_consumption=SummaryMeasurement(-3, None, 72, 5),
    previous_day_net_consumption=SummaryMeasurement(-3, None, 72, 6),
    previous_day_overall_consumption=SummaryMeasurement(-3, None, 72, 7),
    quality_of_reading=17,
    ratchet_demand=SummaryMeasurement(0, None, 38, 5100),
    ratchet_demand_period=DateTimeInterval(JULY - 31536000, 31536000),
    commodity=1,
    tariff_profile="HAG5A",
    read_cycle="12",
    tariff_rider_refs=(
        TariffRiderRef("NEM2", "enrolled", JULY - 86400),
        TariffRiderRef("CARE", "unenrolled", JULY - 86400),
    ),
    billing_charge_source="East Bay Community Energy",
)
LOCATION = ServiceLocation(street="12 Alder St", town="Oakland", state="CA", postal_code="94610")
AGREEMENT = CustomerAgreement(agreement_id="5391320451", sign_date=JULY, kind="electric")


@pytest.mark.parametrize("style", ["pge", "generic"])
@pytest.mark.parametrize("obj", [FULL, LOCATION, AGREEMENT], ids=lambda o: type(o).__name__)
def test_every_element_is_schema_valid_and_reads_back(style: str, obj: object) -> None:
    for times_in_ms in (False, True):
        data = to_bytes(obj, style=style, times_in_ms=times_in_ms)  # type: ignore[arg-type]
        assert_schema_valid(data)
        assert [e.obj for e in read_all(io.BytesIO(data))] == [obj]


def test_older_pge_millisecond_times_read_as_seconds() -> None:
    """PG&E's older UsageSummary documents: statusTimeStamp, billingPeriod start, timeStamp in
    milliseconds; the duration in seconds, or in milliseconds when the start is and the duration
    could be no period in seconds (2,678,400,000 s would be 85 years)."""
    seconds_duration = (
        b'<UsageSummary xmlns="http://naesb.org/espi"><billingPeriod><duration>2678400</duration>'
        b"<start>1719817200000</start></billingPeriod><billLastPeriod>1000</billLastPeriod>"
        b"<overallConsumptionLastPeriod><powerOfTenMultiplier>-3</powerOfTenMultiplier>"
        b"<timeStamp>1722495600000</timeStamp><uom>72</uom><value>1449000</value>"
        b"</overallConsumptionLastPeriod><statusTimeStamp>1722495600000</statusTimeStamp>"
        b"</UsageSummary>"
    )
    ms_duration = seconds_duration.replace(b">2678400<", b">2678400000<")
    for document in (seconds_duration, ms_duration):
        [summary] = [e.obj for e in read_all(io.BytesIO(document))]
        assert isinstance(summary, UsageSummary)
        assert summary.billing_period == DateTimeInterval(JULY, 2678400)
        assert summary.status_time_stamp == 1722495600
        assert summary.overall_consumption_last_period is not None
        assert summary.overall_consumption_last_period.time_stamp == 1722495600
        [bill] = iter_bills(document)
        assert bill.period_end == datetime(2024, 8, 1, 7, tzinfo=UTC)
        assert bill.consumption is not None and str(bill.consumption.value) == "1.449"
        assert bill.bill_amount == Decimal("0.01")


def test_a_usage_summary_without_status_time_stamp_is_refused_by_line() -> None:
    document = b'<UsageSummary xmlns="http://naesb.org/espi">\n<billLastPeriod>1</billLastPeriod>\n</UsageSummary>'
    with pytest.raises(EspiParseError, match="statusTimeStamp"):
        list(iter_bills(document, names=["summary.xml"]))


def _feed(summaries: list[UsageSummary], with_local_time: bool = True) -> bytes:
    blocks = list(local_day_blocks(date(2024, 7, 1), 1, PACIFIC))
    point = usage_point_data(
        "5391320451",
        [("MR1", ELECTRIC, blocks)],
        local_time=pacific_time() if with_local_time else None,
    )
    point.usage_summaries = summaries
    out = io.BytesIO()
    write_usage_feed(out, "4095251", [point], style="pge")
    return out.getvalue()


def test_iter_bills_reads_a_batch_feed_exactly() -> None:
    [bill] = iter_bills(_feed([FULL]))
    assert bill.usage_point_id == "5391320451"
    assert bill.period_start == datetime.fromtimestamp(JULY, UTC)
    assert bill.local(bill.period_start).isoformat() == "2024-07-01T00:00:00-07:00"
    assert bill.local(bill.period_end).isoformat() == "2024-08-01T00:00:00-07:00"
    assert bill.consumption is not None
    assert (bill.consumption.value, bill.consumption.unit) == (Decimal("612.345678"), "kWh")
    assert bill.bill_amount == Decimal("123.45678")
    assert str(bill.bill_amount) == "123.45678"  # exact, never 123.45677999
    assert bill.bill_to_date == Decimal("23.45001")
    assert bill.cost_additional == Decimal("-0.05")
    base, credit = bill.cost_lines
    assert (base.note, base.item_kind_name, base.amount) == (
        "Base Services Charge",
        "administrative_fee",
        Decimal("12.24283"),
    )
    assert base.unit_cost == Decimal("0.39493") and base.rounding == Decimal("-0.00003")
    assert (credit.item_kind_name, credit.amount) == (
        "energy_delivery_credit",
        Decimal("-12.29283"),
    )
    assert bill.tariff_profile == "HAG5A" and bill.read_cycle == "12"
    assert bill.tariff_riders == ("NEM2",)  # CARE is unenrolled
    assert (bill.quality, bill.currency) == (17, "USD")
    assert bill.billing_charge_source == "East Bay Community Energy"


def test_repeated_periods_are_one_bill_the_latest_status_winning() -> None:
    older = UsageSummary(
        status_time_stamp=JULY + 2678400 - 1,
        billing_period=DateTimeInterval(JULY, 2678400),
        bill_last_period=1,
    )
    august = UsageSummary(
        status_time_stamp=JULY + 2 * 2678400,
        billing_period=DateTimeInterval(JULY + 2678400, 2678400),
    )
    no_period = UsageSummary(status_time_stamp=JULY)
    bills = list(iter_bills([_feed([august, older]), _feed([FULL, no_period])]))
    assert [b.period_start.timestamp() for b in bills] == [JULY, JULY + 2678400]
    assert bills[0].bill_amount == Decimal("123.45678")
    assert bills[1].bill_amount is None and bills[1].cost_lines == ()


def test_without_local_time_parameters_the_period_is_utc() -> None:
    [bill] = iter_bills(_feed([FULL], with_local_time=False))
    assert bill.zone is None
    assert bill.local(bill.period_start).isoformat() == "2024-07-01T07:00:00+00:00"


def test_read_customer_names_the_customer_and_each_service_address() -> None:
    base = "https://api.pge.com/GreenButtonConnect/espi/1_1/resource"
    up = f"{base}/Subscription/4095251/UsagePoint/5391320451"
    out = io.BytesIO()
    with EspiWriter(out, style="pge") as feed:
        feed.write(Entry(RetailCustomer("Avery Quinn"), f"{base}/RetailCustomer/9", "urn:uuid:1"))
        feed.write(Entry(AGREEMENT, f"{base}/RetailCustomer/9/A/1", "urn:uuid:2", related=(up,)))
        for _ in range(2):  # repeated: kept once
            feed.write(Entry(LOCATION, f"{base}/RetailCustomer/9/L/1", "urn:uuid:3", related=(up,)))
    details = read_customer(out.getvalue())
    assert details.name == "Avery Quinn"
    assert details.agreements == (AGREEMENT,)
    [address] = details.addresses
    assert address.usage_point_id == "5391320451"
    assert address.location.one_line() == "12 Alder St, Oakland, CA 94610"
    assert details.to_dict()["service_addresses"][0]["address"] == "12 Alder St, Oakland, CA 94610"
