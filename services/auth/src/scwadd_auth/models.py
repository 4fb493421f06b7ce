"""The auth service's tables: OAuth states, the grant ledger (with its outbox flag), job status.

Tables are prefixed ``auth_`` so that an operator who points two services at one database by
mistake gets no collision; the services never read each other's tables.
"""

from __future__ import annotations

from datetime import datetime

from scwadd_core.db import NAMING_CONVENTION
from sqlalchemy import DateTime, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OAuthState(Base):
    """One authorization attempt. Only hashes are stored: a leak reveals no usable state."""

    __tablename__ = "auth_oauth_states"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Set atomically by the first callback that claims the state; a second claim sees it set.
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    code_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    status_id: Mapped[str | None] = mapped_column(String(64), default=None)


class Grant(Base):
    """The ledger: one row per authorization code exchanged; doubles as the publish outbox."""

    __tablename__ = "auth_grants"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    subscription_id: Mapped[str] = mapped_column(String(200))
    resource_uri: Mapped[str] = mapped_column(Text)
    authorization_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    # The event exactly as it will be published (tokens inside are sealed), so a republish after a
    # crash sends byte-for-byte what the first attempt would have sent.
    event_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)


class JobStatus(Base):
    """What the status page shows, folded from the events other services publish."""

    __tablename__ = "auth_job_status"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status_id: Mapped[str] = mapped_column(String(64), unique=True)
    phase: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    # The sentence of a failure reported upstream; shown once the revocation is known.
    failure: Mapped[str | None] = mapped_column(Text, default=None)
    delivered: Mapped[bool] = mapped_column(default=False)
    export_rows: Mapped[int | None] = mapped_column(Integer, default=None)
    revocation: Mapped[str | None] = mapped_column(String(32), default=None)
    revocation_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # The code exchange behind this job: "pending" while it is retried, "failed" once it gave up
    # (the page then says so and that any authorization left at the custodian will be revoked),
    # None once confirmed (a ledger row exists).
    exchange: Mapped[str | None] = mapped_column(String(16), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # From ``export.completed``: the IntervalReadings' span actually exported, the history the
    # fetcher asked for, and the UsagePoints as JSON ``[{"id", "service", "received", "start",
    # "end"}]`` (ids and kinds only; no meter values, no names).
    covered_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    covered_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    requested_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    requested_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    usage_points: Mapped[str | None] = mapped_column(Text, default=None)


class Exchange(Base):
    """One code exchange, recorded before the custodian is first asked (the exchange outbox).

    The code is kept sealed (bound to the job id) so another replica, or this one after a crash,
    can go on retrying it until ``deadline``; it is dropped once the exchange is decided. A row
    still ``pending`` tells the reconciler that an authorization it does not know yet may be
    about to become a grant.
    """

    __tablename__ = "auth_exchanges"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status_id: Mapped[str] = mapped_column(String(64), unique=True)
    sealed_code: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[str] = mapped_column(String(16))  # pending, granted, failed
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Whoever works on it holds it until then (renewed before every try); a replica that died
    # leaves it to be taken over once this has passed.
    owner: Mapped[str | None] = mapped_column(String(64), default=None)
    claimed_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why it failed, in words safe for a log (status code and the custodian's error code).
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class Lease(Base):
    """A named lease (the reconciler's): one holder at a time, taken over once it expires.
    Plain rows and compare-and-set UPDATEs, so it works the same on SQLite and PostgreSQL."""

    __tablename__ = "auth_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustodianAuthorization(Base):
    """An active authorization the custodian listed that no ledger row owns, or one that the
    pipeline left active: what the reconciler did about it (revoked, or flagged and why)."""

    __tablename__ = "auth_custodian_authorizations"

    authorization_uri: Mapped[str] = mapped_column(String(512), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # seen (waiting out its grace), revoking (claimed: its DELETE under way; a late exchange of
    # it gives up), revoked, already_revoked, flagged
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
