from __future__ import annotations

import base64

import pytest
from scwadd_core.events import GrantReceived, SealedSecret
from scwadd_core.sealing import Keyring, SealingError, generate_key


def test_seal_and_open_round_trip() -> None:
    keyring = Keyring.parse(generate_key("k1"))
    sealed = keyring.seal("access-token-value", job_id="job-1")
    assert sealed.kid == "k1"
    assert "access-token-value" not in sealed.model_dump_json()
    assert keyring.open(sealed, job_id="job-1") == "access-token-value"


def test_each_seal_uses_a_fresh_nonce() -> None:
    keyring = Keyring.parse(generate_key())
    first = keyring.seal("same", job_id="j")
    second = keyring.seal("same", job_id="j")
    assert first.nonce != second.nonce and first.ciphertext != second.ciphertext


def test_a_token_sealed_for_one_job_does_not_open_for_another() -> None:
    keyring = Keyring.parse(generate_key())
    sealed = keyring.seal("token", job_id="job-1")
    with pytest.raises(SealingError, match="another job"):
        keyring.open(sealed, job_id="job-2")


def test_tampering_is_detected() -> None:
    keyring = Keyring.parse(generate_key())
    sealed = keyring.seal("token", job_id="job-1")
    raw = bytearray(base64.urlsafe_b64decode(sealed.ciphertext + "=="))
    raw[0] ^= 1
    tampered = sealed.model_copy(
        update={"ciphertext": base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")}
    )
    with pytest.raises(SealingError):
        keyring.open(tampered, job_id="job-1")


def test_rotation_new_key_seals_old_key_still_opens() -> None:
    old, new = generate_key("old"), generate_key("new")
    sealed_before = Keyring.parse(old).seal("token", job_id="j")
    rotated = Keyring.parse(f"{new},{old}")
    assert rotated.seal("token", job_id="j").kid == "new"
    assert rotated.open(sealed_before, job_id="j") == "token"
    after_removal = Keyring.parse(new)
    with pytest.raises(SealingError, match="'old', which is not in TOKEN_SEALING_KEYS"):
        after_removal.open(sealed_before, job_id="j")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "holds no key"),
        ("nokid", "not of the form kid:base64key"),
        ("k1:!!!notbase64", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "5 bytes, expected 32"),
        (f"{generate_key('a')},{generate_key('a')}", "appears twice"),
        ("bad kid:" + base64.b64encode(bytes(32)).decode(), "must be 1-64"),
    ],
)
def test_malformed_keyrings_are_refused_without_echoing_keys(spec: str, message: str) -> None:
    with pytest.raises(SealingError, match=message) as caught:
        Keyring.parse(spec)
    key_part = spec.partition(":")[2]
    if len(key_part) > 8:
        assert key_part not in str(caught.value)


def test_sealed_secrets_travel_in_events_without_leaking_in_repr() -> None:
    keyring = Keyring.parse(generate_key())
    sealed = keyring.seal("token", job_id="job-1")
    event = GrantReceived(
        job_id="job-1",
        subscription_id="sub",
        resource_uri="https://x/Subscription/sub",
        authorization_uri="https://x/Authorization/1",
        scope="FB=1",
        access_token=sealed,
    )
    assert sealed.ciphertext not in repr(event)
    again = GrantReceived.model_validate_json(event.model_dump_json())
    assert isinstance(again.access_token, SealedSecret)
    assert keyring.open(again.access_token, job_id="job-1") == "token"
