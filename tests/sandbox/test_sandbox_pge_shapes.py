"""PG&E's shapes, over real HTTP and mutual TLS: id shapes, whole-day blocks, gas days starting at
00:00:01, quality 17, seasonal tou codes explained by ProgramIdMappings, and the links a feed
carries (the reference's "PG&E's id shapes" and "What real PG&E feeds look like")."""

from __future__ import annotations

import base64
import datetime as dt
from zoneinfo import ZoneInfo

import httpx
from lxml import etree
from sandbox_helpers import client_token, grant_for
from scwadd_sandbox.testing import RunningSandbox

ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"
PACIFIC = ZoneInfo("America/Los_Angeles")


def _entries(body: bytes) -> list[etree._Element]:
    return etree.fromstring(body).findall(f"{ATOM}entry")


def _content(entry: etree._Element) -> etree._Element:
    content = entry.find(f"{ATOM}content")
    assert content is not None and len(content) == 1
    return content[0]


def _links(entry: etree._Element, rel: str) -> list[str]:
    return [link.get("href", "") for link in entry.findall(f"{ATOM}link") if link.get("rel") == rel]


def _blocks(body: bytes) -> list[tuple[str, int, int, list[etree._Element]]]:
    """(self href, interval start, interval duration, readings) of every IntervalBlock."""
    found = []
    for entry in _entries(body):
        block = _content(entry)
        if block.tag != f"{ESPI}IntervalBlock":
            continue
        start = int(block.findtext(f"{ESPI}interval/{ESPI}start") or "")
        duration = int(block.findtext(f"{ESPI}interval/{ESPI}duration") or "")
        found.append(
            (_links(entry, "self")[0], start, duration, block.findall(f"{ESPI}IntervalReading"))
        )
    return found


def _midnight(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=PACIFIC).timestamp())


def _batch(sandbox: RunningSandbox, sub: str, up: str) -> str:
    return f"{sandbox.espi_base}/Batch/Subscription/{sub}/UsagePoint/{up}"


def _recent_day(sandbox: RunningSandbox, days_back: int) -> dt.date:
    end = dt.datetime.fromtimestamp(sandbox.state.data_end, PACIFIC).date()
    return end - dt.timedelta(days=days_back)


def test_ids_have_pges_shapes_in_every_document(sandbox: RunningSandbox, api: httpx.Client) -> None:
    grant = grant_for(sandbox, api, "solar")
    assert grant.subscription_id.isdigit() and grant.authorization_id.isdigit()
    points = api.get(
        f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint",
        headers=grant.headers,
    )
    assert points.status_code == 200
    [point_entry] = _entries(points.content)
    up = _links(point_entry, "self")[0].rsplit("/", 1)[1]
    assert up.isdigit() and len(up) == 10
    day = _recent_day(sandbox, 3)
    feed = api.get(
        _batch(sandbox, grant.subscription_id, up),
        headers=grant.headers,
        params={"published-min": _midnight(day), "published-max": _midnight(day) + 86400},
    )
    assert feed.status_code == 200
    flows = set()
    for entry in _entries(feed.content):
        content = _content(entry)
        href = _links(entry, "self")[0]
        if content.tag == f"{ESPI}ReadingType":
            rt_id = href.rsplit("/", 1)[1]
            uom, null, interval, flow = base64.b64decode(rt_id).decode().split(":")
            assert null == "null"
            assert uom == content.findtext(f"{ESPI}uom")
            assert interval == content.findtext(f"{ESPI}intervalLength")
            assert flow == content.findtext(f"{ESPI}flowDirection")
            flows.add(flow)
            mr_id = href.split("/MeterReading/")[1].split("/")[0]
            assert base64.b64decode(mr_id).decode() == f"{rt_id}:1"
        elif content.tag == f"{ESPI}IntervalBlock":
            assert href.rsplit("/", 1)[1] == content.findtext(f"{ESPI}interval/{ESPI}start")
    assert flows == {"1", "19"}


def test_blocks_are_whole_days_even_when_the_range_cuts_one(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-15min")
    up = sandbox.state.authorizations[grant.authorization_id].usage_point_ids[0]
    first = _recent_day(sandbox, 10)
    # Two consecutive windows whose boundary cuts a day at 13:00 local.
    cut = _midnight(first + dt.timedelta(days=2)) + 13 * 3600
    windows = [(_midnight(first) + 5 * 3600, cut), (cut, _midnight(first + dt.timedelta(days=4)))]
    served: list[list[tuple[str, int, int, list[etree._Element]]]] = []
    for start, end in windows:
        response = api.get(
            _batch(sandbox, grant.subscription_id, up),
            headers=grant.headers,
            params={"published-min": start, "published-max": end},
        )
        assert response.status_code == 200
        served.append(_blocks(response.content))
    for blocks in served:
        for _href, start, duration, readings in blocks:
            assert start == _midnight(dt.datetime.fromtimestamp(start, PACIFIC).date())
            assert duration == 86400 and len(readings) == 96
    assert [b[1] for b in served[0]] == [_midnight(first + dt.timedelta(days=d)) for d in range(3)]
    assert [b[1] for b in served[1]] == [
        _midnight(first + dt.timedelta(days=d)) for d in range(2, 4)
    ]
    # The cut day is served whole by both windows: the windows overlap by that day.
    assert served[0][-1][1] == served[1][0][1]


def test_dst_blocks_and_gas_days_starting_at_one_second_past_midnight(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "gas-electric", history=2 * 365 * 86400)
    record = sandbox.state.authorizations[grant.authorization_id]
    electric, gas = record.usage_point_ids
    year = dt.datetime.fromtimestamp(sandbox.state.data_end, PACIFIC).year - 1
    march = dt.date(year, 3, 1)
    spring = march + dt.timedelta(days=(6 - march.weekday()) % 7 + 7)
    november = dt.date(year, 11, 1)
    fall = november + dt.timedelta(days=(6 - november.weekday()) % 7)
    for day, hours in ((spring, 23), (fall, 25)):
        # A window from 06:00 to 07:00 still gets the whole day.
        params = {
            "published-min": _midnight(day) + 6 * 3600,
            "published-max": _midnight(day) + 7 * 3600,
        }
        electric_blocks = _blocks(
            api.get(
                _batch(sandbox, grant.subscription_id, electric),
                headers=grant.headers,
                params=params,
            ).content
        )
        assert [(b[1], b[2], len(b[3])) for b in electric_blocks] == [
            (_midnight(day), hours * 3600, hours)
        ]
        gas_blocks = _blocks(
            api.get(
                _batch(sandbox, grant.subscription_id, gas), headers=grant.headers, params=params
            ).content
        )
        [(href, start, duration, [reading])] = gas_blocks
        assert (start, duration) == (_midnight(day) + 1, hours * 3600)
        assert href.endswith(f"/IntervalBlock/{_midnight(day) + 1}")
        assert reading.findtext(f"{ESPI}timePeriod/{ESPI}start") == str(_midnight(day) + 1)
        local = dt.datetime.fromtimestamp(start, PACIFIC)
        assert (local.hour, local.minute, local.second) == (0, 0, 1)


def test_quality_17_seasonal_tou_and_their_program_id_mapping(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min", history=2 * 365 * 86400)
    up = sandbox.state.authorizations[grant.authorization_id].usage_point_ids[0]
    year = dt.datetime.fromtimestamp(sandbox.state.data_end, PACIFIC).year - 1
    codes_by_season = {}
    for season, day in (("summer", dt.date(year, 7, 15)), ("winter", dt.date(year, 1, 15))):
        feed = api.get(
            _batch(sandbox, grant.subscription_id, up),
            headers=grant.headers,
            params={"published-min": _midnight(day), "published-max": _midnight(day) + 7 * 86400},
        ).content
        entries = _entries(feed)
        mappings = [_content(e) for e in entries if _content(e).tag == f"{ESPI}ProgramIdMappings"]
        assert len(mappings) == 1
        explained = {
            m.findtext(f"{ESPI}code"): m.findtext(f"{ESPI}name")
            for m in mappings[0].findall(f"{ESPI}programIdMapping")
            if m.findtext(f"{ESPI}tOUorCPPorConsumptionTier") == "tou"
        }
        readings = [r for block in _blocks(feed) for r in block[3]]
        qualities = [r.findtext(f"{ESPI}ReadingQuality/{ESPI}quality") for r in readings]
        assert qualities.count("17") > 0.95 * len(qualities)
        codes = {r.findtext(f"{ESPI}tou") for r in readings}
        assert codes <= set(explained)
        codes_by_season[season] = {explained[c] for c in codes}
    assert codes_by_season == {
        "summer": {"Summer Peak", "Summer Off-Peak"},
        "winter": {"Winter Peak", "Winter Off-Peak"},
    }


def test_a_usage_point_links_local_time_parameters_1_and_usage_summary(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min")
    up = sandbox.state.authorizations[grant.authorization_id].usage_point_ids[0]
    day = _recent_day(sandbox, 2)
    feed = api.get(
        _batch(sandbox, grant.subscription_id, up),
        headers=grant.headers,
        params={"published-min": _midnight(day), "published-max": _midnight(day) + 86400},
    ).content
    [point] = [e for e in _entries(feed) if _content(e).tag == f"{ESPI}UsagePoint"]
    related = _links(point, "related")
    ltp = f"{sandbox.espi_base}/LocalTimeParameters/1"
    summary = (
        f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint/{up}/UsageSummary"
    )
    assert ltp in related and summary in related
    for href in (ltp, summary):
        assert api.get(href, headers=grant.headers).status_code in (200, 204)


CUSTOMER = "{http://naesb.org/espi/customer}"


def test_retail_customer_carries_name_agreements_and_service_locations(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "multi-site")
    customer = sandbox.state.authorizations[grant.authorization_id].customer
    response = api.get(
        f"{sandbox.espi_base}/Batch/RetailCustomer/{grant.subscription_id}", headers=grant.headers
    )
    assert response.status_code == 200
    contents = [_content(e) for e in _entries(response.content)]
    [person] = [c for c in contents if c.tag == f"{CUSTOMER}Customer"]
    assert person.findtext(f"{CUSTOMER}customerName") == customer.name
    agreements = [
        c.findtext(f"{CUSTOMER}agreementId")
        for c in contents
        if c.tag == f"{CUSTOMER}CustomerAgreement"
    ]
    assert agreements == [p.usage_point_id for p in customer.service_points]
    addresses = [
        c.findtext(f"{CUSTOMER}mainAddress/{CUSTOMER}streetDetail/{CUSTOMER}addressGeneral")
        for c in contents
        if c.tag == f"{CUSTOMER}ServiceLocation"
    ]
    assert addresses == [p.address for p in customer.service_points]
    assert len(set(addresses)) == 3  # three premises, one shared by two service points


def test_updated_min_and_max_select_days_by_when_they_were_updated(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-60min")
    up = sandbox.state.authorizations[grant.authorization_id].usage_point_ids[0]
    first = _recent_day(sandbox, 12)
    day = [_midnight(first + dt.timedelta(days=k)) for k in range(11)]
    url = _batch(sandbox, grant.subscription_id, up)
    # A day's readings are updated when it ends: day k is updated at day[k + 1].
    both = api.get(
        url,
        headers=grant.headers,
        params={
            "published-min": day[0],
            "published-max": day[10],
            "updated-min": day[4],
            "updated-max": dt.datetime.fromtimestamp(day[6], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    assert both.status_code == 200
    assert [b[1] for b in _blocks(both.content)] == [day[3], day[4]]
    updated = [
        e.findtext(f"{ATOM}updated")
        for e in _entries(both.content)
        if _content(e).tag == f"{ESPI}IntervalBlock"
    ]
    assert updated == [
        dt.datetime.fromtimestamp(day[k], dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for k in (4, 5)
    ]
    # updated-min alone: every day updated since, up to the end of the data.
    since = api.get(url, headers=grant.headers, params={"updated-min": day[9]})
    starts = [b[1] for b in _blocks(since.content)]
    assert starts[0] == day[8] and starts[-1] == _midnight(_recent_day(sandbox, 1))
    # Nothing updated in the window: 204.
    none = api.get(
        url,
        headers=grant.headers,
        params={"published-min": day[0], "published-max": day[2], "updated-min": day[5]},
    )
    assert none.status_code == 204


def test_sample_data_test_token_path_local_time_collection_and_doubled_slash(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api, "electric-15min")
    test_path = sandbox.token_url.replace("/datacustodian/oauth/", "/datacustodian/test/oauth/")
    assert test_path.endswith("/datacustodian/test/oauth/v2/token")
    token = api.post(test_path, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"})
    assert token.status_code == 200
    client = {"Authorization": f"Bearer {token.json()['client_access_token']}"}
    sample = api.get(f"{sandbox.espi_base}/DownloadSampleData", headers=client)
    assert sample.status_code == 200
    tags = {_content(e).tag for e in _entries(sample.content)}
    assert {f"{ESPI}UsagePoint", f"{ESPI}ReadingType", f"{ESPI}IntervalBlock"} <= tags
    assert len(_blocks(sample.content)) == 7
    assert (
        api.get(f"{sandbox.espi_base}/DownloadSampleData", headers=grant.headers).status_code == 403
    )
    collection = api.get(f"{sandbox.espi_base}/LocalTimeParameters", headers=grant.headers)
    assert collection.status_code == 200
    [ltp] = _entries(collection.content)
    assert _links(ltp, "self") == [f"{sandbox.espi_base}/LocalTimeParameters/1"]
    assert _content(ltp).findtext(f"{ESPI}dstStartRule") == "360E2000"
    single = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    doubled = single.replace("/resource/", "/resource//")
    answers = [api.get(u, headers=grant.headers) for u in (single, doubled)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [_links(e, "self") for e in _entries(answers[0].content)] == [
        _links(e, "self") for e in _entries(answers[1].content)
    ]
    assert sandbox.admin.get("/admin/calls").json()["merged_slash_paths"] == 1


def _function_blocks(scope: str) -> set[int]:
    [blocks] = [p[3:] for p in scope.split(";") if p.startswith("FB=")]
    return {int(b) for b in blocks.split("_")}


def test_the_granted_function_blocks_match_what_is_served(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    """FB 12 costs in readings, 15/16 UsageSummary (16: with billLastPeriod), 46 RetailCustomer:
    a customer sharing usage only grants none of them, and none is served."""
    # Two calendar months inside the granted year: a whole billing period (read cycle) fits.
    end = dt.datetime.fromtimestamp(sandbox.state.data_end, PACIFIC).date()
    first = (end.replace(day=1) - dt.timedelta(days=70)).replace(day=1)
    following = (first + dt.timedelta(days=63)).replace(day=1)
    month = {"published-min": _midnight(first), "published-max": _midnight(following)}
    served = {}
    for share in ("all", "usage"):
        grant = grant_for(sandbox, api, "gas-electric", share=share)
        blocks = _function_blocks(grant.body["scope"])
        up = sandbox.state.authorizations[grant.authorization_id].usage_point_ids[0]
        base = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint/{up}"
        feed = api.get(
            _batch(sandbox, grant.subscription_id, up), headers=grant.headers, params=month
        )
        readings = [r for b in _blocks(feed.content) for r in b[3]]
        summary = api.get(f"{base}/UsageSummary", headers=grant.headers, params=month)
        retail = api.get(
            f"{sandbox.espi_base}/Batch/RetailCustomer/{grant.subscription_id}",
            headers=grant.headers,
        )
        [point] = [e for e in _entries(feed.content) if _content(e).tag == f"{ESPI}UsagePoint"]
        served[share] = {
            "blocks": blocks,
            "cost": all(r.find(f"{ESPI}cost") is not None for r in readings),
            "no cost": all(r.find(f"{ESPI}cost") is None for r in readings),
            "summary": summary.status_code,
            "bill": b"billLastPeriod" in summary.content,
            "retail": retail.status_code,
            "summary link": f"{base}/UsageSummary" in _links(point, "related"),
        }
        authorization = api.get(
            grant.body["authorizationURI"], headers=client_token(sandbox, api)
        ).content
        assert etree.fromstring(authorization).findtext(f".//{ESPI}scope") == grant.body["scope"]
    everything, usage = served["all"], served["usage"]
    assert {10, 12, 15, 16, 46} <= everything["blocks"]
    assert everything["cost"] and everything["bill"] and everything["summary link"]
    assert (everything["summary"], everything["retail"]) == (200, 200)
    assert not usage["blocks"] & {12, 15, 16, 46} and 10 in usage["blocks"]
    assert usage["no cost"] and not usage["summary link"]
    assert (usage["summary"], usage["retail"]) == (403, 403)
