from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from scwadd_core.logs import REDACTED, configure_logging, job_context, redact

SECRETS = [
    ("Authorization: Bearer eyTokenValue123", "eyTokenValue123"),
    ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("GET /OAuthCallback?code=AuthCode987&state=StateXyz HTTP/1.1", "AuthCode987"),
    ("GET /OAuthCallback?code=AuthCode987&state=StateXyz HTTP/1.1", "StateXyz"),
    ('{"access_token": "tok-abc-123", "expires_in": 3600}', "tok-abc-123"),
    ("{'refresh_token': 'ref-456', 'x': 1}", "ref-456"),
    ("client_secret=hunter2 and more", "hunter2"),
    ("client_access_token: cat-789", "cat-789"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "eyJzdWIiOiIxIn0"),
    ("password='pa ss'", "pa ss"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    result = redact(text)
    assert secret not in result
    assert REDACTED in result


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "fetched 3 usage points for subscription 12345 with status_code=200 in 1.2s"
    assert redact(text) == text


def capture(level: str = "INFO") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_lines_are_json_with_the_job_id() -> None:
    stream = capture()
    log = logging.getLogger("scwadd.test")
    with job_context("job-42"):
        log.info("exporting %d rows", 10)
    log.info("outside")
    first, second = lines(stream)
    assert first["job_id"] == "job-42" and first["message"] == "exporting 10 rows"
    assert first["level"] == "INFO" and first["logger"] == "scwadd.test"
    assert second["job_id"] is None


def test_job_ids_do_not_leak_between_concurrent_tasks() -> None:
    stream = capture()
    log = logging.getLogger("scwadd.test")

    async def job(job_id: str) -> None:
        with job_context(job_id):
            await asyncio.sleep(0.01)
            log.info("working on %s", job_id)

    async def both() -> None:
        await asyncio.gather(job("a"), job("b"))

    asyncio.run(both())
    for line in lines(stream):
        assert line["message"] == f"working on {line['job_id']}"


def test_extras_arguments_and_tracebacks_are_redacted() -> None:
    stream = capture()
    log = logging.getLogger("scwadd.test")
    log.info("token response %s", {"access_token": "tok-in-args"})
    log.info(
        "exchanged",
        extra={"refresh_token": "tok-in-extra", "headers": {"Authorization": "Bearer tok-in-dict"}},
    )
    try:
        raise RuntimeError("request failed: code=tok-in-exception")
    except RuntimeError:
        log.exception("callback failed")
    output = stream.getvalue()
    for secret in ("tok-in-args", "tok-in-extra", "tok-in-dict", "tok-in-exception"):
        assert secret not in output
    assert len(lines(stream)) == 3


def teardown_module() -> None:
    logging.getLogger().handlers.clear()
