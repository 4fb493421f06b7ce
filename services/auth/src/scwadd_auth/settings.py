"""The auth service's configuration (environment variables, see docs/architecture.md)."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from scwadd_core.sealing import Keyring, SealingError
from scwadd_core.settings import CustodianSettings, DatabaseSettings, SealingSettings


class AuthSettings(CustodianSettings, DatabaseSettings, SealingSettings):
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
    OPERATOR_NAME: str = "SCWADD"

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

    @property
    def redirect_uri(self) -> str:
        return self.PUBLIC_BASE_URL + self.OAUTH_CALLBACK_PATH

    @property
    def secure_cookies(self) -> bool:
        return self.PUBLIC_BASE_URL.startswith("https://")
