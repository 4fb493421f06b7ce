"""The custodian's memory: consents, codes, tokens, pending batches, call counts, rate budgets.

One :class:`SandboxState` is shared by the browser face and the API face. Both faces run in the
same asyncio event loop, so no locking is needed: no method here awaits.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import hashlib
import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scwadd_sandbox.config import RateLimits, Registration, SandboxConfig
from scwadd_sandbox.data import (
    PACIFIC,
    Customer,
    build_customers,
    ceil_pacific_midnight,
    default_data_end,
    pacific_midnight_days_before,
    whole_days,
)
from scwadd_sandbox.faults import FaultInjector

# Green Button function blocks in the granted scope (``FB=..``), and what each lets the third
# party read here. The usage blocks are PG&E's published example without 15 (usage summary).
USAGE_FBS = frozenset({1, 3, 4, 5, 8, 13, 14, 18, 19, 31, 32, 35, 37, 38, 39, 40})
FB_GAS = 10
FB_COST = 12  # cost of interval data: IntervalReading/cost
FB_USAGE_SUMMARY = 15
FB_USAGE_SUMMARY_COST = 16  # UsageSummary with billLastPeriod
FB_RETAIL_CUSTOMER = 46  # PG&E's block for Batch/RetailCustomer
# What the customer chooses to share on the consent page, and the blocks it adds.
SHARE_CHOICES: dict[str, tuple[str, frozenset[int]]] = {
    "all": (
        "Usage, costs, bill summaries and account details (name, service addresses)",
        frozenset({FB_COST, FB_USAGE_SUMMARY, FB_USAGE_SUMMARY_COST, FB_RETAIL_CUSTOMER}),
    ),
    "usage": ("Usage only", frozenset()),
}
CLIENT_SCOPE = "FB=34_35"

HISTORY_CHOICES: tuple[tuple[int, str], ...] = (
    (90 * 86400, "3 months"),
    (365 * 86400, "1 year"),
    (2 * 365 * 86400, "2 years"),
)


class TokenClass(enum.StrEnum):
    CUSTOMER = "customer"  # access_token from authorization_code / refresh_token
    CLIENT = "client"  # client_access_token from client_credentials


@dataclass
class AuthorizationRecord:
    authorization_id: str
    subscription_id: str
    client_id: str
    customer: Customer
    scope: str
    history_seconds: int
    created_at: int
    expires_at: int
    function_blocks: frozenset[int] = frozenset()
    status: str = "active"  # or "revoked"
    revoked_at: int | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def grants(self, *blocks: int) -> bool:
        """True when the granted scope holds any of these function blocks."""
        return any(block in self.function_blocks for block in blocks)

    @property
    def usage_point_ids(self) -> tuple[str, ...]:
        return tuple(point.usage_point_id for point in self.customer.service_points)

    def public_view(self) -> dict[str, Any]:
        return {
            "authorization_id": self.authorization_id,
            "subscription_id": self.subscription_id,
            "client_id": self.client_id,
            "retail_customer_id": self.customer.retail_customer_id,
            "customer_profile": self.customer.profile,
            "usage_point_ids": list(self.usage_point_ids),
            "scope": self.scope,
            "history_seconds": self.history_seconds,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
        }


@dataclass
class CodeRecord:
    client_id: str
    redirect_uri: str
    authorization_id: str
    expires_at: float
    used: bool = False


@dataclass
class TokenRecord:
    token_class: TokenClass
    client_id: str
    expires_at: float
    authorization_id: str | None = None
    # The authorization code that started this token's lineage (revoked together on code replay).
    grant: str | None = None


@dataclass
class RefreshRecord:
    client_id: str
    authorization_id: str
    expires_at: float
    grant: str


@dataclass
class ConsentRequest:
    """A validated myAuthorization request waiting for the customer's decision."""

    client_id: str
    redirect_uri: str
    state: str | None
    scope: str | None
    created_at: float


class BatchKind(enum.StrEnum):
    SUBSCRIPTION = "subscription"  # Batch/Subscription/{id}: one authorization's data
    BULK = "bulk"  # Batch/Bulk/{BulkID}: every active subscription of the third party


@dataclass
class BatchJob:
    """One asynchronous batch request: 202 now, a BatchList notification naming
    ``Batch/Bulk/{bulk_id}?correlationID={correlation_id}`` later."""

    correlation_id: str
    bulk_id: str
    kind: BatchKind
    client_id: str
    authorization_id: str | None  # None for a Bulk request
    published_min: int
    published_max: int
    key: tuple[str, ...]
    delay_seconds: float = 0.0
    pending: bool = True
    notification: str = "scheduled"  # delivered / lost / failed: <reason> / scheduled
    deliveries: int = 0
    # Set once the notification was sent, lost or failed; tests and tools wait on it.
    settled: threading.Event = field(default_factory=threading.Event)

    def public_view(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "bulk_id": self.bulk_id,
            "kind": str(self.kind),
            "client_id": self.client_id,
            "authorization_id": self.authorization_id,
            "published_min": self.published_min,
            "published_max": self.published_max,
            "delay_seconds": self.delay_seconds,
            "pending": self.pending,
            "notification": self.notification,
            "deliveries": self.deliveries,
        }


class RateLimiter:
    """Sliding windows per client ID for the second and the hour; the day is PG&E's day, which
    resets at 5 p.m. Pacific."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._recent: dict[str, collections.deque[float]] = {}
        self._day: dict[str, tuple[int, int]] = {}

    @staticmethod
    def day_of(now: float) -> tuple[int, int]:
        """(index, end) of the 5 p.m.-to-5 p.m. Pacific day holding ``now``."""
        local = dt.datetime.fromtimestamp(now, PACIFIC)
        reset = local.replace(hour=17, minute=0, second=0, microsecond=0)
        if local >= reset:
            reset = (reset.replace(tzinfo=None) + dt.timedelta(days=1)).replace(tzinfo=PACIFIC)
        end = int(reset.timestamp())
        return end // 3600, end

    def check(self, client_id: str, admit: bool = False) -> float | None:
        """Count one call; ``None`` if within the limits, else the seconds until it would be.

        A call over the limits is not counted unless ``admit`` (the ``lenient`` profile serves
        it, so it uses the budget like any other)."""
        now = self._clock()
        recent = self._recent.setdefault(client_id, collections.deque())
        while recent and recent[0] <= now - 3600:
            recent.popleft()
        day_index, day_end = self.day_of(now)
        day_key, day_count = self._day.get(client_id, (day_index, 0))
        if day_key != day_index:
            day_count = 0
        waits = []
        if day_count >= self.limits.per_day:
            waits.append(day_end - now)
        if len(recent) >= self.limits.per_hour:
            waits.append(recent[-self.limits.per_hour] + 3600 - now)
        in_last_second = sum(
            1 for _ in itertools.takewhile(lambda t: t > now - 1, reversed(recent))
        )
        if in_last_second >= self.limits.per_second:
            waits.append(recent[-self.limits.per_second] + 1 - now)
        if waits and not admit:
            return max(waits)
        recent.append(now)
        self._day[client_id] = (day_index, day_count + 1)
        return max(waits) if waits else None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class SandboxState:
    config: SandboxConfig
    clock: Callable[[], float] = time.time
    customers: tuple[Customer, ...] = ()
    faults: FaultInjector = field(init=False)
    limiter: RateLimiter = field(init=False)
    consent_requests: dict[str, ConsentRequest] = field(default_factory=dict)
    authorizations: dict[str, AuthorizationRecord] = field(default_factory=dict)
    codes: dict[str, CodeRecord] = field(default_factory=dict)
    tokens: dict[str, TokenRecord] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshRecord] = field(default_factory=dict)
    batches: dict[str, BatchJob] = field(default_factory=dict)
    # (client_id, endpoint) -> calls; (authorization_id, endpoint) -> calls.
    calls_by_client: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter
    )
    calls_by_authorization: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter
    )
    responses_by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    # Calls beyond the rate limits, per client: served (lenient) or refused (strict, unavailable).
    over_limit_by_client: collections.Counter[str] = field(default_factory=collections.Counter)
    # Request paths with repeated slashes, served as if merged (tls.MergeSlashesMiddleware).
    merged_slash_paths: int = 0
    sequence: int = 0
    # Called after every change worth keeping (the SQLite store when --state-file is set).
    on_change: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.customers = build_customers(self.config.seed, self.config.customers)
        self.faults = FaultInjector(self.config.faults)
        self.limiter = RateLimiter(self.config.rate_limits, self.clock)

    def changed(self) -> None:
        """Something durable may have changed: hand it to the store, if there is one."""
        if self.on_change is not None:
            self.on_change()

    # -- lookups -------------------------------------------------------------------------
    def customer(self, retail_customer_id: str) -> Customer | None:
        for customer in self.customers:
            if customer.retail_customer_id == retail_customer_id:
                return customer
        return None

    def registration(self, client_id: str) -> Registration | None:
        return self.config.registration(client_id)

    def authorization_by_subscription(self, subscription_id: str) -> AuthorizationRecord | None:
        for record in self.authorizations.values():
            if record.subscription_id == subscription_id:
                return record
        return None

    def active_authorizations(self, client_id: str) -> list[AuthorizationRecord]:
        """The third party's active subscriptions (what a Bulk request covers)."""
        now = self.clock()
        return [
            record
            for record in self.authorizations.values()
            if record.client_id == client_id and record.active and record.expires_at > now
        ]

    def bulk_range(self, start: int, end: int) -> tuple[int, int] | None:
        """A Bulk request's range: whole Pacific days inside the data that exists."""
        if end <= start:
            return None
        first, last = whole_days(start, end)
        first, last = max(first, self.data_start), min(last, self.data_end)
        return (first, last) if last > first else None

    def notification_delay(self) -> float:
        """Seconds before a batch's notification leaves: uniform in the configured range,
        reproducible from the seed and the batch's number."""
        low, high = self.config.notification_delay
        if high <= low:
            return low
        draw = random.Random(f"{self.config.seed}:notification-delay:{self._next_number()}")  # noqa: S311
        return low + (high - low) * draw.random()

    @property
    def data_end(self) -> int:
        """Readings exist up to here: the configured end, or the start of today (Pacific), so a
        sandbox left running gains a day of data at each Pacific midnight."""
        return self.config.data_end or default_data_end(self.clock())

    @property
    def data_start(self) -> int:
        """Pacific midnight ``data_days`` local days before ``data_end``."""
        return pacific_midnight_days_before(self.data_end, self.config.data_days)

    def history_start(self, record: AuthorizationRecord) -> int:
        """The first whole Pacific day the authorization may read (its granted history)."""
        return ceil_pacific_midnight(self.data_end - record.history_seconds)

    def served_range(
        self, record: AuthorizationRecord, start: int, end: int
    ) -> tuple[int, int] | None:
        """What the custodian serves for a request of [start, end): whole Pacific days (PG&E
        serves whole days even when the range cuts one), inside the granted history and the
        data that exists. None when nothing is left."""
        if end <= start:
            return None
        first, last = whole_days(start, end)
        first = max(first, self.data_start, self.history_start(record))
        last = min(last, self.data_end)
        return (first, last) if last > first else None

    def _next_number(self) -> int:
        self.sequence += 1
        return self.sequence

    # -- consent -------------------------------------------------------------------------
    def open_consent(self, request: ConsentRequest) -> str:
        request_id = new_secret()
        self.consent_requests[request_id] = request
        return request_id

    def authorize(
        self,
        request: ConsentRequest,
        customer: Customer,
        history_seconds: int,
        share: str = "all",
    ) -> tuple[AuthorizationRecord, str]:
        """The customer approved: a new authorization (cancelling this client's previous one
        for the same customer, as PG&E does on re-authorization) and a one-time code."""
        now = int(self.clock())
        for previous in self.authorizations.values():
            if (
                previous.active
                and previous.client_id == request.client_id
                and previous.customer.retail_customer_id == customer.retail_customer_id
            ):
                self.revoke(previous, by="reauthorization")
        blocks = self.function_blocks_for(customer, share)
        number = self._next_number()
        digest = hashlib.sha256(f"{self.config.seed}:{number}:{now}".encode()).hexdigest()
        record = AuthorizationRecord(
            authorization_id=str(int(digest[:8], 16) % 900000 + 100000),
            subscription_id=str(int(digest[8:16], 16) % 9000000 + 1000000),
            client_id=request.client_id,
            customer=customer,
            scope=self.scope_for(customer, history_seconds, blocks),
            function_blocks=blocks,
            history_seconds=history_seconds,
            created_at=now,
            expires_at=now + 365 * 86400,
        )
        self.authorizations[record.authorization_id] = record
        code = new_secret()
        self.codes[code] = CodeRecord(
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            authorization_id=record.authorization_id,
            expires_at=self.clock() + self.config.code_lifetime,
        )
        return record, code

    @staticmethod
    def function_blocks_for(customer: Customer, share: str) -> frozenset[int]:
        """The blocks granted when ``customer`` shares ``share`` (a ``SHARE_CHOICES`` key)."""
        kinds = {point.kind for point in customer.service_points}
        gas = {FB_GAS} if 1 in kinds else set()
        return USAGE_FBS | gas | SHARE_CHOICES[share][1]

    @staticmethod
    def scope_for(customer: Customer, history_seconds: int, blocks: frozenset[int]) -> str:
        """PG&E's scope grammar: ``FB=1_3_..;IntervalDuration=..;BlockDuration=Daily;..``."""
        intervals = sorted(
            {
                meter.spec.interval_length
                for point in customer.service_points
                for meter in point.meters
                if not meter.spec.daily
            }
        )
        parts = ["FB=" + "_".join(str(block) for block in sorted(blocks))]
        if intervals:
            parts.append("IntervalDuration=" + "_".join(str(i) for i in intervals))
        parts += [
            "BlockDuration=Daily",
            f"HistoryLength={history_seconds}",
            "SubscriptionFrequency=Daily",
            "AccountCollection=1",
        ]
        return ";".join(parts) + ";"

    def revoke(self, record: AuthorizationRecord, by: str) -> bool:
        """Revoke an authorization and every token issued under it; False if already revoked."""
        if not record.active:
            return False
        record.status = "revoked"
        record.revoked_at = int(self.clock())
        record.revoked_by = by
        self._drop_tokens(lambda t: t.authorization_id == record.authorization_id)
        for refresh, item in list(self.refresh_tokens.items()):
            if item.authorization_id == record.authorization_id:
                del self.refresh_tokens[refresh]
        return True

    def _drop_tokens(self, predicate: Callable[[TokenRecord], bool]) -> None:
        for token, item in list(self.tokens.items()):
            if predicate(item):
                del self.tokens[token]

    # -- tokens --------------------------------------------------------------------------
    def _access_lifetime(self, configured: int) -> float:
        override = self.faults.config.token_lifetime_override
        return float(configured if override is None else min(configured, override))

    def issue_customer_tokens(self, record: AuthorizationRecord, grant: str) -> tuple[str, str]:
        access, refresh = new_secret(), new_secret()
        now = self.clock()
        self.tokens[access] = TokenRecord(
            token_class=TokenClass.CUSTOMER,
            client_id=record.client_id,
            expires_at=now + self._access_lifetime(self.config.access_token_lifetime),
            authorization_id=record.authorization_id,
            grant=grant,
        )
        self.refresh_tokens[refresh] = RefreshRecord(
            client_id=record.client_id,
            authorization_id=record.authorization_id,
            expires_at=now + self.config.refresh_token_lifetime,
            grant=grant,
        )
        return access, refresh

    def issue_client_token(self, client_id: str) -> str:
        token = new_secret()
        self.tokens[token] = TokenRecord(
            token_class=TokenClass.CLIENT,
            client_id=client_id,
            expires_at=self.clock() + self._access_lifetime(self.config.client_token_lifetime),
        )
        return token

    def revoke_grant(self, grant: str) -> None:
        """A code was replayed: everything issued from it is withdrawn (RFC 6749 4.1.2)."""
        self._drop_tokens(lambda t: t.grant == grant)
        for refresh, item in list(self.refresh_tokens.items()):
            if item.grant == grant:
                del self.refresh_tokens[refresh]

    def token(self, value: str) -> TokenRecord | None:
        record = self.tokens.get(value)
        if record is None:
            return None
        if record.expires_at <= self.clock():
            del self.tokens[value]
            return None
        return record

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Early expiry injected by the admin: every (matching) access token dies now."""
        doomed = [
            value
            for value, item in self.tokens.items()
            if client_id is None or item.client_id == client_id
        ]
        for value in doomed:
            del self.tokens[value]
        return len(doomed)

    # -- accounting ----------------------------------------------------------------------
    def count_call(self, client_id: str, endpoint: str, authorization_id: str | None) -> None:
        self.calls_by_client[(client_id, endpoint)] += 1
        if authorization_id is not None:
            self.calls_by_authorization[(authorization_id, endpoint)] += 1

    def call_report(self) -> dict[str, Any]:
        by_client: dict[str, dict[str, int]] = {}
        for (client, endpoint), count in sorted(self.calls_by_client.items()):
            by_client.setdefault(client, {})[endpoint] = count
        by_authorization: dict[str, dict[str, int]] = {}
        for (authorization, endpoint), count in sorted(self.calls_by_authorization.items()):
            by_authorization.setdefault(authorization, {})[endpoint] = count
        return {
            "by_client": by_client,
            "by_authorization": by_authorization,
            "totals_by_client": {c: sum(e.values()) for c, e in by_client.items()},
            "totals_by_authorization": {a: sum(e.values()) for a, e in by_authorization.items()},
            "responses_by_status": {str(k): v for k, v in sorted(self.responses_by_status.items())},
            "over_limit_by_client": dict(sorted(self.over_limit_by_client.items())),
            "merged_slash_paths": self.merged_slash_paths,
        }
