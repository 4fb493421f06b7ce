"""Sealing tokens with AES-256-GCM, so they never travel on the bus or rest in a database in clear.

The keyring comes from ``TOKEN_SEALING_KEYS``: ``kid:base64key[,kid:base64key...]`` (32-byte keys,
standard or URL-safe base64). The first key seals; every key opens, so a key is rotated by putting
a new one first and removing the old one once no sealed token still uses it. The key id travels in
the :class:`~scwadd_core.events.SealedSecret`; the job id is authenticated as associated data, so a
sealed token only opens for the job it was sealed for.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scwadd_core.events import SealedSecret

KEY_BYTES = 32
NONCE_BYTES = 12
_KID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_AAD_PREFIX = b"scwadd/sealed-secret/v1\x00"


class SealingError(Exception):
    """A malformed keyring, or a sealed secret that does not open (unknown key, tampered...)."""


def _b64decode(text: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise SealingError("not valid base64") from None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _associated_data(kid: str, job_id: str) -> bytes:
    return _AAD_PREFIX + kid.encode() + b"\x00" + job_id.encode()


class Keyring:
    """The keys from ``TOKEN_SEALING_KEYS``; the first seals, all open."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SealingError("TOKEN_SEALING_KEYS holds no key")
        seen: set[str] = set()
        for kid, key in keys:
            if not _KID_PATTERN.match(kid):
                raise SealingError(
                    f"TOKEN_SEALING_KEYS: key id {kid!r} must be 1-64 of [A-Za-z0-9_.-]"
                )
            if kid in seen:
                raise SealingError(f"TOKEN_SEALING_KEYS: key id {kid!r} appears twice")
            if len(key) != KEY_BYTES:
                raise SealingError(
                    f"TOKEN_SEALING_KEYS: key {kid!r} is {len(key)} bytes, expected {KEY_BYTES}"
                )
            seen.add(kid)
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self.sealing_kid = keys[0][0]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Read ``kid:base64key[,kid:base64key...]``. Error messages never include key material."""
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(part.strip() for part in spec.split(",")):
            if not item:
                continue
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise SealingError(
                    f"TOKEN_SEALING_KEYS entry {position + 1} is not of the form kid:base64key"
                )
            try:
                key = _b64decode(encoded)
            except SealingError:
                raise SealingError(
                    f"TOKEN_SEALING_KEYS: key {kid.strip()!r} is not valid base64"
                ) from None
            keys.append((kid.strip(), key))
        return cls(keys)

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: str, *, job_id: str) -> SealedSecret:
        kid = self.sealing_kid
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._keys[kid].encrypt(
            nonce, plaintext.encode(), _associated_data(kid, job_id)
        )
        return SealedSecret(kid=kid, nonce=_b64encode(nonce), ciphertext=_b64encode(ciphertext))

    def open(self, sealed: SealedSecret, *, job_id: str) -> str:
        aead = self._keys.get(sealed.kid)
        if aead is None:
            raise SealingError(
                f"sealed with key {sealed.kid!r}, which is not in TOKEN_SEALING_KEYS "
                f"(known: {', '.join(self._keys)})"
            )
        try:
            plaintext = aead.decrypt(
                _b64decode(sealed.nonce),
                _b64decode(sealed.ciphertext),
                _associated_data(sealed.kid, job_id),
            )
        except InvalidTag:
            raise SealingError(
                "sealed secret does not open: tampered, or sealed for another job"
            ) from None
        return plaintext.decode()


def generate_key(kid: str | None = None) -> str:
    """A fresh ``kid:base64key`` entry for ``TOKEN_SEALING_KEYS`` (``make run`` uses it)."""
    kid = kid or f"k{secrets.token_hex(4)}"
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"
