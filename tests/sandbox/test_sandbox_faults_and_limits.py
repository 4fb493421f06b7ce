"""Faults reproducible from a seed, early token expiry, rate limits, and the admin API's guard."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from lxml import etree
from sandbox_helpers import client_token, grant_for
from scwadd_sandbox.config import OverLimit, RateLimits, SandboxConfig
from scwadd_sandbox.faults import EndpointFaults, FaultConfig
from scwadd_sandbox.state import RateLimiter
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

DAY = 86400


def _statuses(sandbox: RunningSandbox, api: httpx.Client, calls: int) -> list[int]:
    token = client_token(sandbox, api)
    url = f"{sandbox.espi_base}/ReadServiceStatus"
    return [api.get(url, headers=token).status_code for _ in range(calls)]


def test_error_faults_are_reproducible_from_the_seed(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    faults = FaultConfig(
        seed=42,
        endpoints={"ReadServiceStatus": EndpointFaults(error_500_rate=0.3, error_503_rate=0.3)},
    )
    runs = []
    for _ in range(2):
        assert sandbox.admin.put("/admin/faults", json=faults.model_dump()).status_code == 200
        runs.append(_statuses(sandbox, api, 30))
    assert runs[0] == runs[1]
    assert {200, 500, 503} == set(runs[0])
    other_seed = faults.model_copy(update={"seed": 43})
    sandbox.admin.put("/admin/faults", json=other_seed.model_dump())
    assert _statuses(sandbox, api, 30) != runs[0]


def test_truncated_and_malformed_documents_do_not_parse(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    for kind in ("truncate_rate", "malformed_rate"):
        faults = FaultConfig(endpoints={"UsagePoint": EndpointFaults(**{kind: 1.0})})
        sandbox.admin.put("/admin/faults", json=faults.model_dump())
        response = api.get(url, headers=grant.headers)
        assert response.status_code == 200
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(response.content)
    sandbox.admin.put("/admin/faults", json=FaultConfig().model_dump())
    etree.fromstring(api.get(url, headers=grant.headers).content)


def test_empty_fault_answers_204_and_hang_answers_late(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    customer = next(c for c in sandbox.state.customers if c.profile == "electric-15min")
    up = customer.service_points[0].usage_point_id
    url = f"{sandbox.espi_base}/Batch/Subscription/{grant.subscription_id}/UsagePoint/{up}"
    end = sandbox.state.data_end
    params = {"published-min": end - DAY, "published-max": end}
    faults = FaultConfig(endpoints={"*": EndpointFaults(empty_rate=1.0)})
    sandbox.admin.put("/admin/faults", json=faults.model_dump())
    assert api.get(url, headers=grant.headers, params=params).status_code == 204
    hang = FaultConfig(hang_seconds=30, endpoints={"*": EndpointFaults(hang_rate=1.0)})
    sandbox.admin.put("/admin/faults", json=hang.model_dump())
    with pytest.raises(httpx.ReadTimeout):
        api.get(url, headers=grant.headers, params=params, timeout=0.5)


def test_added_latency_delays_the_answer(sandbox: RunningSandbox, api: httpx.Client) -> None:
    token = client_token(sandbox, api)
    url = f"{sandbox.espi_base}/ReadServiceStatus"
    slow = FaultConfig(endpoints={"ReadServiceStatus": EndpointFaults(latency_ms=1500)})
    sandbox.admin.put("/admin/faults", json=slow.model_dump())
    with pytest.raises(httpx.ReadTimeout):
        api.get(url, headers=token, timeout=0.2)
    sandbox.admin.put("/admin/faults", json=FaultConfig().model_dump())
    assert api.get(url, headers=token, timeout=5).status_code == 200


def test_early_token_expiry(sandbox: RunningSandbox, api: httpx.Client) -> None:
    grant = grant_for(sandbox, api)
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    assert api.get(url, headers=grant.headers).status_code == 200
    expired = sandbox.admin.post("/admin/tokens/expire", json={"client_id": sandbox.client_id})
    assert expired.json()["expired"] >= 1
    assert api.get(url, headers=grant.headers).status_code == 401
    # With a lifetime override, new tokens die at once while expires_in still says 3600.
    sandbox.admin.put("/admin/faults", json=FaultConfig(token_lifetime_override=0).model_dump())
    fresh = grant_for(sandbox, api)
    assert fresh.body["expires_in"] == 3600
    url = f"{sandbox.espi_base}/Subscription/{fresh.subscription_id}/UsagePoint"
    assert api.get(url, headers=fresh.headers).status_code == 401


def test_rate_limit_answers_429_with_retry_after(pki_dir: Path) -> None:
    clock = _Clock(1_760_000_000.0)  # held still: the second call is within the same second
    with (
        start_sandbox(pki_dir, rate_limits=RateLimits(), clock=clock) as sandbox,
        sandbox.api_client() as api,
    ):
        token = client_token(sandbox, api)
        url = f"{sandbox.espi_base}/ReadServiceStatus"
        assert api.get(url, headers=token).status_code == 200
        limited = api.get(url, headers=token)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        clock.now += 1.5
        assert api.get(url, headers=token).status_code == 200


@pytest.mark.parametrize(
    ("profile", "status", "retry_after"),
    [(OverLimit.LENIENT, 200, None), (OverLimit.UNAVAILABLE, 503, None)],
)
def test_over_limit_profiles(
    pki_dir: Path, profile: OverLimit, status: int, retry_after: str | None
) -> None:
    """PG&E documents its limits but not its answer beyond them: lenient serves and counts the
    excess; unavailable answers 503 without Retry-After. (strict: the test above.)"""
    clock = _Clock(1_760_000_000.0)
    with (
        start_sandbox(
            pki_dir, rate_limits=RateLimits(), clock=clock, over_limit=profile
        ) as sandbox,
        sandbox.api_client() as api,
    ):
        token = client_token(sandbox, api)
        url = f"{sandbox.espi_base}/ReadServiceStatus"
        assert api.get(url, headers=token).status_code == 200
        beyond = [api.get(url, headers=token) for _ in range(3)]
        assert [r.status_code for r in beyond] == [status] * 3
        assert all(r.headers.get("retry-after") == retry_after for r in beyond)
        report = sandbox.admin.get("/admin/calls").json()
        assert report["over_limit_by_client"] == {sandbox.client_id: 3}
        clock.now += 1.5
        assert api.get(url, headers=token).status_code == 200


def test_strict_is_the_default_profile() -> None:
    assert SandboxConfig.__dataclass_fields__["over_limit"].default is OverLimit.STRICT


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_second_hour_and_pges_5pm_day() -> None:
    pacific = ZoneInfo("America/Los_Angeles")
    clock = _Clock(dt.datetime(2025, 7, 1, 9, 0, tzinfo=pacific).timestamp())
    limiter = RateLimiter(RateLimits(per_second=1, per_hour=3, per_day=5), clock)
    assert limiter.check("a") is None
    assert limiter.check("a") == pytest.approx(1.0)
    assert limiter.check("b") is None  # per client ID
    for _ in range(2):
        clock.now += 1
        assert limiter.check("a") is None
    clock.now += 1
    assert limiter.check("a") == pytest.approx(3600 - 3)  # the hour is full
    clock.now += 3600
    assert limiter.check("a") is None
    clock.now += 1
    assert limiter.check("a") is None
    clock.now += 1
    wait = limiter.check("a")  # five today: the day is full until 5 p.m. Pacific
    reset = dt.datetime(2025, 7, 1, 17, 0, tzinfo=pacific).timestamp()
    assert wait == pytest.approx(reset - clock.now)
    clock.now = reset + 1
    assert limiter.check("a") is None


def test_the_default_limits_are_pges() -> None:
    assert RateLimits() == RateLimits(per_second=1, per_hour=2000, per_day=20000)


def test_admin_api_needs_its_credential(sandbox: RunningSandbox) -> None:
    routes = [
        ("GET", "/admin/registrations"),
        ("GET", "/admin/customers"),
        ("GET", "/admin/authorizations"),
        ("POST", "/admin/authorizations/1/revoke"),
        ("GET", "/admin/calls"),
        ("DELETE", "/admin/calls"),
        ("GET", "/admin/faults"),
        ("PUT", "/admin/faults"),
        ("POST", "/admin/tokens/expire"),
        ("GET", "/admin/batches"),
        ("GET", "/admin/truth?start=0&end=1&retail_customer_id=x"),
    ]
    with sandbox.web_client() as web:
        for method, path in routes:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
                response = web.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (method, path, response.text)
    assert sandbox.admin.get("/admin/registrations").json()[0]["client_id"] == sandbox.client_id
    assert "client_secret" not in sandbox.admin.get("/admin/registrations").text


def test_admin_counts_calls_per_client_endpoint_and_authorization(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    for _ in range(3):
        api.get(url, headers=grant.headers)
    report = sandbox.admin.get("/admin/calls").json()
    assert report["by_client"][sandbox.client_id] == {"token": 1, "UsagePoint": 3}
    assert report["by_authorization"][grant.authorization_id] == {"UsagePoint": 3}
    assert report["totals_by_authorization"][grant.authorization_id] == 3
    sandbox.admin.delete("/admin/calls")
    assert sandbox.admin.get("/admin/calls").json()["by_client"] == {}


def test_admin_revocation_by_the_customer_is_recorded(
    sandbox: RunningSandbox, api: httpx.Client
) -> None:
    grant = grant_for(sandbox, api)
    response = sandbox.admin.post(f"/admin/authorizations/{grant.authorization_id}/revoke", json={})
    assert response.json()["authorization"]["revoked_by"] == "customer"
    url = f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint"
    assert api.get(url, headers=grant.headers).status_code == 401


def test_bad_fault_settings_are_refused(sandbox: RunningSandbox) -> None:
    response = sandbox.admin.put("/admin/faults", json={"endpoints": {"*": {"error_500_rate": 2}}})
    assert response.status_code == 422
