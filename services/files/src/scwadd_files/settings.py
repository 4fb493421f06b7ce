"""The files service's configuration (environment only)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from scwadd_core.settings import DatabaseSettings


class Settings(DatabaseSettings):
    HTTP_PORT: int = 8083
    # The console's read model (tables files_console_*), rebuilt from the bus if emptied.
    DATABASE_URL: str = "sqlite:///./files.db"
    # The console lists a grant under "needs action" when it is still not revoked this long
    # after consent (set it like the exporter's UNREVOKED_ALERT_MINUTES); flagged ones at once.
    UNREVOKED_ALERT_MINUTES: float = Field(default=60.0, gt=0)
    # The operator's credentials: a file of htpasswd lines, or the same lines in a variable
    # (a Kubernetes secret mapped into the environment). Only bcrypt entries are accepted.
    HTPASSWD_FILE: Path | None = None
    HTPASSWD: SecretStr | None = None
    EXPORT_RETENTION_DAYS: float = Field(default=30.0, gt=0)
    RETENTION_INTERVAL_SECONDS: float = Field(default=3600.0, gt=0)
    # Per client address: this many failed logins are free, then each further attempt must wait
    # an exponentially growing delay (capped), answered 429 with Retry-After meanwhile.
    AUTH_FREE_FAILURES: int = Field(default=5, ge=0)
    AUTH_BACKOFF_BASE_SECONDS: float = Field(default=1.0, gt=0)
    AUTH_BACKOFF_MAX_SECONDS: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _one_credential_source(self) -> Settings:
        if self.HTPASSWD_FILE is None and self.HTPASSWD is None:
            raise ValueError(
                "missing required setting HTPASSWD_FILE (or HTPASSWD with the htpasswd lines): "
                "the operator's bcrypt credentials"
            )
        return self
