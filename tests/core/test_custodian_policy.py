"""The custodian call policy every service shares (scwadd_core.custodian.call_with_retries)."""

from __future__ import annotations

import pytest
from scwadd_core.custodian import CallPolicy, CustodianError, call_with_retries

pytestmark = pytest.mark.anyio

FAST = CallPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, rate_limited_attempts=4)


def busy(retry_after: float | None = 0.001) -> CustodianError:
    return CustodianError("HTTP 429", status_code=429, retry_after=retry_after)


def down() -> CustodianError:
    return CustodianError("HTTP 503", status_code=503)


class Script:
    """An attempt that raises the scripted errors in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def test_429s_and_failures_are_counted_apart() -> None:
    attempt = Script(down(), busy(), busy(), busy(), down())
    assert await call_with_retries(FAST, attempt) == "done"
    assert attempt.calls == 6


async def test_the_last_error_is_raised_when_failures_are_used_up() -> None:
    attempt = Script(down(), busy(), down(), down(), down())
    with pytest.raises(CustodianError) as raised:
        await call_with_retries(FAST, attempt)
    assert raised.value.status_code == 503
    assert attempt.calls == 4


async def test_a_custodian_that_only_answers_429_ends_the_call_as_429() -> None:
    attempt = Script(*[busy() for _ in range(10)])
    with pytest.raises(CustodianError) as raised:
        await call_with_retries(FAST, attempt)
    assert raised.value.status_code == 429
    assert attempt.calls == 4


async def test_what_a_retry_cannot_help_is_raised_at_once() -> None:
    refused = Script(CustodianError("HTTP 400", status_code=400))
    with pytest.raises(CustodianError):
        await call_with_retries(FAST, refused)
    assert refused.calls == 1
    other = Script(ValueError("not the custodian's"))
    with pytest.raises(ValueError):
        await call_with_retries(FAST, other)
    assert other.calls == 1


def test_waits_honour_retry_after_and_stay_within_the_backoff() -> None:
    policy = CallPolicy(initial_wait=1.0, max_wait=8.0, default_retry_after=5.0)
    assert policy.wait(busy(retry_after=7.0), failures=0) == 7.0
    assert policy.wait(busy(retry_after=None), failures=0) == 5.0
    # A 5xx that says when to come back is not asked sooner, whatever the jitter drew.
    late = CustodianError("HTTP 503", status_code=503, retry_after=30.0)
    assert policy.wait(late, failures=1) == 30.0
    for failures in range(1, 8):
        ceiling = min(1.0 * 2 ** (failures - 1), 8.0)
        assert all(0 <= policy.wait(down(), failures) <= ceiling for _ in range(50))


@pytest.mark.parametrize("service", ["auth", "exporter", "fetcher"])
async def test_every_caller_of_the_custodian_honours_its_timeout_setting(
    service: str, tmp_path
) -> None:
    import importlib

    from scwadd_core.custodian import Custodian, CustodianConfig
    from scwadd_core.devpki import ensure_dev_pki
    from scwadd_core.sealing import generate_key

    settings_class = {
        "auth": ("scwadd_auth.settings", "AuthSettings"),
        "exporter": ("scwadd_exporter.settings", "ExporterSettings"),
        "fetcher": ("scwadd_fetcher.settings", "FetcherSettings"),
    }[service]
    cls = getattr(importlib.import_module(settings_class[0]), settings_class[1])
    pki = ensure_dev_pki(tmp_path / "pki")
    required = {
        "NATS_URL": "nats://127.0.0.1:4222",
        "TOKEN_SEALING_KEYS": generate_key("t"),
        "PGE_CLIENT_ID": "c" * 32,
        "PGE_CLIENT_SECRET": "s",
        "PGE_CLIENT_CERT_FILE": pki.client_cert,
        "PGE_CLIENT_KEY_FILE": pki.client_key,
        "PGE_TOKEN_URL": "https://custodian.invalid/token",
        "PGE_API_BASE": "https://custodian.invalid/espi",
        "PUBLIC_BASE_URL": "https://scwadd.example.com",
        "PGE_AUTHORIZE_URL": "https://custodian.invalid/authorize",
        "PGE_REVOKE_URL_BASE": "https://custodian.invalid/espi",
    }
    fields = cls.model_fields
    values = {k: v for k, v in required.items() if k in fields}
    default = CustodianConfig.from_settings(cls(**values)).timeout_seconds
    assert default == (60.0 if service == "fetcher" else 30.0)  # feeds take longer
    config = CustodianConfig.from_settings(cls(**values, CUSTODIAN_TIMEOUT_SECONDS=7.5))
    async with Custodian(config) as custodian:
        assert (custodian.http.timeout.read, custodian.http.timeout.connect) == (7.5, 10.0)
