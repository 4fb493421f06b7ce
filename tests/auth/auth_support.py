"""Helpers for the auth tests: settings for a sandbox, and the service run in-process."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
from custodian_support import custodian_settings
from scwadd_auth.runtime import main
from scwadd_auth.settings import AuthSettings
from scwadd_core.events import GRANT_RECEIVED, STREAM_EVENTS, GrantReceived
from scwadd_sandbox.testing import RunningSandbox
from scwadd_testing.service import serving


def auth_settings(
    sandbox: RunningSandbox, nats_url: str, database_url: str, port: int, **extra: object
) -> AuthSettings:
    return AuthSettings(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=port,
        **custodian_settings(sandbox),
        PGE_AUTHORIZE_URL=sandbox.authorize_url,
        TOKEN_SEALING_KEYS="test1:" + base64.b64encode(os.urandom(32)).decode(),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        OAUTH_CALLBACK_PATH="/OAuthCallback",
        PGE_API_BASE=sandbox.espi_base,
        **extra,
    )


@dataclass
class RunningAuth:
    url: str
    settings: AuthSettings


@contextlib.asynccontextmanager
async def running_auth(settings: AuthSettings) -> AsyncIterator[RunningAuth]:
    """The auth service's real ``main`` in this event loop, until the block ends."""
    url = f"http://127.0.0.1:{settings.HTTP_PORT}"
    async with serving(lambda stop: main(settings, stop=stop), f"{url}/readyz", name="auth"):
        yield RunningAuth(url=url, settings=settings)


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
