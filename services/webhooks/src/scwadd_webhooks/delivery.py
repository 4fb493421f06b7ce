"""One HTTP delivery of a signed message: the Standard Webhooks headers, the SSRF guard, no
redirects.

Signing follows the Standard Webhooks specification (https://www.standardwebhooks.com,
``spec/standard-webhooks.md``): ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` = space-separated ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one
per configured secret, computed by the maintained ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from scwadd_webhooks.settings import Network

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(Exception):
    """The endpoint resolves to an address the operator did not allow (SSRF guard). Permanent:
    retrying cannot change the operator's settings."""


@dataclass(frozen=True)
class Answer:
    """What the endpoint said: ``status`` is None when no HTTP answer came (``error`` says why)."""

    status: int | None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Signer:
    """Signs with every configured secret, so receivers keep verifying during a rotation."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("WEBHOOK_SECRETS: at least one whsec_ secret is needed to sign")
        self._webhooks = [Webhook(secret) for secret in secrets]

    def headers(self, message_id: str, body: str, now: datetime) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body`` (the exact bytes sent, as text)."""
        signatures = " ".join(w.sign(message_id, now, body) for w in self._webhooks)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.astimezone(UTC).timestamp())),
            "webhook-signature": signatures,
        }


def is_refused(address: IpAddress, allowed: Sequence[Network]) -> bool:
    """True for any address that is not globally routable (private, loopback, link-local,
    shared, reserved, multicast, unspecified; IPv4-mapped IPv6 judged as its IPv4 address),
    unless it lies in one of the operator's ``allowed`` networks."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return False
    return address.is_multicast or not address.is_global


async def vetted_address(host: str, port: int, allowed: Sequence[Network]) -> str:
    """Resolve ``host`` and return the address to connect to; raise :class:`RefusedAddress`
    when ANY of its addresses is refused (a name that also points inside is not used at all)."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as error:
            raise ConnectionError(f"cannot resolve the endpoint's host: {error}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    refused = [str(a) for a in addresses if is_refused(a, allowed)]
    if refused:
        raise RefusedAddress(
            f"the endpoint resolves to {', '.join(refused)}, which is not a public address; "
            "allow its network in WEBHOOK_ALLOWED_NETWORKS if that is intended"
        )
    return str(addresses[0])


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: str,
    headers: dict[str, str],
    allowed: Sequence[Network],
) -> Answer:
    """POST ``body`` to ``url`` at the vetted address (connecting to the address that was
    checked, so a DNS answer that changes in between cannot redirect us inside), TLS still
    verified against the URL's host name. Redirects are not followed: a 3xx is a failed attempt.

    Raises :class:`RefusedAddress`; every other failure is an :class:`Answer` with an error.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = await vetted_address(host, port, allowed)
    except ConnectionError as error:
        return Answer(status=None, error=str(error))
    literal = f"[{address}]" if ":" in address else address
    pinned = urlunsplit(parts._replace(netloc=f"{literal}:{port}"))
    request_headers = {
        **headers,
        "content-type": "application/json",
        "host": parts.netloc.rpartition("@")[2],
        "user-agent": "scwadd-webhooks",
    }
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        response = await client.post(
            pinned, content=body.encode(), headers=request_headers, extensions=extensions
        )
    except httpx.HTTPError as error:
        return Answer(status=None, error=f"{type(error).__name__}: {error}"[:500])
    return Answer(status=response.status_code)
