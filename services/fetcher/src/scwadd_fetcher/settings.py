"""The fetcher's configuration (environment only; see docs/architecture.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from scwadd_core.settings import (
    CustodianSettings,
    DatabaseSettings,
    RateLimitSettings,
    SealingSettings,
)

# Jobs per replica by default; with Bulk rounds, the burst of consents one round may gather.
FETCH_CONCURRENCY = 4
BULK_FETCH_CONCURRENCY = 32


class FetcherSettings(CustodianSettings, RateLimitSettings, DatabaseSettings, SealingSettings):
    HTTP_PORT: int = 8081
    DATABASE_URL: str = "sqlite:///./fetcher.db"
    PGE_API_BASE: str
    HISTORY_DAYS: int = Field(default=365, ge=1, le=3660)
    # The custodian's longest accepted published-min..max span, if known in advance; otherwise
    # it is learned from the custodian's 400 answer.
    CUSTODIAN_MAX_RANGE_DAYS: int | None = Field(default=None, ge=1)
    # How long to wait for the BatchList after a 202 before asking again, and how often.
    BATCH_NOTIFICATION_TIMEOUT_SECONDS: float = Field(default=300.0, gt=0)
    BATCH_REREQUESTS: int = Field(default=2, ge=0)
    # bulk: grants arriving within BULK_GATHER_SECONDS share one Batch/Bulk request (client
    # token), so a customer costs its code exchange and its revocation plus a share of a round;
    # usagepoint: the UsagePoint list, then one synchronous batch request per UsagePoint (PG&E
    # answers 200); subscription: the UsagePoint list, then one asynchronous request for the
    # whole subscription (202 + BatchList). docs/benchmarks.md has the calls per customer.
    BATCH_SCOPE: Literal["usagepoint", "subscription", "bulk"] = "bulk"
    BULK_GATHER_SECONDS: float = Field(default=5.0, ge=0, le=300)
    # The third party's Bulk id (Batch/Bulk/{id}); read from the Authorization documents if unset.
    PGE_BULK_ID: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_~=+-]{1,128}$")
    # Retries of 5xx, timeouts and malformed bodies (exponential backoff with jitter).
    FETCH_RETRY_ATTEMPTS: int = Field(default=5, ge=1)
    FETCH_RETRY_INITIAL_SECONDS: float = Field(default=1.0, ge=0)
    FETCH_RETRY_MAX_SECONDS: float = Field(default=60.0, ge=0)
    # Feeds (a Bulk answer holds every waiting subscription) take longer than other calls.
    CUSTODIAN_TIMEOUT_SECONDS: float = Field(default=60.0, gt=0)
    # Jobs one replica works on at once; the shared rate limit still paces their calls, so more
    # only helps while jobs wait (202 notifications, latency, Bulk rounds). Unset: 4, or
    # BULK_FETCH_CONCURRENCY with BATCH_SCOPE=bulk, where a round is at most this many jobs and a
    # job waiting for its round costs no call.
    FETCH_CONCURRENCY: int | None = Field(default=None, ge=1, le=64)
    # A replica holds a job this long without renewing it before another may take it over;
    # it renews every third of it. Short, so a job whose replica died resumes within seconds.
    JOB_LEASE_SECONDS: float = Field(default=15.0, gt=0)
    # /espi/notify: notifications per second (sustained) and in a burst, per sender address.
    # PG&E sends one per batch request, and our own budget allows one request a second.
    NOTIFY_RATE_PER_SECOND: float = Field(default=2.0, gt=0)
    NOTIFY_BURST: int = Field(default=30, ge=1)

    @model_validator(mode="after")
    def _concurrency_for_the_scope(self) -> FetcherSettings:
        if self.FETCH_CONCURRENCY is None:
            bulk = self.BATCH_SCOPE == "bulk"
            self.FETCH_CONCURRENCY = BULK_FETCH_CONCURRENCY if bulk else FETCH_CONCURRENCY
        return self

    @property
    def concurrency(self) -> int:
        """FETCH_CONCURRENCY as set, or its default for BATCH_SCOPE."""
        return self.FETCH_CONCURRENCY or FETCH_CONCURRENCY
