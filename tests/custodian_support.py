"""The sandbox as the custodian of the service under test: our registration there (as settings
or as a CustodianConfig) and a customer's consent turned into tokens, through the real pages.

Shared by the auth, fetcher and exporter tests (``tests/`` is on the import path through the
root conftest)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from scwadd_core.custodian import Custodian, CustodianConfig, TokenResponse
from scwadd_sandbox.testing import RunningSandbox, submit_consent


def custodian_settings(sandbox: RunningSandbox) -> dict[str, Any]:
    """The ``CustodianSettings`` fields that register a service with ``sandbox``."""
    return {
        "PGE_CLIENT_ID": sandbox.client_id,
        "PGE_CLIENT_SECRET": sandbox.client_secret,
        "PGE_CLIENT_CERT_FILE": sandbox.pki.client_cert,
        "PGE_CLIENT_KEY_FILE": sandbox.pki.client_key,
        "PGE_CA_FILE": sandbox.pki.ca_cert,
        "PGE_TOKEN_URL": sandbox.token_url,
    }


def custodian_config(sandbox: RunningSandbox) -> CustodianConfig:
    return CustodianConfig(
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        client_cert_file=sandbox.pki.client_cert,
        client_key_file=sandbox.pki.client_key,
        token_url=sandbox.token_url,
        ca_file=sandbox.pki.ca_cert,
    )


def consent_code(
    sandbox: RunningSandbox,
    profile: str,
    *,
    history_days: int = 365,
    state: str = "test",
    share: str = "all",
) -> str:
    """A customer of ``profile`` approves on the sandbox's consent page (sharing ``share``:
    ``all`` or ``usage``); the code it redirects back with."""
    query = httpx.QueryParams(
        {
            "client_id": sandbox.client_id,
            "redirect_uri": sandbox.redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    with sandbox.web_client() as web:
        answer = submit_consent(
            web,
            f"{sandbox.authorize_url}?{query}",
            profile=profile,
            history_days=history_days,
            share=share,
        )
    assert answer.status_code == 302, answer.text
    return httpx.URL(answer.headers["location"]).params["code"]


async def grant_tokens(
    sandbox: RunningSandbox, profile: str, *, state: str = "test", share: str = "all"
) -> TokenResponse:
    """A year of ``profile``'s data granted (``share``: ``all`` or ``usage``), and the code
    exchanged as a third party does."""
    # The consent pages are plain blocking HTTP: kept off the loop the service under test uses.
    code = await asyncio.to_thread(consent_code, sandbox, profile, state=state, share=share)
    async with Custodian(custodian_config(sandbox)) as custodian:
        return await custodian.exchange_code(code, sandbox.redirect_uri)
