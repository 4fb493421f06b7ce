"""The console's read model: the files service's own tables, folded from the bus's events.

Nothing here is read from another service's database. ``files_console_jobs`` holds one row per
job (one customer's grant, end to end) with what the console lists; ``files_console_actions``
is the audit trail of what operators asked for from the console ("revoke again").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ConsoleJob(Base):
    """One job as the operator sees it. Energy figures are strings of exact decimals (the
    CSV's own numbers, summed with :class:`decimal.Decimal`); a float copy sorts."""

    __tablename__ = "files_console_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(200), default="")
    # When the customer consented (grant.received); a job seen first through a later event
    # gets that event's time until its grant.received arrives.
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where the job stands: waiting, fetching, exporting, exported, failed.
    state: Mapped[str] = mapped_column(String(20), default="waiting")
    # The grant: active (not yet revoked), revoked, already_revoked, flagged (revocation failed).
    grant_state: Mapped[str] = mapped_column(String(20), default="active")
    grant_reason: Mapped[str | None] = mapped_column(Text, default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    scope: Mapped[str | None] = mapped_column(Text, default=None)
    promised_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    promised_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    covered_start: Mapped[str | None] = mapped_column(String(40), default=None)
    covered_end: Mapped[str | None] = mapped_column(String(40), default=None)
    raw_objects: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of names
    usage_points: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {id, service}
    services: Mapped[str] = mapped_column(String(200), default="")
    csv_object: Mapped[str | None] = mapped_column(String(255), default=None)
    manifest_object: Mapped[str | None] = mapped_column(String(255), default=None)
    csv_layout: Mapped[str | None] = mapped_column(String(20), default=None)
    rows: Mapped[int | None] = mapped_column(Integer, default=None)
    delivered_kwh: Mapped[str | None] = mapped_column(String(40), default=None)
    received_kwh: Mapped[str | None] = mapped_column(String(40), default=None)
    therms: Mapped[str | None] = mapped_column(String(40), default=None)
    delivered_sort: Mapped[float] = mapped_column(Float, default=-1.0)
    peak_kwh: Mapped[str | None] = mapped_column(String(40), default=None)
    peak_start: Mapped[str | None] = mapped_column(String(40), default=None)
    peak_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    gap_count: Mapped[int | None] = mapped_column(Integer, default=None)
    gap_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    # Rows whose reading had no value: written blank, so day sums around them are partial.
    rows_without_value: Mapped[int | None] = mapped_column(Integer, default=None)
    estimated_share: Mapped[float | None] = mapped_column(Float, default=None)
    # The customer's details and bills, from the export's manifest when the customer shared
    # them (customer data: shown to the operator, never logged).
    customer_name: Mapped[str | None] = mapped_column(Text, default=None)
    service_addresses: Mapped[str] = mapped_column(Text, default="[]")  # JSON, the manifest's
    bills_object: Mapped[str | None] = mapped_column(String(255), default=None)
    # JSON: {"bills": manifest["bills"], "reconciliation": manifest["reconciliation"]}
    bills: Mapped[str | None] = mapped_column(Text, default=None)
    # Lower-cased subscription, job id, usage points and reasons: what the search box matches.
    search_text: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        # Keyset paging: every sort order has an index ending in the job id (the tie-breaker),
        # alone and behind the state filter.
        Index("ix_files_console_jobs_received", "received_at", "job_id"),
        Index("ix_files_console_jobs_subscription", "subscription_id", "job_id"),
        Index("ix_files_console_jobs_delivered", "delivered_sort", "job_id"),
        Index("ix_files_console_jobs_state_received", "state", "received_at", "job_id"),
        Index("ix_files_console_jobs_grant_received", "grant_state", "received_at", "job_id"),
    )


class ConsoleAction(Base):
    """An operator's action from the console, kept for the audit (who, what, when, outcome)."""

    __tablename__ = "files_console_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    operator: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    client: Mapped[str] = mapped_column(String(100))
