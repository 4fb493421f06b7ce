"""The sandbox keeps its authorizations, tokens and batches across its own restart (SQLite), so a
restart does not turn a third party's in-flight work into a misleading 401 (issue 11)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox_helpers import Receiver, client_token, grant_for
from scwadd_sandbox.testing import start_sandbox

DAY = 86400
SECRET = "a-fixed-secret-for-both-runs"


def test_authorizations_tokens_and_batches_survive_a_restart(
    pki_dir: Path, receiver: Receiver, tmp_path: Path
) -> None:
    state_file = tmp_path / "sandbox.sqlite3"
    options = {
        "client_secret": SECRET,
        "notification_uri": receiver.url,
        "state_file": state_file,
    }
    with start_sandbox(pki_dir, **options) as sandbox, sandbox.api_client() as api:
        kept = grant_for(sandbox, api, "gas-electric")
        revoked = grant_for(sandbox, api, "electric-60min")
        client = client_token(sandbox, api)
        assert api.delete(revoked.body["authorizationURI"], headers=client).status_code == 200
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(kept.body["resourceURI"], headers=kept.headers, params=params).status_code
            == 202
        )
        [notification] = receiver.wait_for(1)
        before = sandbox.admin.get("/admin/authorizations").json()
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600

    with start_sandbox(pki_dir, **options) as sandbox, sandbox.api_client() as api:
        assert sandbox.admin.get("/admin/authorizations").json() == before
        old_base = notification.split(b"/GreenButtonConnect/")[0].split(b"<ns0:resources>")[1]
        url = notification.decode().split("<ns0:resources>")[1].split("</ns0:resources>")[0]
        url = url.replace(old_base.decode(), sandbox.api_url)
        # The customer's access token, the client token and the announced batch still work.
        points = f"{sandbox.espi_base}/Subscription/{kept.subscription_id}/UsagePoint"
        assert api.get(points, headers=kept.headers).status_code == 200
        feed = api.get(url.replace("&amp;", "&"), headers=client)
        assert feed.status_code == 200 and b"IntervalReading" in feed.content
        # The refresh token still rotates; the revoked grant stays revoked.
        refreshed = api.post(
            sandbox.token_url,
            auth=sandbox.basic_auth,
            data={"grant_type": "refresh_token", "refresh_token": kept.refresh_token},
        )
        assert refreshed.status_code == 200
        gone = f"{sandbox.espi_base}/Subscription/{revoked.subscription_id}/UsagePoint"
        assert api.get(gone, headers=revoked.headers).status_code == 401
        again = f"{sandbox.espi_base}/Authorization/{revoked.authorization_id}"
        assert api.delete(again, headers=client).status_code == 410
        # New authorizations get new ids: the sequence went on.
        fresh = grant_for(sandbox, api, "solar")
        assert fresh.authorization_id not in {a["authorization_id"] for a in before}

    with start_sandbox(pki_dir, **options) as sandbox, sandbox.api_client() as api:
        # The rotation of the second run was kept too: the first refresh token is spent.
        spent = api.post(
            sandbox.token_url,
            auth=sandbox.basic_auth,
            data={"grant_type": "refresh_token", "refresh_token": kept.refresh_token},
        )
        assert spent.status_code == 400
        assert len(sandbox.admin.get("/admin/authorizations").json()) == 3


def test_a_batch_pending_at_shutdown_is_notified_after_the_restart(
    pki_dir: Path, receiver: Receiver, tmp_path: Path
) -> None:
    options = {
        "client_secret": SECRET,
        "notification_uri": receiver.url,
        "state_file": tmp_path / "sandbox.sqlite3",
    }
    with (
        start_sandbox(pki_dir, notification_delay=(600.0, 600.0), **options) as sandbox,
        sandbox.api_client() as api,
    ):
        grant = grant_for(sandbox, api, "electric-15min")
        end = sandbox.state.data_end
        params = {"published-min": end - DAY, "published-max": end}
        assert (
            api.get(grant.body["resourceURI"], headers=grant.headers, params=params).status_code
            == 202
        )
    assert receiver.bodies == []
    with start_sandbox(pki_dir, **options) as sandbox:
        [body] = receiver.wait_for(1, timeout=60)
        [pending] = sandbox.state.batches.values()
        assert pending.settled.wait(30)
        [job] = sandbox.admin.get("/admin/batches").json()
        assert job["correlation_id"].encode() in body
        assert job["notification"] == "delivered"
