import asyncio

import pytest
from scwadd_fetcher.notifications import BatchWaiters

pytestmark = pytest.mark.anyio

BASE = "https://api.example/espi/1_1/resource"


async def test_notification_matches_by_correlation_id_and_resolves_once():
    waiters = BatchWaiters()
    request = f"{BASE}/Batch/Subscription/S/UsagePoint/U"
    mine = waiters.expect({"c1"}, request)
    other = waiters.expect({"c2"}, request)
    url = f"{BASE}/Batch/Bulk/7?correlationID=c1"
    assert waiters.deliver([url]) == 1
    assert await waiters.wait(mine, 1) == [url]
    # The same notification again changes nothing: nobody else is waiting for c1.
    assert waiters.deliver([url]) == 0
    assert not other.future.done()
    assert waiters.pending == 1


async def test_a_rerequest_accepts_the_earlier_requests_notification():
    waiters = BatchWaiters()
    request = f"{BASE}/Batch/Subscription/S/UsagePoint/U"
    expectation = waiters.expect({"first", "second"}, request)
    waiters.deliver([f"{BASE}/Batch/Bulk/1?correlationID=first"])
    assert expectation.future.done()


async def test_without_correlation_id_the_path_decides():
    waiters = BatchWaiters()
    request = f"{BASE}/Batch/Subscription/S/UsagePoint/U"
    expectation = waiters.expect({"x"}, request)
    waiters.deliver([f"{BASE}/Batch/Subscription/S/UsagePoint/OTHER?published-min=1"])
    assert not expectation.future.done()
    waiters.deliver([f"{BASE}/Batch/Subscription/S/UsagePoint/U?published-min=1"])
    assert expectation.future.done()


async def test_wait_times_out_and_forgets_the_expectation():
    waiters = BatchWaiters()
    expectation = waiters.expect({"c"}, f"{BASE}/Batch/Subscription/S/UsagePoint/U")
    assert await waiters.wait(expectation, 0.01) is None
    assert waiters.pending == 0
    # A late notification finds nobody and breaks nothing.
    assert waiters.deliver([f"{BASE}/Batch/Bulk/1?correlationID=c"]) == 0
    await asyncio.sleep(0)
