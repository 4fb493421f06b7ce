"""The files service over real HTTP and a real nats-server object store."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlsplit

import httpx
import pytest
from files_support import CSV_BODY, CSV_NAME, MANIFEST_BODY, MANIFEST_NAME, OPERATOR, FilesServer
from scwadd_files.service import purge_expired

pytestmark = pytest.mark.anyio


def client(server: FilesServer, auth: tuple[str, str] | None = OPERATOR) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, auth=auth, timeout=30)


async def test_no_credentials_is_a_basic_challenge(files_server: FilesServer) -> None:
    async with client(files_server, auth=None) as http:
        for path in ("/output/", f"/output/{CSV_NAME}"):
            response = await http.get(path)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith('Basic realm="SCWADD exports"')
            assert CSV_BODY[:20] not in response.content


async def test_wrong_password_and_unknown_user_are_refused_alike(files_server: FilesServer) -> None:
    async with client(files_server, auth=("operator", "wrong")) as http:
        wrong = await http.get("/output/")
    async with client(files_server, auth=("nobody", OPERATOR[1])) as http:
        unknown = await http.get("/output/")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_repeated_failures_are_slowed_down(files_server: FilesServer) -> None:
    async with client(files_server, auth=("operator", "guess")) as http:
        statuses = [(await http.get("/output/")).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 401]  # 3 free failures, the 4th imposes a wait
        throttled = await http.get("/output/")
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 29
    async with client(files_server) as http:  # even the right password waits its turn
        assert (await http.get("/output/")).status_code == 429


async def test_listing_as_json_for_scripts(files_server: FilesServer) -> None:
    async with client(files_server) as http:
        by_query = await http.get("/output/", params={"format": "json"})
        by_accept = await http.get("/output/", headers={"Accept": "application/json"})
    assert by_query.status_code == 200 and by_accept.status_code == 200
    exports = by_query.json()["exports"]
    assert by_accept.json()["exports"] == exports
    assert {e["name"] for e in exports} == {CSV_NAME, MANIFEST_NAME}
    csv = next(e for e in exports if e["name"] == CSV_NAME)
    assert csv["size"] == len(CSV_BODY)
    assert csv["sha256"] == hashlib.sha256(CSV_BODY).hexdigest()
    assert csv["url"] == f"/output/{CSV_NAME}"
    assert datetime.fromisoformat(csv["modified"]) > datetime.now(UTC) - timedelta(minutes=5)


async def test_listing_as_html_for_people(files_server: FilesServer) -> None:
    async with client(files_server) as http:
        page = await http.get("/output/", headers={"Accept": "text/html,*/*"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        f'href="{CSV_NAME}"' in page.text and "Signed in as <strong>operator</strong>" in page.text
    )
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_download_whole_file_with_validators(
    files_server: FilesServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scwadd_files.audit")
    async with client(files_server) as http:
        response = await http.get(f"/output/{CSV_NAME}")
    assert response.status_code == 200
    assert response.content == CSV_BODY
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{CSV_NAME}"'
    assert response.headers["etag"] == f'"{hashlib.sha256(CSV_BODY).hexdigest()}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(CSV_BODY)
    modified = datetime.strptime(response.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert abs(modified.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=5)
    audits = [r for r in caplog.records if getattr(r, "audit", None) == "download"]
    assert len(audits) == 1  # one line per download: who, what, when
    line = audits[0]
    assert (line.user, line.object, line.status, line.outcome) == (
        "operator",
        CSV_NAME,
        200,
        "complete",
    )  # type: ignore[attr-defined]
    assert line.bytes_sent == len(CSV_BODY) and line.at  # type: ignore[attr-defined]


async def test_ranges(files_server: FilesServer) -> None:
    size = len(CSV_BODY)
    async with client(files_server) as http:
        middle = await http.get(f"/output/{CSV_NAME}", headers={"Range": "bytes=200000-200099"})
        tail = await http.get(f"/output/{CSV_NAME}", headers={"Range": "bytes=-50"})
        beyond = await http.get(f"/output/{CSV_NAME}", headers={"Range": f"bytes={size}-"})
        resumed = await http.get(f"/output/{CSV_NAME}", headers={"Range": "bytes=131072-"})
    assert middle.status_code == 206
    assert middle.content == CSV_BODY[200000:200100]
    assert middle.headers["content-range"] == f"bytes 200000-200099/{size}"
    assert tail.status_code == 206 and tail.content == CSV_BODY[-50:]
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    assert resumed.status_code == 206 and resumed.content == CSV_BODY[131072:]


async def test_conditional_requests(files_server: FilesServer) -> None:
    async with client(files_server) as http:
        first = await http.get(f"/output/{MANIFEST_NAME}")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        same = await http.get(f"/output/{MANIFEST_NAME}", headers={"If-None-Match": etag})
        since = await http.get(f"/output/{MANIFEST_NAME}", headers={"If-Modified-Since": modified})
        old = format_datetime(datetime.now(UTC) - timedelta(days=1), usegmt=True)
        changed = await http.get(f"/output/{MANIFEST_NAME}", headers={"If-Modified-Since": old})
        stale_range = await http.get(
            f"/output/{MANIFEST_NAME}", headers={"Range": "bytes=0-1", "If-Range": '"stale"'}
        )
        fresh_range = await http.get(
            f"/output/{MANIFEST_NAME}", headers={"Range": "bytes=0-1", "If-Range": etag}
        )
        head = await http.head(f"/output/{MANIFEST_NAME}")
    assert first.content == MANIFEST_BODY
    assert same.status_code == 304 and same.content == b""
    assert since.status_code == 304
    assert changed.status_code == 200
    assert stale_range.status_code == 200 and stale_range.content == MANIFEST_BODY
    assert fresh_range.status_code == 206 and fresh_range.content == MANIFEST_BODY[:2]
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(MANIFEST_BODY))


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A request with the path exactly as written: no client-side dot-segment clean-up."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    import base64

    token = base64.b64encode(f"{OPERATOR[0]}:{OPERATOR[1]}".encode()).decode()
    connection.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    connection.putheader("Authorization", f"Basic {token}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


@pytest.mark.parametrize(
    "path",
    [
        "/output/../../etc/passwd",
        "/output/..%2F..%2Fetc%2Fpasswd",
        "/output/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/output/%2e%2e",
        "/output/..",
        "/output/..%5c..%5cwindows",
        "/output/%252e%252e%252fetc",
        "/output/sub123%00.csv",
        "/output/.hidden",
        "/output//etc/passwd",
        "/output/OBJ_scwadd-exports",
        "/output/%24O.scwadd-exports.M.x",
    ],
)
async def test_no_path_leaves_the_store(files_server: FilesServer, path: str) -> None:
    status, body = await asyncio.to_thread(raw_get, files_server.url, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and CSV_BODY[:30] not in body


async def test_unknown_export_is_404(files_server: FilesServer) -> None:
    async with client(files_server) as http:
        response = await http.get("/output/sub999-2026-01-01-00000000.csv")
    assert response.status_code == 404


async def test_retention_deletes_old_exports_only(files_server: FilesServer) -> None:
    future = datetime.now(UTC) + timedelta(days=31)
    kept = await purge_expired(files_server.bus, 30, now=datetime.now(UTC))
    assert kept == []
    deleted = await purge_expired(files_server.bus, 30, now=future)
    assert sorted(deleted) == sorted([CSV_NAME, MANIFEST_NAME])
    async with client(files_server) as http:
        listing = await http.get("/output/", params={"format": "json"})
        gone = await http.get(f"/output/{CSV_NAME}")
    assert listing.json()["exports"] == []
    assert gone.status_code == 404
    assert await purge_expired(files_server.bus, 30, now=future) == []  # nothing twice


async def test_operational_endpoints_need_no_credentials(files_server: FilesServer) -> None:
    async with client(files_server, auth=None) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        metrics = await http.get("/metrics")
    assert ready.status_code == 200 and ready.json()["checks"] == {"nats": True}
    assert "scwadd_files_logins_total" in metrics.text
