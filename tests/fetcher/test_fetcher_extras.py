"""Bills and customer details: fetched only when the scope grants them, in the fewest calls,
complete when the history takes several windows."""

from __future__ import annotations

import pytest
from custodian_support import grant_tokens
from fetcher_harness import calls_for, running_fetcher
from scwadd_core.events import FetchCompleted
from scwadd_core.sealing import Keyring
from scwadd_espi.bills import iter_bills
from scwadd_fetcher.extras import Granted, function_blocks, summary_windows
from scwadd_fetcher.windows import DAY, Window

pytestmark = pytest.mark.anyio


def test_function_blocks_of_pge_scopes() -> None:
    scope = "FB=1_3_4_5_8_13_14_15_16_18_19_31_32_35_37_38_39_40_46;IntervalDuration=3600;"
    assert {15, 16, 46} <= function_blocks(scope)
    assert Granted.from_scope(scope) == Granted(usage_summary=True, retail_customer=True)
    usage = "FB=1_3_4_5_8_13_14_18_19_31_32_35_37_38_39_40;IntervalDuration=900_3600;"
    assert Granted.from_scope(usage) == Granted(usage_summary=False, retail_customer=False)
    assert Granted.from_scope("FB=15;") == Granted(usage_summary=True, retail_customer=False)
    assert function_blocks("IntervalDuration=900") == frozenset()
    with pytest.raises(ValueError, match="not numbers"):
        function_blocks("FB=1_x")
    with pytest.raises(ValueError, match="longer"):
        function_blocks("FB=" + "1_" * 3000)


def test_summary_windows_overlap_by_more_than_a_billing_period() -> None:
    period = Window(0, 366 * DAY)
    assert summary_windows(period, None) == [period]
    windows = summary_windows(period, 100 * DAY)
    assert windows[0].start == 0 and windows[-1].end == period.end
    assert all(w.seconds <= 100 * DAY for w in windows)
    # Every 31-day span of the period lies whole inside one window.
    for start in range(0, 366 * DAY - 31 * DAY, DAY):
        assert any(w.start <= start and start + 31 * DAY <= w.end for w in windows)


async def test_split_history_still_brings_every_bill(
    make_sandbox, settings_for, sealing_keys, observer
):
    """200-day windows: the Batch answers lose the period across their boundary, so the
    summaries are asked for apart, in overlapping windows: every served bill arrives once."""
    with make_sandbox(max_range_seconds=200 * DAY) as sandbox:
        settings = settings_for(sandbox, CUSTODIAN_MAX_RANGE_DAYS=200)
        tokens = await grant_tokens(sandbox, "electric-60min")
        async with running_fetcher(settings):
            grant = await observer.publish_grant(tokens, Keyring.parse(sealing_keys))
            outcome = await observer.outcome(grant.job_id)
        assert isinstance(outcome, FetchCompleted), outcome
        calls = calls_for(sandbox, grant.authorization_uri)
        assert calls == {
            "UsagePoint": 1,
            "BatchSubscriptionUsagePoint": 2,
            # 366 days in 200-day windows overlapping by 35 days
            "UsageSummary": 3,
            "BatchRetailCustomer": 1,
        }
        documents = await observer.raw_documents(outcome.raw_objects + outcome.summary_objects)
        bills = list(iter_bills(documents))
        start = int(outcome.period_start.timestamp())
        end = int(outcome.period_end.timestamp())
        served = sandbox.admin.get(
            "/admin/truth",
            params={"subscription_id": grant.subscription_id, "start": start, "end": end},
        ).json()["bills"]
        assert [int(b.period_start.timestamp()) for b in bills] == [s["start"] for s in served]
        assert len(bills) >= 10
