"""The per-client throttles of scwadd_core.throttle: files' login back-off, auth's token bucket."""

from __future__ import annotations

from scwadd_core.throttle import LoginThrottle, TokenBucket, retry_after_header


def test_throttle_blocks_after_the_free_failures_and_backs_off() -> None:
    now = [1000.0]
    throttle = LoginThrottle(free_failures=2, base_delay=1.0, max_delay=8.0, clock=lambda: now[0])
    assert throttle.failed("1.2.3.4") == 0 and throttle.failed("1.2.3.4") == 0
    assert throttle.retry_after("1.2.3.4") == 0
    assert throttle.failed("1.2.3.4") == 1.0
    assert throttle.retry_after("1.2.3.4") == 1.0
    assert throttle.retry_after("5.6.7.8") == 0  # per address
    delays = [throttle.failed("1.2.3.4") for _ in range(5)]
    assert delays == [2.0, 4.0, 8.0, 8.0, 8.0]
    now[0] += 8.0
    assert throttle.retry_after("1.2.3.4") == 0
    throttle.succeeded("1.2.3.4")
    assert throttle.failed("1.2.3.4") == 0  # a success starts over


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_clients=3)
    for n in range(10):
        throttle.failed(f"10.0.0.{n}")
    assert len(throttle._clients) == 3


def test_token_bucket_allows_the_burst_then_the_rate_per_client() -> None:
    now = [1000.0]
    bucket = TokenBucket(burst=3, per_minute=6, clock=lambda: now[0])
    assert [bucket.take("1.2.3.4") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("1.2.3.4") == 10.0  # 6 a minute: the next call in 10 s
    assert bucket.take("5.6.7.8") == 0.0  # per address
    now[0] += 10.0
    assert bucket.take("1.2.3.4") == 0.0
    assert bucket.take("1.2.3.4") > 0
    now[0] += 3600.0
    assert [bucket.take("1.2.3.4") for _ in range(4)][-1] > 0  # refilled to the burst, no more


def test_token_bucket_memory_is_bounded() -> None:
    bucket = TokenBucket(burst=1, per_minute=1, max_clients=3)
    for n in range(10):
        bucket.take(f"10.0.0.{n}")
    assert len(bucket._buckets) == 3
    assert bucket.take("10.0.0.0") == 0.0  # forgotten first, so it starts with a full bucket


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(29.2) == "30"
