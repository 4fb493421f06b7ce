import time

import pytest
from scwadd_fetcher.notifications import Announced, BatchWaiters

pytestmark = pytest.mark.anyio

BASE = "https://api.example/espi/1_1/resource"
REQUEST = f"{BASE}/Batch/Subscription/S/UsagePoint/U"


def soon(seconds: float = 1.0) -> float:
    return time.monotonic() + seconds


async def test_our_correlation_id_is_exact_and_others_are_left_alone():
    waiters = BatchWaiters()
    mine = waiters.expect({"c1"}, REQUEST)
    other = waiters.expect({"c2"}, REQUEST)
    url = f"{BASE}/Batch/Bulk/7?correlationID=c1"
    assert waiters.deliver([url]) == 1
    assert await waiters.next(mine, soon()) == [Announced(url, exact=True)]
    assert other.queue.empty()


async def test_a_rerequest_accepts_the_earlier_requests_notification():
    waiters = BatchWaiters()
    expectation = waiters.expect({"first", "second"}, REQUEST)
    waiters.deliver([f"{BASE}/Batch/Bulk/1?correlationID=first"])
    assert not expectation.queue.empty()


async def test_without_correlation_id_the_path_decides():
    waiters = BatchWaiters()
    expectation = waiters.expect({"x"}, REQUEST)
    waiters.deliver([f"{BASE}/Batch/Subscription/S/UsagePoint/OTHER?published-min=1"])
    assert expectation.queue.empty()
    waiters.deliver([f"{BASE}/Batch/Subscription/S/UsagePoint/U?published-min=1"])
    assert not expectation.queue.empty()


async def test_custodian_named_batches_are_candidates_only_for_jobs_that_accept_them():
    waiters = BatchWaiters()
    subscription = waiters.expect({"ours"}, f"{BASE}/Batch/Subscription/S", accepts_candidates=True)
    strict = waiters.expect({"mine"}, REQUEST)
    url = f"{BASE}/Batch/Bulk/50916?correlationID=custodian-chosen"
    assert waiters.deliver([url]) == 1
    assert await waiters.next(subscription, soon()) == [Announced(url, exact=False)]
    assert strict.queue.empty()


async def test_a_url_that_is_exactly_somebodys_is_nobody_elses_candidate():
    waiters = BatchWaiters()
    owner = waiters.expect({"c1"}, REQUEST)
    bystander = waiters.expect({"zz"}, f"{BASE}/Batch/Subscription/T", accepts_candidates=True)
    waiters.deliver([f"{BASE}/Batch/Bulk/1?correlationID=c1"])
    assert not owner.queue.empty()
    assert bystander.queue.empty()


async def test_next_gives_up_at_the_deadline_and_cancel_forgets():
    waiters = BatchWaiters()
    expectation = waiters.expect({"c"}, REQUEST)
    assert await waiters.next(expectation, soon(0.01)) is None
    waiters.cancel(expectation)
    assert waiters.pending == 0
    # A late notification finds nobody and breaks nothing.
    assert waiters.deliver([f"{BASE}/Batch/Bulk/1?correlationID=c"]) == 0
