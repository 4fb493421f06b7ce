"""The fetcher's own tables (its database is nobody else's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FetchJob(Base):
    """One grant's fetch. ``job_id`` is the grant's job id: the same grant event twice finds
    this row and fetches nothing again."""

    __tablename__ = "fetch_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)  # running, completed, failed
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The customer's tokens as rotated by a refresh: SealedSecret JSON, never clear text.
    sealed_access_token: Mapped[str | None] = mapped_column(Text)
    sealed_refresh_token: Mapped[str | None] = mapped_column(Text)
    custodian_calls: Mapped[int] = mapped_column(Integer, default=0)
    # The outcome event (fetch.completed or fetch.failed) as JSON, written before it is
    # published, so a crash in between republishes the very same event (same Nats-Msg-Id).
    outcome_subject: Mapped[str | None] = mapped_column(String(128))
    outcome_event: Mapped[str | None] = mapped_column(Text)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
