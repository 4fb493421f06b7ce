"""Fault injection, reproducible from a seed.

Every decision is drawn from a random generator seeded with ``(seed, endpoint, n)`` where ``n``
counts the calls to that endpoint since the faults were last set. The same seed and the same
sequence of calls therefore fail the same calls, whatever the wall clock or the other endpoints do.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

Rate = Field(default=0.0, ge=0.0, le=1.0)

# Endpoint names the admin API and flags use; "*" applies to every endpoint without its own rule.
ENDPOINTS = (
    "token",
    "ReadServiceStatus",
    "UsagePoint",
    "MeterReading",
    "IntervalBlock",
    "UsageSummary",
    "BatchSubscriptionUsagePoint",
    "BatchSubscription",
    "BatchRetailCustomer",
    "BatchBulk",
    "LocalTimeParameters",
    "DownloadSampleData",
    "ProgramIdMappings",
    "ReadingType",
    "Authorization",
)


class EndpointFaults(BaseModel):
    """What can go wrong with one endpoint. Rates are probabilities per call, summing to <= 1."""

    model_config = ConfigDict(extra="forbid")

    error_500_rate: float = Rate
    error_503_rate: float = Rate
    hang_rate: float = Rate
    truncate_rate: float = Rate
    malformed_rate: float = Rate
    empty_rate: float = Rate
    latency_ms: int = Field(default=0, ge=0, le=600_000)


class NotificationFaults(BaseModel):
    """What can go wrong with the BatchList POST to the notification URI."""

    model_config = ConfigDict(extra="forbid")

    # Added to the configured notification delay (SandboxConfig.notification_delay).
    delay_seconds: float = Field(default=0.0, ge=0.0, le=3600.0)
    lose_rate: float = Rate
    duplicate_rate: float = Rate
    # The shape PG&E once POSTed: a literal backslash and "n" between the XML declaration and
    # the BatchList element, so the body is not well-formed XML.
    malformed_rate: float = Rate


class BillingFaults(BaseModel):
    """A billing discrepancy: the UsageSummary's billed consumption
    (``overallConsumptionLastPeriod``) is the interval energy times ``1 + discrepancy_percent /
    100``, on the listed UsagePoints (every one when the list is empty), so a client's
    reconciliation of bills against intervals has something to find. Amounts are not changed."""

    model_config = ConfigDict(extra="forbid")

    discrepancy_percent: float = Field(default=0.0, ge=-90.0, le=900.0)
    usage_points: list[str] = Field(default_factory=list, max_length=1000)

    def skew_for(self, usage_point_id: str) -> float:
        """The percent to skew ``usage_point_id``'s billed consumption by (0: none)."""
        if self.usage_points and usage_point_id not in self.usage_points:
            return 0.0
        return self.discrepancy_percent


class FaultConfig(BaseModel):
    """The whole fault setting; the admin API replaces it as one document."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    endpoints: dict[str, EndpointFaults] = Field(default_factory=dict)
    notifications: NotificationFaults = Field(default_factory=NotificationFaults)
    # How long a "hanging" response waits before it finally answers 504.
    hang_seconds: float = Field(default=300.0, ge=0.0, le=86400.0)
    # Early token expiry: tokens die after this many seconds while expires_in still says 3600.
    token_lifetime_override: int | None = Field(default=None, ge=0)
    billing: BillingFaults = Field(default_factory=BillingFaults)

    def rule(self, endpoint: str) -> EndpointFaults | None:
        return self.endpoints.get(endpoint) or self.endpoints.get("*")


class FaultKind(enum.StrEnum):
    NONE = "none"
    ERROR_500 = "error_500"
    ERROR_503 = "error_503"
    HANG = "hang"
    TRUNCATE = "truncate"
    MALFORMED = "malformed"
    EMPTY = "empty"


@dataclass(frozen=True)
class FaultDecision:
    kind: FaultKind
    latency_seconds: float


@dataclass(frozen=True)
class NotificationDecision:
    delay_seconds: float
    lost: bool
    copies: int
    malformed: bool = False


class FaultInjector:
    """Draws the fault of each call. Single-threaded: it lives in the sandbox's event loop."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._calls: dict[str, int] = {}

    def replace(self, config: FaultConfig) -> None:
        self.config = config
        self._calls.clear()

    def _rng(self, stream: str) -> random.Random:
        n = self._calls.get(stream, 0)
        self._calls[stream] = n + 1
        return random.Random(f"{self.config.seed}:{stream}:{n}")  # noqa: S311 - not security

    def decide(self, endpoint: str) -> FaultDecision:
        rule = self.config.rule(endpoint)
        if rule is None:
            return FaultDecision(FaultKind.NONE, 0.0)
        draw = self._rng(endpoint).random()
        threshold = 0.0
        for kind, rate in (
            (FaultKind.ERROR_500, rule.error_500_rate),
            (FaultKind.ERROR_503, rule.error_503_rate),
            (FaultKind.HANG, rule.hang_rate),
            (FaultKind.TRUNCATE, rule.truncate_rate),
            (FaultKind.MALFORMED, rule.malformed_rate),
            (FaultKind.EMPTY, rule.empty_rate),
        ):
            threshold += rate
            if draw < threshold:
                return FaultDecision(kind, rule.latency_ms / 1000)
        return FaultDecision(FaultKind.NONE, rule.latency_ms / 1000)

    def decide_notification(self) -> NotificationDecision:
        rule = self.config.notifications
        rng = self._rng("notification")
        lost = rng.random() < rule.lose_rate
        duplicate = rng.random() < rule.duplicate_rate
        malformed = rng.random() < rule.malformed_rate
        return NotificationDecision(rule.delay_seconds, lost, 2 if duplicate else 1, malformed)


def malformed_batch_list(body: bytes) -> bytes:
    """PG&E's once-seen notification: a literal ``\\n`` (backslash, n) after the declaration."""
    declaration_end = body.find(b"?>")
    if not body.startswith(b"<?xml") or declaration_end < 0:
        return b"\\n" + body
    cut = declaration_end + 2
    return body[:cut] + b"\\n" + body[cut:].lstrip(b"\r\n")


def truncate(body: bytes) -> bytes:
    """The first half of a document: what a connection cut mid-transfer leaves."""
    return body[: max(1, len(body) // 2)]


def malform(body: bytes) -> bytes:
    """Well-sized but not well-formed: the first closing tag loses its '>' and gains junk."""
    marker = body.find(b"</")
    if marker < 0:
        return b"<" + body
    end = body.find(b">", marker)
    return body[:end] + b" &broken;<<" + body[end + 1 :]
