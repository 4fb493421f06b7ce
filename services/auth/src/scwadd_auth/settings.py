"""The auth service's configuration (environment variables, see docs/architecture.md)."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from scwadd_core.sealing import Keyring, SealingError
from scwadd_core.settings import (
    CustodianSettings,
    DatabaseSettings,
    RateLimitSettings,
    SealingSettings,
)


class AuthSettings(CustodianSettings, DatabaseSettings, SealingSettings, RateLimitSettings):
    HTTP_PORT: int = 8080
    DATABASE_URL: str = "sqlite:///./auth.db"
    PGE_AUTHORIZE_URL: str
    PUBLIC_BASE_URL: str
    OAUTH_CALLBACK_PATH: str = "/OAuthCallback"
    # How long a customer may spend on the custodian's consent pages before the state expires.
    OAUTH_STATE_TTL_SECONDS: int = 600
    # Only for the landing page's wording; the fetcher decides what is fetched.
    HISTORY_DAYS: int = 365
    GRANT_DEADLINE_MINUTES: int = 120
    # The landing page's "who receives your data, why, for how long, whom to ask" (the chart's
    # operator.* values). Shown to every customer: plain text, bounded.
    OPERATOR_NAME: str = Field(default="SCWADD", min_length=1, max_length=120)
    OPERATOR_PURPOSE: str = Field(
        default="to analyse your energy use and prepare the report you asked us for",
        min_length=1,
        max_length=400,
    )
    # A line such as "privacy@example.com" or "Data Protection Officer, 1 Main St"; with
    # PRIVACY_POLICY_URL a link to the operator's privacy notice.
    PRIVACY_CONTACT: str = Field(default="", max_length=200)
    PRIVACY_POLICY_URL: str = Field(default="", max_length=500)
    # The files service deletes an export this many days after it was written (the same
    # variable files reads; the chart passes files.retentionDays to both).
    EXPORT_RETENTION_DAYS: float = Field(default=30.0, gt=0)
    # The ESPI resource root; the reconciler lists ``{PGE_API_BASE}/Authorization`` there.
    PGE_API_BASE: str
    # The code exchange is retried (5xx, 429, timeouts, transport errors) with exponential
    # backoff and jitter until this many seconds after the callback: PG&E's codes live 600 s
    # from issue, and the callback arrives a moment after the issue.
    EXCHANGE_DEADLINE_SECONDS: float = Field(default=540.0, gt=0, le=600)
    EXCHANGE_RETRY_INITIAL_SECONDS: float = Field(default=0.5, gt=0)
    EXCHANGE_RETRY_MAX_SECONDS: float = Field(default=15.0, gt=0)
    # How long the customer's callback request waits for the exchange before the status page
    # (which goes on saying "not confirmed yet") is shown instead; the retries go on behind it.
    CALLBACK_WAIT_SECONDS: float = Field(default=20.0, ge=0)
    # The reconciler: how often one replica lists our authorizations at the custodian, and how
    # long an authorization nobody owns is left alone first (its callback may be on its way).
    RECONCILE_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    RECONCILE_GRACE_SECONDS: float = Field(default=60.0, ge=0)
    # A grant the pipeline still has not revoked this long after its deadline is flagged.
    RECONCILE_OVERDUE_MINUTES: float = Field(default=30.0, ge=0)
    # An orphan whose revocation keeps failing (custodian unreachable) is flagged after this
    # long; it is still tried at every pass.
    RECONCILE_FLAG_AFTER_SECONDS: float = Field(default=240.0, ge=0)
    # POST /authorize per client address (each one stores a state): a burst, then this rate.
    AUTHORIZE_BURST: int = Field(default=10, ge=1)
    AUTHORIZE_PER_MINUTE: float = Field(default=10.0, gt=0)

    @field_validator("TOKEN_SEALING_KEYS")
    @classmethod
    def _usable_keyring(cls, value: SecretStr) -> SecretStr:
        # Fail at start, naming the variable, rather than at the first customer's callback.
        try:
            Keyring.parse(value.get_secret_value())
        except SealingError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("OAUTH_CALLBACK_PATH")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("PRIVACY_POLICY_URL")
    @classmethod
    def _policy_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("PGE_API_BASE")
    @classmethod
    def _api_base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def public_origin(self) -> str:
        """scheme://host[:port] of PUBLIC_BASE_URL, as browsers send it in ``Origin``."""
        parts = urlsplit(self.PUBLIC_BASE_URL)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def orphan_revoke_minutes(self) -> int:
        """At most how long an authorization nobody owns stays active (the customer's page)."""
        worst = self.RECONCILE_GRACE_SECONDS + 2 * self.RECONCILE_INTERVAL_SECONDS + 60
        return max(1, math.ceil(worst / 60))

    @property
    def redirect_uri(self) -> str:
        return self.PUBLIC_BASE_URL + self.OAUTH_CALLBACK_PATH

    @property
    def secure_cookies(self) -> bool:
        return self.PUBLIC_BASE_URL.startswith("https://")
