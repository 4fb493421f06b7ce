"""The ESPI REST resources: shapes, ranges, token classes, revocation, agreement with the truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from lxml import etree
from sandbox_helpers import YEAR, client_token, grant_for
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

ESPI = "{http://naesb.org/espi}"
ATOM = "{http://www.w3.org/2005/Atom}"
DAY = 86400


def _readings(xml: bytes) -> list[tuple[int, int, int, int]]:
    """(start, duration, value, quality) of every IntervalReading, parsed by namespace."""
    root = etree.fromstring(xml)
    found = []
    for reading in root.iter(f"{ESPI}IntervalReading"):
        period = reading.find(f"{ESPI}timePeriod")
        assert period is not None
        found.append(
            (
                int(period.findtext(f"{ESPI}start") or ""),
                int(period.findtext(f"{ESPI}duration") or ""),
                int(reading.findtext(f"{ESPI}value") or ""),
                int(reading.findtext(f"{ESPI}ReadingQuality/{ESPI}quality") or ""),
            )
        )
    return found


def _batch_url(sandbox: RunningSandbox, subscription_id: str, usage_point_id: str) -> str:
    return f"{sandbox.espi_base}/Batch/Subscription/{subscription_id}/UsagePoint/{usage_point_id}"


def _truth(sandbox: RunningSandbox, subscription_id: str, start: int, end: int) -> dict:
    response = sandbox.admin.get(
        "/admin/truth", params={"subscription_id": subscription_id, "start": start, "end": end}
    )
    assert response.status_code == 200
    return response.json()


def test_read_service_status_needs_the_client_token(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    url = f"{sandbox.espi_base}/ReadServiceStatus"
    response = api.get(url, headers=client_token(sandbox, api))
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.tag == f"{ESPI}ServiceStatus"
    assert root.findtext(f"{ESPI}currentStatus") == "1"
    grant = grant_for(sandbox, api)
    assert api.get(url, headers=grant.headers).status_code == 403
    assert api.get(url).status_code == 401


def test_customer_resources_refuse_the_client_token(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    assert api.get(url, headers=client_token(sandbox, api)).status_code == 403
    other = f"{sandbox.espi_base}/Subscription/999/UsagePoint"
    assert api.get(other, headers=grant.headers).status_code == 403


def test_usage_points_of_a_customer_with_several_service_points(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "multi-site")
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    response = api.get(url, headers=grant.headers)
    assert response.status_code == 200
    assert b"<ns1:feed" in response.content and b"<ns0:UsagePoint" in response.content
    root = etree.fromstring(response.content)
    kinds = [k.text for k in root.iter(f"{ESPI}kind")]
    assert kinds == ["0", "0", "0", "1"]
    customer = next(c for c in sandbox.state.customers if c.profile == "multi-site")
    one = customer.service_points[3].usage_point_id
    single = api.get(f"{url}/{one}", headers=grant.headers)
    assert etree.fromstring(single.content).tag == f"{ATOM}entry"
    assert api.get(f"{url}/nope", headers=grant.headers).status_code == 404


def test_batch_usage_point_matches_the_ground_truth_value_by_value(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "solar")
    customer = next(c for c in sandbox.state.customers if c.profile == "solar")
    point = customer.service_points[0]
    end = sandbox.state.data_end
    start = end - 10 * DAY
    response = api.get(
        _batch_url(sandbox, grant.subscription_id, point.usage_point_id),
        headers=grant.headers,
        params={"published-min": start, "published-max": end},
    )
    assert response.status_code == 200
    served = _readings(response.content)
    truth = _truth(sandbox, grant.subscription_id, start, end)
    expected = [
        (r["start"], r["duration"], r["value"], r["quality"])
        for meter in truth["usage_points"][0]["meter_readings"]
        for r in meter["readings"]
    ]
    assert served == expected
    assert len(served) == 2 * 10 * 96
    flows = {m["flow_direction"] for m in truth["usage_points"][0]["meter_readings"]}
    assert flows == {1, 19}
    reverse = truth["usage_points"][0]["meter_readings"][1]
    assert reverse["flow_direction"] == 19 and any(r["value"] > 0 for r in reverse["readings"])
    assert b"<ns0:flowDirection>19</ns0:flowDirection>" in response.content


def test_epoch_and_iso_8601_ranges_are_the_same_range(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min")
    point = next(c for c in sandbox.state.customers if c.profile == "electric-60min")
    url = _batch_url(sandbox, grant.subscription_id, point.service_points[0].usage_point_id)
    end = sandbox.state.data_end
    start = end - 3 * DAY

    def iso(t: int) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    by_epoch = api.get(
        url, headers=grant.headers, params={"published-min": start, "published-max": end}
    )
    by_iso = api.get(
        url, headers=grant.headers, params={"published-min": iso(start), "published-max": iso(end)}
    )
    assert _readings(by_epoch.content) == _readings(by_iso.content)
    assert len(_readings(by_iso.content)) == 72
    bad = api.get(url, headers=grant.headers, params={"published-min": "yesterday"})
    assert bad.status_code == 400


def test_range_rules_max_span_empty_range_and_history(pki_dir: Path) -> None:
    with start_sandbox(pki_dir, max_range_seconds=30 * DAY) as sandbox, sandbox.api_client() as api:
        grant = grant_for(sandbox, api, "electric-15min", history=90 * DAY)
        customer = next(c for c in sandbox.state.customers if c.profile == "electric-15min")
        url = _batch_url(sandbox, grant.subscription_id, customer.service_points[0].usage_point_id)
        end = sandbox.state.data_end

        def get(start: int, stop: int) -> httpx.Response:
            return api.get(
                url, headers=grant.headers, params={"published-min": start, "published-max": stop}
            )

        assert get(end - 31 * DAY, end).status_code == 400
        assert get(end - 30 * DAY, end).status_code == 200
        assert get(end + DAY, end + 2 * DAY).status_code == 204  # the future holds nothing
        assert get(end - 200 * DAY, end - 180 * DAY).status_code == 204  # beyond the history
        assert get(end, end - DAY).status_code == 400


def test_dst_days_have_23_and_25_hours(sandbox: RunningSandbox, api: httpx.Client) -> None:
    grant = grant_for(sandbox, api, "gas-electric", history=2 * YEAR)
    customer = next(c for c in sandbox.state.customers if c.profile == "gas-electric")
    electric, gas = customer.service_points
    year = dt.datetime.fromtimestamp(sandbox.state.data_end, dt.UTC).year - 1
    pacific = ZoneInfo("America/Los_Angeles")
    spring = _second_sunday_of_march(year)
    fall = _first_sunday_of_november(year)
    for day, hours in ((spring, 23), (fall, 25)):
        start = int(dt.datetime(year, day.month, day.day, tzinfo=pacific).timestamp())
        nxt = day + dt.timedelta(days=1)
        stop = int(dt.datetime(year, nxt.month, nxt.day, tzinfo=pacific).timestamp())
        assert stop - start == hours * 3600
        hourly = api.get(
            _batch_url(sandbox, grant.subscription_id, electric.usage_point_id),
            headers=grant.headers,
            params={"published-min": start, "published-max": stop},
        )
        assert len(_readings(hourly.content)) == hours
        daily = api.get(
            _batch_url(sandbox, grant.subscription_id, gas.usage_point_id),
            headers=grant.headers,
            params={"published-min": start, "published-max": stop},
        )
        [(gas_start, gas_duration, gas_value, _quality)] = _readings(daily.content)
        # PG&E's gas day starts at 00:00:01 local and lasts the local day.
        assert (gas_start, gas_duration) == (start + 1, hours * 3600)
        assert b"<ns0:uom>169</ns0:uom>" in daily.content
        assert b"<ns0:powerOfTenMultiplier>-8</ns0:powerOfTenMultiplier>" in daily.content
        assert gas_value > 10**7  # at least a tenth of a therm, in 1e-8 therms


def _second_sunday_of_march(year: int) -> dt.date:
    first = dt.date(year, 3, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7)


def _first_sunday_of_november(year: int) -> dt.date:
    first = dt.date(year, 11, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7)


def test_meter_reading_interval_block_reading_type_and_local_time(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-15min")
    customer = next(c for c in sandbox.state.customers if c.profile == "electric-15min")
    point = customer.service_points[0]
    meter = point.meters[0]
    subscription = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}"
    base = f"{subscription}/UsagePoint/{point.usage_point_id}"
    listing = api.get(f"{base}/MeterReading", headers=grant.headers)
    assert listing.status_code == 200 and meter.meter_reading_id.encode() in listing.content
    blocks = api.get(
        f"{base}/MeterReading/{meter.meter_reading_id}/IntervalBlock",
        headers=grant.headers,
        params={
            "published-min": sandbox.state.data_end - DAY,
            "published-max": sandbox.state.data_end,
        },
    )
    assert len(_readings(blocks.content)) == 96
    rt_url = (
        f"{base}/MeterReading/{meter.meter_reading_id}/ReadingType/{meter.spec.reading_type_id}"
    )
    reading_type = etree.fromstring(api.get(rt_url, headers=grant.headers).content)
    assert reading_type.findtext(f".//{ESPI}uom") == "72"
    assert reading_type.findtext(f".//{ESPI}powerOfTenMultiplier") == "-3"
    assert reading_type.findtext(f".//{ESPI}intervalLength") == "900"
    top = api.get(
        f"{sandbox.espi_base}/ReadingType/{meter.spec.reading_type_id}", headers=grant.headers
    )
    assert top.status_code == 200
    ltp = api.get(f"{sandbox.espi_base}/LocalTimeParameters/1", headers=grant.headers)
    assert b"<ns0:dstStartRule>360E2000</ns0:dstStartRule>" in ltp.content
    assert b"<ns0:tzOffset>-28800</ns0:tzOffset>" in ltp.content


def test_retail_customer_and_authorization_resources(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "gas-electric")
    customer = next(c for c in sandbox.state.customers if c.profile == "gas-electric")
    retail = api.get(
        f"{sandbox.espi_base}/Batch/RetailCustomer/{customer.retail_customer_id}",
        headers=grant.headers,
    )
    assert retail.status_code == 200
    assert customer.name.encode() in retail.content
    by_subscription = api.get(
        f"{sandbox.espi_base}/Batch/RetailCustomer/{grant.subscription_id}", headers=grant.headers
    )
    assert by_subscription.status_code == 200
    client = client_token(sandbox, api)
    authorization = api.get(grant.body["authorizationURI"], headers=client)
    assert authorization.status_code == 200
    root = etree.fromstring(authorization.content)
    assert root.findtext(f".//{ESPI}status") == "1"
    assert root.findtext(f".//{ESPI}resourceURI") == grant.body["resourceURI"]
    listing = api.get(f"{sandbox.espi_base}/Authorization", headers=client)
    assert grant.authorization_id.encode() in listing.content
    assert api.get(grant.body["authorizationURI"], headers=grant.headers).status_code == 403


def test_revocation_refuses_every_later_data_call(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    client = client_token(sandbox, api)
    usage = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    assert api.get(usage, headers=grant.headers).status_code == 200
    revoked = api.delete(grant.body["authorizationURI"], headers=client)
    assert revoked.status_code == 200
    assert api.get(usage, headers=grant.headers).status_code == 401
    refresh = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={"grant_type": "refresh_token", "refresh_token": grant.refresh_token},
    )
    assert refresh.status_code == 400
    assert api.delete(grant.body["authorizationURI"], headers=client).status_code == 410
    status = etree.fromstring(api.get(grant.body["authorizationURI"], headers=client).content)
    assert status.findtext(f".//{ESPI}status") == "0"
    listed = sandbox.admin.get("/admin/authorizations").json()
    assert listed[0]["status"] == "revoked" and listed[0]["revoked_by"] == "third_party"


def test_authorization_times_in_milliseconds_like_older_pge_documents(pki_dir: Path) -> None:
    with (
        start_sandbox(pki_dir, authorization_times_in_ms=True) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api)
        document = api.get(grant.body["authorizationURI"], headers=client_token(sandbox, api))
        record = sandbox.state.authorizations[grant.authorization_id]
        root = etree.fromstring(document.content)
        assert root.findtext(f".//{ESPI}expires_at") == str(record.expires_at * 1000)


def test_usage_summaries_add_up_the_billing_period(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """Billed consumption = the period's readings; billLastPeriod = their cost plus
    costAdditionalLastPeriod, which its detail lines add up to; the ground truth says the same."""
    grant = grant_for(sandbox, api, "gas-electric")
    customer = next(c for c in sandbox.state.customers if c.profile == "gas-electric")
    gas = customer.service_points[1]
    end = sandbox.state.data_end
    url = (
        f"{sandbox.espi_base}/Subscription/{grant.subscription_id}"
        f"/UsagePoint/{gas.usage_point_id}/UsageSummary"
    )
    response = api.get(url, headers=grant.headers, params={"published-min": end - 100 * DAY})
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    summaries = list(root.iter(f"{ESPI}UsageSummary"))
    assert len(summaries) >= 2
    first = summaries[0]
    period_start = int(first.findtext(f"{ESPI}billingPeriod/{ESPI}start") or "")
    period_length = int(first.findtext(f"{ESPI}billingPeriod/{ESPI}duration") or "")
    truth = _truth(sandbox, grant.subscription_id, period_start, period_start + period_length)
    [gas_truth] = [p for p in truth["usage_points"] if p["usage_point_id"] == gas.usage_point_id]
    readings = gas_truth["meter_readings"][0]["readings"]
    consumption = first.find(f"{ESPI}overallConsumptionLastPeriod")
    assert consumption is not None
    assert int(consumption.findtext(f"{ESPI}value") or "") == sum(r["value"] for r in readings)
    assert consumption.findtext(f"{ESPI}uom") == "169"
    additional = int(first.findtext(f"{ESPI}costAdditionalLastPeriod") or "")
    lines = [
        int(line.findtext(f"{ESPI}amount") or "")
        for line in first.iter(f"{ESPI}costAdditionalDetailLastPeriod")
    ]
    assert len(lines) >= 2 and sum(lines) == additional
    bill = int(first.findtext(f"{ESPI}billLastPeriod") or "")
    assert bill == sum(r["cost"] for r in readings) + additional
    assert first.findtext(f"{ESPI}tariffProfile") == "G1"
    [truth_bill] = [b for b in truth["bills"] if b["usage_point_id"] == gas.usage_point_id]
    assert (truth_bill["start"], truth_bill["bill_last_period"]) == (period_start, bill)
    short = api.get(url, headers=grant.headers, params={"published-min": end - 5 * DAY})
    assert short.status_code == 204
