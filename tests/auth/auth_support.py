"""Helpers for the auth tests: settings for a sandbox, and the service run in-process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import nats
from scwadd_auth.runtime import main
from scwadd_auth.settings import AuthSettings
from scwadd_core.events import GRANT_RECEIVED, STREAM_EVENTS, GrantReceived
from scwadd_sandbox.testing import RunningSandbox


def auth_settings(
    sandbox: RunningSandbox, nats_url: str, database_url: str, port: int
) -> AuthSettings:
    return AuthSettings(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        PGE_CLIENT_ID=sandbox.client_id,
        PGE_CLIENT_SECRET=sandbox.client_secret,
        PGE_CLIENT_CERT_FILE=sandbox.pki.client_cert,
        PGE_CLIENT_KEY_FILE=sandbox.pki.client_key,
        PGE_CA_FILE=sandbox.pki.ca_cert,
        PGE_TOKEN_URL=sandbox.token_url,
        PGE_AUTHORIZE_URL=sandbox.authorize_url,
        TOKEN_SEALING_KEYS="test1:" + base64.b64encode(os.urandom(32)).decode(),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        OAUTH_CALLBACK_PATH="/OAuthCallback",
    )


@dataclass
class RunningAuth:
    url: str
    settings: AuthSettings


@contextlib.asynccontextmanager
async def running_auth(settings: AuthSettings) -> AsyncIterator[RunningAuth]:
    """The auth service's real ``main`` in this event loop, until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(main(settings, stop=stop))
    url = f"http://127.0.0.1:{settings.HTTP_PORT}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            if task.done():
                task.result()
                raise AssertionError("auth stopped during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("auth never became ready")
    try:
        yield RunningAuth(url=url, settings=settings)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0


async def grant_events(nats_url: str) -> list[GrantReceived]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_EVENTS, subjects_filter=GRANT_RECEIVED)
        count = (info.state.subjects or {}).get(GRANT_RECEIVED, 0)
        events: list[GrantReceived] = []
        if count:
            sub = await js.pull_subscribe(GRANT_RECEIVED, stream=STREAM_EVENTS)
            for msg in await sub.fetch(count, timeout=5):
                events.append(GrantReceived.model_validate_json(msg.data))
        return events
    finally:
        await nc.close()
