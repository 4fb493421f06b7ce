"""The exporter's tables: grants it must revoke, and the exports it wrote.

The grant row is a state machine; every transition is a conditional UPDATE (compare-and-set on
``state``), so two replicas or a redelivered event can never both write a CSV or both send the
DELETE. ``exporter_exports.job_id`` is unique for the same reason.
"""

from __future__ import annotations

import enum
from datetime import datetime

from scwadd_core.db import NAMING_CONVENTION
from sqlalchemy import DateTime, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class GrantState(enum.StrEnum):
    # No "exporting" state: building the export is idempotent (names derived from the job, a
    # redelivery rewrites the same bytes), so it needs no claim; a claimed state would need a
    # lease and a takeover, and the watchdog's deadline revocation would have to cover it.
    WAITING = "waiting"  # grant known, fetch not finished (or its export being built)
    EXPORTED = "exported"  # CSV and manifest stored, export.completed published
    FETCH_FAILED = "fetch_failed"  # upstream gave up; nothing to export, revoke anyway
    REVOKING = "revoking"  # a replica claimed the revocation
    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"
    FLAGGED = "flagged"  # could not revoke: the operator must act


# States from which a revocation may be claimed. REVOKING is absent on purpose: only the
# watchdog takes over a REVOKING row, and only once its claim has gone stale.
REVOCABLE = (GrantState.WAITING, GrantState.EXPORTED, GrantState.FETCH_FAILED)
FINAL = (GrantState.REVOKED, GrantState.ALREADY_REVOKED)


class ExporterGrant(Base):
    __tablename__ = "exporter_grants"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(200))
    authorization_uri: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The watchdog revokes a grant still WAITING at this time.
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(20), index=True)
    state_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why the grant was revoked or flagged: a short code (a metric label) and a human sentence.
    reason: Mapped[str | None] = mapped_column(String(40), default=None)
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    revoke_attempts: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ExportRecord(Base):
    __tablename__ = "exporter_exports"

    job_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    csv_name: Mapped[str] = mapped_column(String(255), unique=True)
    manifest_name: Mapped[str] = mapped_column(String(255), unique=True)
    rows: Mapped[int] = mapped_column(Integer)
    readings: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
