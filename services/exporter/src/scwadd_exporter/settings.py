"""The exporter's configuration (environment variables, see docs/architecture.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from scwadd_core.settings import CustodianSettings, DatabaseSettings, RateLimitSettings


class ExporterSettings(CustodianSettings, RateLimitSettings, DatabaseSettings):
    HTTP_PORT: int = 8082
    DATABASE_URL: str = "sqlite:///./exporter.db"
    CSV_LAYOUT: Literal["default", "pge", "scwadd"] = "default"
    # A grant whose fetch has not finished this long after consent is revoked by the watchdog.
    GRANT_DEADLINE_MINUTES: float = Field(default=120.0, gt=0)
    # Grants not revoked this long after consent are counted in scwadd_grants_unrevoked.
    UNREVOKED_ALERT_MINUTES: float = Field(default=60.0, gt=0)
    REVOKE_MAX_ATTEMPTS: int = Field(default=6, ge=1)
    REVOKE_BACKOFF_SECONDS: float = Field(default=1.0, ge=0)
    REVOKE_BACKOFF_MAX_SECONDS: float = Field(default=60.0, ge=0)
    # A grant flagged because the custodian was unreachable is tried again this often.
    REVOKE_RETRY_FLAGGED_MINUTES: float = Field(default=15.0, gt=0)
    # A revocation claim not renewed for this long (its replica died) is taken over; a live
    # replica renews it every third of it while the DELETE and its retries run.
    REVOKING_LEASE_SECONDS: float = Field(default=20.0, gt=0)
    WATCHDOG_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    # Events one process handles at a time: conversions overlap with other jobs' revocations.
    EXPORTER_CONCURRENCY: int = Field(default=4, ge=1, le=64)
