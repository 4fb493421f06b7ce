"""Every service builds its bus from its settings: replicas and limits of the streams and
buckets come from NATS_STREAM_REPLICAS and the NATS_*_MAX_* settings, never from defaults."""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
from scwadd_core.bus import Bus
from scwadd_core.events import (
    EXPORTS_BUCKET,
    RATELIMIT_BUCKET,
    RAW_BUCKET,
    STREAM_DLQ,
    STREAM_EVENTS,
)
from scwadd_core.settings import ServiceSettings

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
DAY = 86400.0


def limits_settings(nats_url: str) -> ServiceSettings:
    return ServiceSettings(
        NATS_URL=nats_url,
        NATS_MAX_MESSAGE_BYTES=64 * 1024,
        NATS_EVENTS_MAX_BYTES=3 * MIB,
        NATS_EVENTS_MAX_AGE_DAYS=2,
        NATS_DLQ_MAX_BYTES=4 * MIB,
        NATS_DLQ_MAX_AGE_DAYS=5,
        NATS_RAW_MAX_BYTES=6 * MIB,
        NATS_RAW_MAX_AGE_DAYS=7,
        NATS_EXPORTS_MAX_BYTES=8 * MIB,
        NATS_EXPORTS_MAX_AGE_DAYS=9,
        NATS_KV_MAX_BYTES=2 * MIB,
        NATS_KV_MAX_AGE_DAYS=1,
    )


async def test_every_stream_and_bucket_gets_its_limits_from_settings(nats_server: str) -> None:
    # A bucket made earlier without limits (an older version) is brought to them too.
    old = await Bus.connect(nats_server, name="old")
    await old.js.create_object_store(RAW_BUCKET)
    await old.close()
    bus = await Bus.from_settings(limits_settings(nats_server), name="test")
    try:
        await bus.ensure_streams()
        await bus.object_store(RAW_BUCKET)
        await bus.object_store(EXPORTS_BUCKET)
        await bus.key_value(RATELIMIT_BUCKET)
        expected = {
            STREAM_EVENTS: (3 * MIB, 2 * DAY),
            STREAM_DLQ: (4 * MIB, 5 * DAY),
            f"OBJ_{RAW_BUCKET}": (6 * MIB, 7 * DAY),
            f"OBJ_{EXPORTS_BUCKET}": (8 * MIB, 9 * DAY),
            f"KV_{RATELIMIT_BUCKET}": (2 * MIB, 1 * DAY),
        }
        for stream, (max_bytes, max_age) in expected.items():
            config = (await bus.js.stream_info(stream)).config
            assert (config.max_bytes, config.max_age) == (max_bytes, max_age), stream
            assert config.max_msg_size == 64 * 1024, stream
        # An event bigger than the message limit is refused, not stored.
        with pytest.raises(nats.js.errors.APIError):
            await bus.js.publish("scwadd.events.job.progress", b"x" * (65 * 1024))
    finally:
        await bus.close()


def _sealing_key() -> str:
    return "k1:" + base64.b64encode(os.urandom(32)).decode()


def _common(nats_url: str, tmp_path: Path, port: int) -> dict[str, Any]:
    return {
        "NATS_URL": nats_url,
        # One server cannot hold 3 replicas: JetStream refuses, so a runtime that passes the
        # count cannot start here, while one that ignored it would quietly create 1 replica.
        "NATS_STREAM_REPLICAS": 3,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": port,
        "PGE_CLIENT_ID": "client",
        "PGE_CLIENT_SECRET": "secret",
        "PGE_CLIENT_CERT_FILE": tmp_path / "absent-cert.pem",
        "PGE_CLIENT_KEY_FILE": tmp_path / "absent-key.pem",
        "PGE_TOKEN_URL": "https://custodian.invalid/token",
        "TOKEN_SEALING_KEYS": _sealing_key(),
    }


async def _auth(nats_url: str, tmp_path: Path) -> int:
    from scwadd_auth.runtime import main
    from scwadd_auth.settings import AuthSettings

    settings = AuthSettings(
        **_common(nats_url, tmp_path, 18080),
        DATABASE_URL=f"sqlite:///{tmp_path / 'auth.db'}",
        PGE_AUTHORIZE_URL="https://custodian.invalid/authorize",
        PGE_API_BASE="https://custodian.invalid/espi/1_1/resource",
        PUBLIC_BASE_URL="https://scwadd.invalid",
    )
    return await main(settings)


async def _fetcher(nats_url: str, tmp_path: Path) -> int:
    from scwadd_fetcher.runtime import main
    from scwadd_fetcher.settings import FetcherSettings

    settings = FetcherSettings(
        **_common(nats_url, tmp_path, 18081),
        DATABASE_URL=f"sqlite:///{tmp_path / 'fetcher.db'}",
        PGE_API_BASE="https://custodian.invalid/espi",
    )
    return await main(settings)


async def _exporter(nats_url: str, tmp_path: Path) -> int:
    from scwadd_exporter.runtime import main
    from scwadd_exporter.settings import ExporterSettings

    settings = ExporterSettings(
        **_common(nats_url, tmp_path, 18082),
        DATABASE_URL=f"sqlite:///{tmp_path / 'exporter.db'}",
    )
    return await main(settings)


async def _files(nats_url: str, tmp_path: Path) -> int:
    from scwadd_files.runtime import main
    from scwadd_files.settings import Settings

    common = _common(nats_url, tmp_path, 18083)
    settings = Settings(
        NATS_URL=nats_url,
        NATS_STREAM_REPLICAS=common["NATS_STREAM_REPLICAS"],
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=18083,
        HTPASSWD="operator:$2b$12$" + "a" * 53,
    )
    return await main(settings, {})


async def _webhooks(nats_url: str, tmp_path: Path) -> int:
    from scwadd_webhooks.runtime import main
    from scwadd_webhooks.settings import WebhookSettings

    common = _common(nats_url, tmp_path, 18084)
    settings = WebhookSettings(
        NATS_URL=nats_url,
        NATS_STREAM_REPLICAS=common["NATS_STREAM_REPLICAS"],
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=18084,
        DATABASE_URL=f"sqlite:///{tmp_path / 'webhooks.db'}",
    )
    return await main(settings)


RUNTIMES: dict[str, Callable[[str, Path], Awaitable[int]]] = {
    "auth": _auth,
    "fetcher": _fetcher,
    "exporter": _exporter,
    "files": _files,
    "webhooks": _webhooks,
}


@pytest.mark.parametrize("service", sorted(RUNTIMES))
async def test_each_runtime_passes_the_replica_count(
    service: str, nats_server: str, tmp_path: Path
) -> None:
    with pytest.raises(nats.js.errors.APIError) as refused:
        await RUNTIMES[service](nats_server, tmp_path)
    # "replicas > 1 not supported in non-clustered mode": the count reached the server.
    assert refused.value.err_code == 10074, refused.value
    # Nothing was created with fewer replicas than asked for.
    bus = await Bus.connect(nats_server, name="check")
    try:
        names = await bus.js.streams_info()
    finally:
        await bus.close()
    assert [info.config.name for info in names] == []
