"""scwadd_core.custodian against the sandbox's token endpoint and API, over mutual TLS."""

from __future__ import annotations

import dataclasses

import pytest
from custodian_support import consent_code, custodian_config
from scwadd_core.custodian import Custodian, CustodianError, RevokeOutcome

pytestmark = pytest.mark.anyio


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_client_token_is_shared_until_shortly_before_it_expires(sandbox):
    clock = Clock()
    async with Custodian(custodian_config(sandbox), clock=clock) as custodian:
        first = await custodian.client_token()
        assert await custodian.client_token() == first
        assert custodian.client_token_requests == 1
        clock.now += 3600 - 61  # still inside expires_in minus the margin
        assert await custodian.client_token() == first
        clock.now += 60
        renewed = await custodian.client_token()
        assert custodian.client_token_requests == 2
        assert renewed != first


async def test_code_exchange_then_revocation_once(sandbox):
    code = consent_code(sandbox, "electric-15min")
    async with Custodian(custodian_config(sandbox)) as custodian:
        grant = await custodian.exchange_code(code, sandbox.redirect_uri)
        assert grant.resource_uri and "/Subscription/" in grant.resource_uri
        assert grant.authorization_uri and grant.refresh_token
        assert grant.access_token not in repr(grant)
        refreshed = await custodian.refresh(grant.refresh_token)
        assert refreshed.access_token != grant.access_token
        with pytest.raises(CustodianError) as reused:
            await custodian.exchange_code(code, sandbox.redirect_uri)
        assert reused.value.status_code == 400 and not reused.value.retryable
        assert code not in str(reused.value)
        assert await custodian.revoke(grant.authorization_uri) is RevokeOutcome.REVOKED
        assert await custodian.revoke(grant.authorization_uri) is RevokeOutcome.ALREADY_REVOKED


async def test_wrong_client_secret_is_a_clear_permanent_error(sandbox):
    config = dataclasses.replace(custodian_config(sandbox), client_secret="s3cr3t-not-it")
    async with Custodian(config) as custodian:
        with pytest.raises(CustodianError) as refused:
            await custodian.client_token()
    assert refused.value.status_code == 401
    assert not refused.value.retryable
    assert "s3cr3t" not in str(refused.value)


async def test_a_certificate_from_an_unknown_ca_does_not_get_through(sandbox):
    config = dataclasses.replace(
        custodian_config(sandbox),
        client_cert_file=sandbox.pki.rogue_client_cert,
        client_key_file=sandbox.pki.rogue_client_key,
    )
    async with Custodian(config) as custodian:
        with pytest.raises(CustodianError) as refused:
            await custodian.client_token()
    assert refused.value.status_code in (None, 400)
