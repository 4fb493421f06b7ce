"""Past PG&E's limits: whatever the custodian answers (PG&E does not say), the fetch completes.

The sandbox allows 1 call/s; the fetcher's budget is set above it on purpose, so its calls do go
over the limit and meet each of the sandbox's profiles: ``strict`` (429 with Retry-After),
``lenient`` (served, counted) and ``unavailable`` (503 without Retry-After, so nothing may rely
on that header being there).
"""

from __future__ import annotations

import pytest
from custodian_support import grant_tokens
from fetcher_harness import assert_equals_truth, running_fetcher
from scwadd_core.events import FetchCompleted
from scwadd_core.sealing import Keyring
from scwadd_sandbox.config import OverLimit, RateLimits

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("profile", [p.value for p in OverLimit])
async def test_the_fetch_completes_under_every_over_limit_profile(
    make_sandbox, settings_for, sealing_keys, observer, profile
):
    with make_sandbox(
        over_limit=OverLimit(profile), rate_limits=RateLimits(per_second=1)
    ) as sandbox:
        settings = settings_for(
            sandbox,
            RATE_LIMIT_PER_SECOND=4.0,  # more than the custodian allows
            FETCH_RETRY_ATTEMPTS=8,
            FETCH_RETRY_INITIAL_SECONDS=0.5,
            FETCH_RETRY_MAX_SECONDS=4.0,
        )
        tokens = await grant_tokens(sandbox, "multi-site")  # 4 meters: 5 calls in a burst
        async with running_fetcher(settings):
            grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
            outcome = await observer.outcome(grant.job_id, 600)
        assert isinstance(outcome, FetchCompleted), outcome
        await assert_equals_truth(sandbox, observer, grant, outcome)
        report = sandbox.admin.get("/admin/calls").json()
        over = int(report["over_limit_by_client"].get(sandbox.client_id, 0))
        statuses = report["responses_by_status"]
        assert over > 0, "the calls did go past the custodian's limit"
        if profile == "strict":
            assert int(statuses.get("429", 0)) == over
        elif profile == "unavailable":
            assert int(statuses.get("503", 0)) == over  # no Retry-After on any of them
        else:
            assert "429" not in statuses and "503" not in statuses
