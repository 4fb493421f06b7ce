"""The whole pipeline past PG&E's limits, under each of the sandbox's over-limit profiles.

PG&E documents 1 call/s, 2,000/hour and 20,000/day per client ID but not what it answers beyond
them; the sandbox offers three answers: ``strict`` (429 with Retry-After), ``lenient`` (served,
counted) and ``unavailable`` (503 and no Retry-After, so nothing may rely on that header). The
custodian's clock is held still at the start, so to it every call after the first falls within
one second however our side spaces them: the pipeline's own calls (nobody else calls) meet the
profile's answer. Once they have met it a few times, time moves on, and from then on the shared
call budget's spacing must keep every call within the limit as the custodian counts it. Each
profile gets a system of its own (services at their default budget: PG&E's limits).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from scwadd_core.events import RATELIMIT_BUCKET
from scwadd_core.ratelimit import BUDGET_KEY
from scwadd_devstack.stack import ExternalCustodian, Stack, StackConfig, StackPorts
from scwadd_sandbox.config import OverLimit, RateLimits
from scwadd_sandbox.testing import start_sandbox

from .conftest import System
from .test_pipeline import assert_csv_is_the_truth

pytestmark = pytest.mark.e2e

PGE_LIMITS = RateLimits(per_second=1, per_hour=2000, per_day=20000)
# The custodian's clock moves on once the pipeline has met the over-limit answer this often.
OVER_LIMIT_ANSWERS = 2
PROFILE = "gas-electric"  # two usage points, gas and electric


class HeldClock:
    """The sandbox's clock: the wall clock, or one instant for as long as it is held."""

    def __init__(self) -> None:
        self.held: float | None = None

    def __call__(self) -> float:
        return self.held if self.held is not None else time.time()


@dataclass
class LimitWitness:
    """Every rate-limit decision the custodian made: (its clock was held, the call was over)."""

    clock: HeldClock
    decisions: list[tuple[bool, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def over(self, *, held: bool) -> int:
        with self.lock:
            return sum(1 for was_held, over in self.decisions if was_held == held and over)


@dataclass
class LimitedSystem:
    system: System
    witness: LimitWitness
    profile: OverLimit


@pytest.fixture(params=[p.value for p in OverLimit])
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LimitedSystem]:
    profile = OverLimit(request.param)
    run_dir = tmp_path
    ports = StackPorts.free()
    clock = HeldClock()
    with start_sandbox(
        run_dir / "pki",
        redirect_uri=f"http://127.0.0.1:{ports.auth}/OAuthCallback",
        notification_uri=f"https://127.0.0.1:{ports.fetcher}/espi/notify",
        notification_delay=(1.0, 3.0),
        rate_limits=PGE_LIMITS,
        over_limit=profile,
        clock=clock,
    ) as sandbox:
        witness = LimitWitness(clock)
        limiter = sandbox.state.limiter
        check = limiter.check

        def witnessed_check(client_id: str, admit: bool = False) -> float | None:
            # Read before the decision: a call seen as after the release surely used the wall
            # clock (the release may only make a "held" call use it too).
            held = clock.held is not None
            wait = check(client_id, admit=admit)
            with witness.lock:
                witness.decisions.append((held, wait is not None))
            return wait

        # setattr: the instance's attribute shadows the method (mypy refuses a plain assignment).
        setattr(limiter, "check", witnessed_check)
        config = StackConfig(
            run_dir=run_dir,
            ports=ports,
            custodian=ExternalCustodian(
                sandbox.web_url, sandbox.api_url, sandbox.client_id, sandbox.client_secret
            ),
            service_env={"fetcher": {"BULK_GATHER_SECONDS": "1"}},
        )
        with Stack(config) as stack:
            yield LimitedSystem(System(stack, sandbox), witness, profile)


def budget_calls(nats_url: str) -> int:
    """Calls taken from the shared budget (its per-minute counts of the last hour)."""

    async def read() -> int:
        connection = await nats.connect(nats_url)
        try:
            bucket = await connection.jetstream().key_value(RATELIMIT_BUCKET)
            entry = await bucket.get(BUDGET_KEY)
            return sum(int(n) for n in json.loads(entry.value or b"{}").get("m", {}).values())
        finally:
            await connection.close()

    return asyncio.run(read())


@pytest.mark.timeout(900)  # a system of its own per profile, on a possibly busy machine
def test_the_pipeline_completes_past_the_limit_and_keeps_its_pacing(
    limited: LimitedSystem,
) -> None:
    system, witness = limited.system, limited.witness
    sandbox = system.sandbox
    witness.clock.held = time.time()

    def release_once_met() -> None:
        deadline = time.monotonic() + 600
        while witness.over(held=True) < OVER_LIMIT_ANSWERS and time.monotonic() < deadline:
            time.sleep(0.05)
        witness.clock.held = None

    releaser = threading.Thread(target=release_once_met, name="release-clock", daemon=True)
    releaser.start()
    try:
        _consent, view = system.consent(PROFILE)
    finally:
        witness.clock.held = None
        releaser.join(10)

    assert view["phase"] == "done", view
    grant = system.authorization_for(PROFILE)
    assert grant["status"] == "revoked" and grant["revoked_by"] == "third_party"
    assert_csv_is_the_truth(system, grant)

    # The pipeline's own calls met the profile's answer (nobody else called the custodian).
    statuses = sandbox.state.call_report()["responses_by_status"]
    assert witness.over(held=True) >= OVER_LIMIT_ANSWERS
    if limited.profile is OverLimit.STRICT:
        assert int(statuses.get("429", 0)) >= OVER_LIMIT_ANSWERS
        assert "503" not in statuses
    elif limited.profile is OverLimit.UNAVAILABLE:
        assert int(statuses.get("503", 0)) >= OVER_LIMIT_ANSWERS  # none with a Retry-After
        assert "429" not in statuses
    else:
        assert "429" not in statuses and "503" not in statuses
    # Once time moved on, the shared budget's spacing kept every call within 1 call/s as the
    # custodian counts it: no answer was needed to slow the pipeline down.
    assert witness.over(held=False) == 0
    # And every call went through that budget, but the code exchange (auth's, outside it).
    calls = int(sandbox.state.call_report()["totals_by_client"][sandbox.client_id])
    exchanges = len(sandbox.state.authorizations)
    assert budget_calls(system.stack.nats_url) >= calls - exchanges
