"""The event contract between the services: one versioned pydantic model per subject.

Every message on ``scwadd.events.>`` is one of the models below, serialised as JSON by
:func:`encode` and read back by :func:`decode`. ``event_id`` travels as the ``Nats-Msg-Id``
header so JetStream stores a retried publish once; a publisher that retries must therefore reuse
the same event object (or derive the id with :func:`stable_event_id`).

Compatibility rule: within one ``version`` fields are only ever added with a default, and readers
ignore fields they do not know, so services can be upgraded one at a time. A breaking change bumps
``version``; :func:`decode` refuses a version newer than the model it knows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

STREAM_EVENTS = "SCWADD_EVENTS"
STREAM_DLQ = "SCWADD_DLQ"
EVENTS_PREFIX = "scwadd.events."
DLQ_PREFIX = "scwadd.dlq."

GRANT_RECEIVED = "scwadd.events.grant.received"
BATCH_READY = "scwadd.events.batch.ready"
FETCH_COMPLETED = "scwadd.events.fetch.completed"
FETCH_FAILED = "scwadd.events.fetch.failed"
EXPORT_COMPLETED = "scwadd.events.export.completed"
GRANT_REVOKED = "scwadd.events.grant.revoked"
JOB_PROGRESS = "scwadd.events.job.progress"
GRANT_REVOKE_REQUESTED = "scwadd.events.grant.revoke_requested"

RAW_BUCKET = "scwadd-raw"
EXPORTS_BUCKET = "scwadd-exports"
RATELIMIT_BUCKET = "scwadd-ratelimit"

# A namespace for uuid5 so ids derived from the same facts are the same on every replica.
_EVENT_ID_NAMESPACE = uuid.UUID("5c3a0d1e-7b1f-4f7e-9a51-2f0f3f6c9d11")


def new_event_id() -> str:
    return uuid.uuid4().hex


def stable_event_id(*parts: str) -> str:
    """An id derived from what the event is about, e.g. ``stable_event_id(job_id, "revoked")``.

    Two replicas (or one replica after a crash) that publish the same fact produce the same
    ``Nats-Msg-Id`` and JetStream keeps one copy, within the stream's duplicate window.
    """
    return uuid.uuid5(_EVENT_ID_NAMESPACE, "\x1f".join(parts)).hex


def utc_now() -> datetime:
    return datetime.now(UTC)


def dlq_subject(subject: str) -> str:
    """``scwadd.events.grant.received`` → ``scwadd.dlq.grant.received``."""
    suffix = subject.removeprefix(EVENTS_PREFIX)
    return DLQ_PREFIX + suffix


class SealedSecret(BaseModel):
    """A token sealed with AEAD (see :mod:`scwadd_core.sealing`); never the token itself.

    ``kid`` names the key that sealed it so keys can rotate; the associated data binds the
    ciphertext to its job id, so a sealed token copied into another job's event does not open.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    alg: Literal["A256GCM"] = "A256GCM"
    kid: str
    nonce: str  # base64url, 12 bytes
    ciphertext: str  # base64url, ciphertext followed by the 16-byte tag

    def __repr__(self) -> str:  # keep ciphertext out of reprs that end up in logs
        return f"SealedSecret(kid={self.kid!r})"

    __str__ = __repr__


class Event(BaseModel):
    """Fields every event carries. Subclasses set ``subject`` and ``version``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    subject: ClassVar[str]
    latest_version: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_event_id)
    occurred_at: datetime = Field(default_factory=utc_now)
    version: int = 1


class JobEvent(Event):
    """An event about one customer's job (one grant, end to end)."""

    job_id: str


class GrantReceived(JobEvent):
    """auth → fetcher, exporter: the customer consented and the code was exchanged."""

    subject: ClassVar[str] = GRANT_RECEIVED

    subscription_id: str
    resource_uri: str
    authorization_uri: str
    scope: str
    access_token: SealedSecret
    refresh_token: SealedSecret | None = None
    access_token_expires_at: datetime | None = None


class BatchReady(Event):
    """fetcher (``/espi/notify``) → fetcher: the custodian finished an asynchronous (202) request.

    The notification does not name our job, so the waiting replica correlates by resource URL.
    """

    subject: ClassVar[str] = BATCH_READY

    resource_urls: list[str]
    job_id: str | None = None


class FetchCompleted(JobEvent):
    """fetcher → exporter: every raw ESPI document is in bucket ``scwadd-raw``.

    ``summary_objects`` (UsageSummary answers) and ``customer_objects`` (RetailCustomer answers)
    hold what the grant's scope allowed beyond the intervals and the interval documents did not
    already carry; ``extras_missing`` one sentence per such resource that was granted but not
    received (refused, or the custodian kept failing), so the export says what it lacks. Added
    within version 1 with empty defaults (an older fetcher's event reads as "none fetched",
    "nothing missing")."""

    subject: ClassVar[str] = FETCH_COMPLETED

    subscription_id: str
    raw_objects: list[str]
    summary_objects: list[str] = Field(default_factory=list)
    customer_objects: list[str] = Field(default_factory=list)
    extras_missing: list[str] = Field(default_factory=list)
    usage_points: list[str]
    period_start: datetime
    period_end: datetime
    custodian_calls: int


class FetchFailed(JobEvent):
    """fetcher → exporter: the data will not come; ``reason`` is a sentence for a person."""

    subject: ClassVar[str] = FETCH_FAILED

    reason: str


class ExportedUsagePoint(BaseModel):
    """One UsagePoint in an export, as the customer's status page names it (no meter values).

    ``service`` is the ServiceCategory kind's name (``electricity``, ``gas``, ...); ``received``
    says a ReadingType with flowDirection 19 (energy sent to the grid, e.g. solar) was read.
    ``start``/``end`` bound its IntervalReadings (UTC; None when it had none).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    service: str
    received: bool = False
    start: datetime | None = None
    end: datetime | None = None


class ExportCompleted(JobEvent):
    """exporter → auth: the CSV and its manifest are in bucket ``scwadd-exports``.

    The coverage fields (added in version 1 with defaults; an older exporter leaves them empty)
    repeat the manifest's facts for the customer's status page: ``period_start``/``period_end``
    bound the IntervalReadings actually exported, ``requested_start``/``requested_end`` are the
    history the fetcher asked the custodian for (what the customer was promised).
    """

    subject: ClassVar[str] = EXPORT_COMPLETED

    csv_object: str
    manifest_object: str
    rows: int
    period_start: datetime | None = None
    period_end: datetime | None = None
    requested_start: datetime | None = None
    requested_end: datetime | None = None
    usage_points: list[ExportedUsagePoint] = Field(default_factory=list)


RevocationOutcome = Literal["revoked", "already_revoked", "failed"]


class GrantRevoked(JobEvent):
    """exporter → auth: the end of the grant. ``reason`` explains a ``failed`` outcome."""

    subject: ClassVar[str] = GRANT_REVOKED

    outcome: RevocationOutcome
    reason: str | None = None


JobPhase = Literal["waiting", "fetching", "exporting", "done", "failed"]


class JobProgress(JobEvent):
    """any → auth: where the job is, as the customer's status page shows it."""

    subject: ClassVar[str] = JOB_PROGRESS

    phase: JobPhase
    message: str


class GrantRevokeRequested(JobEvent):
    """files (the operator's console) → exporter: try the revocation of a flagged grant again now.

    A command, not a fact: the exporter alone talks to the custodian's revocation endpoint. It
    acts only on a grant still ``flagged`` (compare-and-set), so a repeated or late request sends
    no second DELETE; the outcome comes back as ``grant.revoked`` as usual. ``requested_by`` is
    the operator's user name, for the exporter's log.
    """

    subject: ClassVar[str] = GRANT_REVOKE_REQUESTED

    requested_by: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.subject: cls
    for cls in (
        GrantReceived,
        BatchReady,
        FetchCompleted,
        FetchFailed,
        ExportCompleted,
        GrantRevoked,
        JobProgress,
        GrantRevokeRequested,
    )
}


class EventDecodeError(ValueError):
    """The message is not a valid event for its subject; retrying will not help."""


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode(subject: str, payload: bytes) -> Event:
    """Read ``payload`` as the model registered for ``subject``.

    Raises :class:`EventDecodeError` for an unknown subject, a body that does not validate, or a
    version newer than this code knows (a reader must not guess at a breaking change).
    """
    cls = EVENT_TYPES.get(subject)
    if cls is None:
        raise EventDecodeError(f"no event type is registered for subject {subject!r}")
    try:
        event = cls.model_validate_json(payload)
    except ValidationError as error:
        # Field names and reasons only: the input values may be tokens or customer data.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        raise EventDecodeError(f"invalid {cls.__name__} on {subject}: {problems}") from None
    if event.version > cls.latest_version:
        raise EventDecodeError(
            f"{cls.__name__} version {event.version} is newer than the supported "
            f"{cls.latest_version}; upgrade this service"
        )
    return event
