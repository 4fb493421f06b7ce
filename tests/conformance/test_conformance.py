"""Conformance: the request shapes working PG&E clients send, against the sandbox over real HTTP
and mutual TLS, and PG&E's answers to them (issue 10; the reference's OAuth, ESPI, id-shape and
timing sections)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import httpx
import pytest
from conformance_client import (
    ESPI,
    NotificationInbox,
    PgeClient,
    iso,
    readings,
    resources,
    usage_point_ids,
)
from lxml import etree
from scwadd_core import devpki
from scwadd_sandbox.config import OverLimit, RateLimits
from scwadd_sandbox.testing import start_sandbox

DAY = 86400
PACIFIC = ZoneInfo("America/Los_Angeles")
SUBSCRIPTION_URI = re.compile(r".*/GreenButtonConnect/espi/1_1/resource/Batch/Subscription/\d+$")
AUTHORIZATION_URI = re.compile(r".*/GreenButtonConnect/espi/1_1/resource/Authorization/\d+$")


def _subscription(body: dict[str, str]) -> str:
    return body["resourceURI"].rsplit("/", 1)[1]


@pytest.mark.parametrize("in_query", [True, False], ids=["query-json-empty-body", "form-body"])
def test_code_exchange_in_each_shape_answers_pges_token_json(
    pge: PgeClient, in_query: bool
) -> None:
    body = pge.exchange_code(pge.consent("electric-15min"), in_query=in_query)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"] and body["refresh_token"]
    assert body["scope"].startswith("FB=") and "HistoryLength=" in body["scope"]
    assert SUBSCRIPTION_URI.match(body["resourceURI"])
    assert AUTHORIZATION_URI.match(body["authorizationURI"])
    points = pge.get(
        pge.espi(f"Subscription/{_subscription(body)}/UsagePoint"), body["access_token"]
    )
    assert points.status_code == 200
    [point] = usage_point_ids(points.content)
    assert point.isdigit() and len(point) == 10


def test_refresh_in_the_query_string_rotates_the_refresh_token(pge: PgeClient) -> None:
    first = pge.exchange_code(pge.consent("electric-60min"), in_query=True)
    refreshed = pge.refresh_in_query(first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["resourceURI"] == first["resourceURI"]
    replay = pge.refresh_in_query(first["refresh_token"])
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    url = pge.espi(f"Subscription/{_subscription(second)}/UsagePoint")
    assert pge.get(url, second["access_token"]).status_code == 200


@pytest.mark.parametrize("in_query", [True, False], ids=["query-json-empty-body", "form-body"])
def test_client_credentials_answer_client_access_token(pge: PgeClient, in_query: bool) -> None:
    token = pge.client_token(in_query=in_query)
    status = pge.get(pge.espi("ReadServiceStatus"), token)
    assert status.status_code == 200
    assert etree.fromstring(status.content).findtext(f"{ESPI}currentStatus") == "1"
    customer = pge.exchange_code(pge.consent("solar"), in_query=in_query)
    assert pge.get(pge.espi("ReadServiceStatus"), customer["access_token"]).status_code == 403


def test_token_endpoint_errors_are_rfc_6749_json(pge: PgeClient, raw: httpx.Client) -> None:
    assert raw.get(pge.sandbox.token_url).status_code == 405
    missing = pge.token_in_query_json_empty_body({})
    assert missing.status_code == 400
    assert missing.json() == {"error": "invalid_request", "error_description": "Missing grant_type"}
    wrong = raw.post(
        pge.sandbox.token_url,
        params={"grant_type": "client_credentials"},
        auth=(pge.sandbox.client_id, "not-the-secret"),
    )
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")


def test_epoch_and_iso_published_min_give_the_same_readings(pge: PgeClient) -> None:
    body = pge.exchange_code(pge.consent("gas-electric"), in_query=True)
    sub = _subscription(body)
    end = pge.sandbox.state.data_end
    points = usage_point_ids(
        pge.get(pge.espi(f"Subscription/{sub}/UsagePoint"), body["access_token"]).content
    )
    assert len(points) == 2
    for point in points:
        url = pge.espi(f"Batch/Subscription/{sub}/UsagePoint/{point}")
        epoch = pge.get(
            url, body["access_token"], **{"published-min": end - 3 * DAY, "published-max": end}
        )
        text = pge.get(
            url,
            body["access_token"],
            **{"published-min": iso(end - 3 * DAY), "published-max": iso(end)},
        )
        assert epoch.status_code == text.status_code == 200
        assert readings(epoch.content) == readings(text.content) != []


def test_the_original_scwadd_flow_completes(pge: PgeClient) -> None:
    """The seed application's calls: token, client token, the UsagePoint list, RetailCustomer,
    12 monthly synchronous batches with epoch ranges, then the revocation."""
    body = pge.exchange_code(pge.consent("electric-60min"), in_query=False)
    client = pge.client_token(in_query=False)
    sub, access = _subscription(body), body["access_token"]
    [point] = usage_point_ids(pge.get(pge.espi(f"Subscription/{sub}/UsagePoint"), access).content)
    retail = pge.get(pge.espi(f"Batch/RetailCustomer/{sub}"), access)
    assert retail.status_code == 200
    name = etree.fromstring(retail.content).findtext(
        ".//{http://naesb.org/espi/customer}customerName"
    )
    assert name == "Blake Romero"
    end = pge.sandbox.state.data_end
    seen: dict[int, int] = {}
    for month in range(12):
        window = {
            "published-min": end - (month + 1) * 30 * DAY,
            "published-max": end - month * 30 * DAY,
        }
        answer = pge.get(pge.espi(f"Batch/Subscription/{sub}/UsagePoint/{point}"), access, **window)
        assert answer.status_code == 200
        for start, duration, value in readings(answer.content):
            # Windows overlap by the whole days PG&E serves; an overlap repeats the same value.
            assert seen.setdefault(start, value) == value
            assert duration == 3600
    # Every hour of the whole Pacific days the 360 days touch, once.
    local = dt.datetime.fromtimestamp(end - 360 * DAY, PACIFIC)
    first = int(local.replace(hour=0, minute=0, second=0).timestamp())
    assert sorted(seen) == list(range(first, end, 3600))
    revoked = pge.http.delete(
        body["authorizationURI"], headers={"Authorization": f"Bearer {client}"}
    )
    assert revoked.status_code == 200
    assert pge.get(pge.espi(f"Subscription/{sub}/UsagePoint"), access).status_code == 401


def test_batch_subscription_then_a_late_batch_list_fetched_with_the_client_token(
    pge: PgeClient, inbox: NotificationInbox
) -> None:
    body = pge.exchange_code(pge.consent("multi-site"), in_query=True)
    end = pge.sandbox.state.data_end
    accepted = pge.get(
        body["resourceURI"],
        body["access_token"],
        **{"published-min": end - 2 * DAY, "published-max": end},
    )
    assert (accepted.status_code, accepted.content) == (202, b"")
    [notification] = inbox.wait_for(1)
    [url] = resources(notification)
    bulk_id = pge.sandbox.config.registrations[0].bulk_id
    assert url.startswith(pge.espi(f"Batch/Bulk/{bulk_id}?correlationID="))
    assert pge.get(url, body["access_token"]).status_code == 403
    feed = pge.get(url, pge.client_token())
    assert feed.status_code == 200
    assert len(usage_point_ids(feed.content)) == 4


def test_bulk_with_the_client_token(pge: PgeClient, inbox: NotificationInbox) -> None:
    grants = [pge.exchange_code(pge.consent(p), in_query=True) for p in ("solar", "gas-electric")]
    client = pge.client_token()
    bulk_id = pge.sandbox.config.registrations[0].bulk_id
    end = pge.sandbox.state.data_end
    window = {"published-min": iso(end - DAY), "published-max": iso(end)}
    assert (
        pge.get(pge.espi(f"Batch/Bulk/{bulk_id}"), grants[0]["access_token"], **window).status_code
        == 403
    )
    assert pge.get(pge.espi(f"Batch/Bulk/{bulk_id}"), client, **window).status_code == 202
    [notification] = inbox.wait_for(1)
    [url] = resources(notification)
    assert url.startswith(pge.espi(f"Batch/Bulk/{bulk_id}?correlationID="))
    feed = pge.get(url, client)
    assert feed.status_code == 200
    assert len(usage_point_ids(feed.content)) == 3  # solar: 1, gas-electric: 2
    subscriptions = {_subscription(g) for g in grants}
    assert {
        s for s in subscriptions if f"/Subscription/{s}/".encode() in feed.content
    } == subscriptions


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("profile", "expected", "retry_after"),
    [
        (OverLimit.STRICT, [200, 429, 429, 429], True),
        (OverLimit.LENIENT, [200, 200, 200, 200], False),
        (OverLimit.UNAVAILABLE, [200, 503, 503, 503], False),
    ],
)
def test_several_requests_within_a_second_under_pges_limits(
    conformance_pki: devpki.DevPki,
    profile: OverLimit,
    expected: list[int],
    retry_after: bool,
) -> None:
    clock = _Clock(1_760_000_000.0)  # held still: every call falls in the same second
    with (
        start_sandbox(
            conformance_pki.directory, rate_limits=RateLimits(), over_limit=profile, clock=clock
        ) as sandbox,
        sandbox.api_client() as http,
    ):
        pge = PgeClient(sandbox, http)
        token = pge.client_token()
        answers = [pge.get(pge.espi("ReadServiceStatus"), token) for _ in expected]
        assert [a.status_code for a in answers] == expected
        refused = [a for a in answers if a.status_code != 200]
        assert all(("retry-after" in a.headers) is retry_after for a in refused)


def test_a_doubled_slash_in_a_resource_path_is_served(pge: PgeClient) -> None:
    body = pge.exchange_code(pge.consent("electric-15min"), in_query=True)
    url = pge.espi(f"Subscription/{_subscription(body)}/UsagePoint").replace(
        "resource/", "resource//"
    )
    assert pge.get(url, body["access_token"]).status_code == 200


def test_the_test_environment_token_path(pge: PgeClient) -> None:
    test_url = pge.sandbox.token_url.replace("/oauth/v2/", "/test/oauth/v2/")
    answer = pge.http.post(
        test_url,
        params={"grant_type": "client_credentials"},
        content=b"",
        headers={"Content-Type": "application/json"},
        auth=pge.basic,
    )
    assert answer.status_code == 200 and answer.json()["client_access_token"]
