"""The exporter's calls to the custodian draw from the budget the fetchers use.

PG&E counts calls per client ID, the fetchers' and the exporter's together. These tests run the
real exporter (and the real fetcher) against a real nats-server and the real sandbox enforcing
PG&E's 1 call per second, and look at what the custodian saw.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator

import pytest
from custodian_support import custodian_settings
from exporter_support import SandboxGrant, exporter_settings, fetch_raw, obtain_grant
from exporter_support import running_exporter as run_exporter
from prometheus_client import REGISTRY
from scwadd_core.bus import Bus
from scwadd_core.events import RATELIMIT_BUCKET, FetchFailed, GrantReceived
from scwadd_core.ratelimit import BUDGET_KEY
from scwadd_core.sealing import Keyring, generate_key
from scwadd_fetcher.runtime import main as fetcher_main
from scwadd_fetcher.settings import FetcherSettings
from scwadd_sandbox.config import RateLimits
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_testing import free_port
from scwadd_testing.service import serving

pytestmark = pytest.mark.anyio

PGE_LIMITS = RateLimits(per_second=1, per_hour=2000, per_day=20000)


def authorization_calls_counted() -> float:
    """``scwadd_custodian_calls_total`` for the Authorization endpoint, every status."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "scwadd_custodian_calls"
        for sample in family.samples
        if sample.name == "scwadd_custodian_calls_total"
        and sample.labels["endpoint"] == "Authorization"
    )


class HeldClock:
    """The sandbox's clock: the wall clock, or one instant for as long as it is held."""

    def __init__(self) -> None:
        self.held: float | None = None

    def __call__(self) -> float:
        return self.held if self.held is not None else time.time()


def deferrals(service: str) -> float:
    labels = {"service": service}
    return REGISTRY.get_sample_value("scwadd_rate_limit_deferrals_total", labels) or 0.0


async def publish_grant(bus: Bus, job_id: str, grant: SandboxGrant, keyring: Keyring) -> None:
    tokens = grant.tokens
    assert tokens.resource_uri and tokens.authorization_uri and tokens.refresh_token
    await bus.publish(
        GrantReceived(
            job_id=job_id,
            subscription_id=grant.subscription_id,
            resource_uri=tokens.resource_uri,
            authorization_uri=tokens.authorization_uri,
            scope=tokens.scope or "",
            access_token=keyring.seal(tokens.access_token, job_id=job_id),
            refresh_token=keyring.seal(tokens.refresh_token, job_id=job_id),
        )
    )


@pytest.fixture
def held_clock() -> HeldClock:
    return HeldClock()


@pytest.fixture
def strict_sandbox(tmp_path, held_clock) -> Iterator[RunningSandbox]:
    with start_sandbox(tmp_path / "pki", rate_limits=PGE_LIMITS, clock=held_clock) as sandbox:
        yield sandbox


async def test_a_429_to_a_delete_is_waited_out_without_flagging_the_grant(
    strict_sandbox, held_clock, nats_server, sqlite_url, exporter_port, caplog
):
    sandbox = strict_sandbox
    grant = await obtain_grant(sandbox, "electric-15min")
    bus = await Bus.connect(nats_server, name="test")
    try:
        await bus.ensure_streams()
        # One attempt only: before, the first 429 used it up and the grant was flagged.
        settings = exporter_settings(
            sandbox, nats_server, sqlite_url, exporter_port, REVOKE_MAX_ATTEMPTS=1
        )
        async with run_exporter(settings) as exporter:
            # A call by someone outside the shared budget, then time at the custodian stands
            # still: it refuses every call with 429 (Retry-After 1) until time moves on.
            held_clock.held = now = time.time()
            await fetch_raw(sandbox, grant, int(now) - 3 * 86400, int(now) - 86400)
            before = deferrals("exporter")
            await publish_grant(bus, "job-429", grant, Keyring.parse(generate_key("t")))
            await bus.publish(FetchFailed(job_id="job-429", reason="PG&E did not send it."))
            for _ in range(300):
                if deferrals("exporter") >= before + 2:
                    break
                await asyncio.sleep(0.05)
            # Two 429s in, the grant is still being revoked, not flagged.
            assert deferrals("exporter") >= before + 2
            waiting = await exporter.wait_for("job-429", {"revoking", "flagged"})
            assert waiting["status"] == "revoking"
            held_clock.held = None
            revoked = await exporter.wait_for("job-429", {"revoked", "flagged"})
    finally:
        await bus.close()
    assert revoked["status"] == "revoked"
    assert sandbox.state.responses_by_status[429] >= 2
    assert sandbox.state.authorizations[grant.authorization_id].status == "revoked"
    assert "grant NOT revoked" not in caplog.text


# Generous for a loaded machine (load average 15-30 on 2 cores): calls wait for each other's
# answers, and the in-process sandbox shares the starved CPUs.
@pytest.mark.timeout(1200)
async def test_fetcher_and_exporter_share_one_budget_and_get_no_429(
    tmp_path, nats_server, sqlite_url, exporter_port
):
    fetcher_port = free_port()
    notify = f"https://127.0.0.1:{fetcher_port}/espi/notify"
    keys = generate_key("t")
    profiles = ["electric-15min", "electric-60min", "solar", "gas-electric"]
    with start_sandbox(
        tmp_path / "pki", rate_limits=PGE_LIMITS, notification_uri=notify
    ) as sandbox:
        grants = [await obtain_grant(sandbox, profile) for profile in profiles]
        revocations_counted = authorization_calls_counted()
        fetcher_settings = FetcherSettings(
            NATS_URL=nats_server,
            DATABASE_URL=f"sqlite:///{tmp_path / 'fetcher.db'}",
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=fetcher_port,
            TLS_CERT_FILE=sandbox.pki.server_cert,
            TLS_KEY_FILE=sandbox.pki.server_key,
            **custodian_settings(sandbox),
            PGE_API_BASE=sandbox.espi_base,
            TOKEN_SEALING_KEYS=keys,
            HISTORY_DAYS=30,
            RATE_LIMIT_PER_SECOND=1.0,
            BATCH_SCOPE="usagepoint",  # calls under each customer's token, several per job
            # A timeout on a starved machine would be retried: a call more than the test counts.
            CUSTODIAN_TIMEOUT_SECONDS=600.0,
        )
        exporter_config = exporter_settings(sandbox, nats_server, sqlite_url, exporter_port)
        assert exporter_config.RATE_LIMIT_PER_SECOND == 1.0  # PG&E's default, like the fetcher
        fetcher_ready = f"https://127.0.0.1:{fetcher_port}/readyz"
        verify = ssl.create_default_context(cafile=str(sandbox.pki.ca_cert))
        bus = await Bus.connect(nats_server, name="test")
        try:
            async with (
                serving(
                    lambda stop: fetcher_main(fetcher_settings, stop=stop),
                    fetcher_ready,
                    name="the fetcher",
                    verify=verify,
                ),
                run_exporter(exporter_config) as exporter,
            ):
                keyring = Keyring.parse(keys)
                for number, grant in enumerate(grants):
                    await publish_grant(bus, f"job-{number}", grant, keyring)
                finals = [
                    await exporter.wait_for(f"job-{n}", {"revoked", "flagged"}, timeout=900)
                    for n in range(len(grants))
                ]
            entry = await (await bus.key_value(RATELIMIT_BUCKET)).get(BUDGET_KEY)
            budget = json.loads(entry.value or b"{}")
        finally:
            await bus.close()
        report = sandbox.admin.get("/admin/calls").json()
    assert [f["status"] for f in finals] == ["revoked"] * len(grants)
    # Every fetch and every revocation was answered at the first try: nobody was told to wait.
    assert "429" not in report["responses_by_status"]
    calls = sandbox.state.calls_by_client
    deletes = calls[(sandbox.client_id, "Authorization")]
    fetches = sum(
        n for (_, endpoint), n in calls.items() if endpoint not in ("Authorization", "token")
    )
    assert deletes == len(grants)
    assert fetches >= 2 * len(grants)
    # The exporter's DELETEs show in scwadd_custodian_calls_total like the fetcher's calls.
    assert authorization_calls_counted() - revocations_counted == deletes
    # Each of them was taken from the one budget in KV, and so was the exporter's one client-token
    # request (the code exchanges were the test's, made outside the budget).
    assert sum(budget["m"].values()) == deletes + fetches + 1
