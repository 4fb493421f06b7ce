"""The webhooks service's one table: a delivery per (message, endpoint), its own outbox.

A row is written when the event is read and before it is acked, so a crash loses nothing; the
delivery loop then works the rows until each is delivered or its retry window ends.
"""

from __future__ import annotations

import enum
from datetime import datetime

from scwadd_core.db import NAMING_CONVENTION
from sqlalchemy import DateTime, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # not yet accepted by the endpoint; ``next_attempt_at`` says when
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # the retry window ended, or the endpoint is refused (SSRF guard)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    # ``webhook-id``: the same on every retry and every endpoint of one event.
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(2048), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str] = mapped_column(String(36), index=True)
    # The exact JSON body sent (signed over these bytes); ids and counts only, no customer data.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
