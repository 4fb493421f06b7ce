"""HTTP Basic credentials from htpasswd lines, bcrypt only, checked in constant time.

An entry that is not bcrypt (``{SHA}`` is unsalted SHA-1; ``$apr1$`` is MD5; crypt is DES) is
refused when the service starts, with the command that makes a bcrypt one. An unknown user costs
one bcrypt check against a dummy hash of the same cost, so response time does not tell an
attacker which user names exist.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import bcrypt

BCRYPT_PATTERN = re.compile(r"^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$")
HOW_TO_MAKE_ONE = (
    "make a bcrypt entry with `htpasswd -nbB USER PASSWORD` or `scwadd files hash-password USER`"
)


class HtpasswdError(Exception):
    """The htpasswd content cannot be used; the message says which line and how to fix it."""


def _describe_scheme(hashed: str) -> str:
    if hashed.startswith("{SHA}"):
        return "{SHA} (unsalted SHA-1)"
    if hashed.startswith("$apr1$"):
        return "$apr1$ (Apache MD5)"
    if hashed.startswith("$1$"):
        return "$1$ (MD5 crypt)"
    if hashed.startswith(("$5$", "$6$")):
        return "SHA-crypt"
    if hashed.startswith("$2"):
        return "a malformed bcrypt hash"
    return "plain text or DES crypt"


def parse_htpasswd(text: str, *, source: str = "htpasswd") -> dict[str, bytes]:
    """``user:hash`` lines → {user: bcrypt hash}. Blank lines and ``#`` comments are skipped."""
    users: dict[str, bytes] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            raise HtpasswdError(f"{source} line {number}: expected USER:HASH")
        if not BCRYPT_PATTERN.match(hashed):
            raise HtpasswdError(
                f"{source} line {number}: the entry for user {user!r} is "
                f"{_describe_scheme(hashed)}, which is refused: {HOW_TO_MAKE_ONE}"
            )
        if user in users:
            raise HtpasswdError(f"{source} line {number}: user {user!r} appears twice")
        users[user] = hashed.encode()
    if not users:
        raise HtpasswdError(f"{source} holds no user: {HOW_TO_MAKE_ONE}")
    return users


def load_htpasswd(path: Path | None, content: str | None) -> dict[str, bytes]:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise HtpasswdError(
                f"HTPASSWD_FILE {path}: cannot read it ({error.strerror})"
            ) from None
        return parse_htpasswd(text, source=f"HTPASSWD_FILE {path}")
    return parse_htpasswd(content or "", source="HTPASSWD")


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _cost(hashed: bytes) -> int:
    match = BCRYPT_PATTERN.match(hashed.decode())
    if match is None:
        raise HtpasswdError("not a bcrypt hash")
    return int(match.group(1))


@dataclass
class _Remembered:
    user: str
    expires: float


class Verifier:
    """Checks a user name and password against the htpasswd entries.

    bcrypt is slow by design (~0.1-1 s); a browser sends the credentials with every request. A
    successful check is therefore remembered for ``remember_seconds`` under an HMAC of the
    credentials with a per-process random key (never the password itself). Failures are never
    remembered, and every unremembered check costs one bcrypt, for known and unknown users alike.
    """

    def __init__(
        self,
        users: dict[str, bytes],
        *,
        remember_seconds: float = 300.0,
        remember_max: int = 1024,
    ) -> None:
        self._users = dict(users)
        rounds = max(_cost(hashed) for hashed in users.values())
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[bytes, _Remembered] = OrderedDict()
        self._remember_seconds = remember_seconds
        self._remember_max = remember_max

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    def secret_for(self, user: str) -> bytes:
        """The user's bcrypt hash, as a key for tokens bound to them (the console's CSRF token):
        secret, the same on every replica reading the same htpasswd, and new with a new password.
        Raises KeyError for an unknown user (only signed-in users get here)."""
        return self._users[user]

    def _fingerprint(self, user: str, password: str) -> bytes:
        return hmac.new(
            self._key, user.encode() + b"\x00" + password.encode(), hashlib.sha256
        ).digest()

    def verify(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s. Runs bcrypt: call it from a worker thread."""
        fingerprint = self._fingerprint(user, password)
        now = time.monotonic()
        remembered = self._remembered.get(fingerprint)
        if remembered is not None and remembered.expires > now and remembered.user == user:
            return True
        hashed = self._users.get(user)
        # bcrypt only looks at the first 72 bytes; longer passwords are refused by the library.
        candidate = password.encode()[:72]
        ok = bcrypt.checkpw(candidate, hashed if hashed is not None else self._dummy)
        if not (ok and hashed is not None):
            return False
        self._remembered[fingerprint] = _Remembered(user, now + self._remember_seconds)
        self._remembered.move_to_end(fingerprint)
        while len(self._remembered) > self._remember_max:
            self._remembered.popitem(last=False)
        return True
