"""JSON log lines with the job id on every line, and no secret in any of them.

``configure_logging("INFO")`` once at start; then ``with job_context(job_id): ...`` (or
``bind_job(job_id)``) makes every line logged inside carry ``"job_id"``. The context variable
follows asyncio tasks, so concurrent jobs in one process do not mix their ids.

Redaction is a last line of defence, applied to the whole rendered line (message, extras,
tracebacks, uvicorn's access log with its query string): values of keys that name a secret
(token, code, secret, password, authorization, state, cookie, ...), ``Bearer``/``Basic``
credentials and JWT-shaped strings become ``[REDACTED]``. Code must still never log a meter value.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Any
from urllib.parse import unquote_plus

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[REDACTED]"

job_id_var: ContextVar[str | None] = ContextVar("scwadd_job_id", default=None)

# Names whose values are secrets wherever they appear: query strings, form bodies, JSON, repr().
_SENSITIVE_KEY = (
    r"(?:[A-Za-z0-9_-]*(?:token|secret|password|passwd|authorization|api[_-]?key|cookie)"
    r"[A-Za-z0-9_-]*|code|state|refresh|assertion|client_assertion)"
)
_SENSITIVE_KEY_RE = re.compile(rf"^{_SENSITIVE_KEY}$", re.IGNORECASE)
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization: Bearer xyz / Basic xyz, in headers, reprs or prose.
    (
        re.compile(r"\b(Bearer|Basic|Digest)(\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
        r"\1\2" + REDACTED,
    ),
    # JSON and dict reprs: "access_token": "xyz", 'code': 'xyz' (quotes possibly escaped).
    (
        re.compile(
            rf"""((?:\\?["'])?\b{_SENSITIVE_KEY}(?:\\?["'])?\s*[:=]\s*)(\\?["'])(.*?)(\2)""",
            re.IGNORECASE,
        ),
        r"\1\2" + REDACTED + r"\4",
    ),
    # key=value in URLs, forms and prose: code=xyz&state=abc, access_token=xyz.
    (
        re.compile(rf"(\b{_SENSITIVE_KEY}\s*[=:]\s*)(?![\s\"'\\])[^\s&\"',;)}}\]]+", re.IGNORECASE),
        r"\1" + REDACTED,
    ),
    # Anything shaped like a JWT.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
]


# A parameter name with percent escapes (``c%6Fde=``, ``%63ode=``, double-encoded ``c%256Fde=``):
# servers decode the name, so the value is as secret as under the plain name.
_ENCODED_KEY = re.compile(
    r"((?:[A-Za-z0-9_.~+-]|%[0-9A-Fa-f]{2})*%[0-9A-Fa-f]{2}(?:[A-Za-z0-9_.~+-]|%[0-9A-Fa-f]{2})*"
    r"(?:=|%3[dD]))(?![\s\"'\\]|\[REDACTED\])[^\s&\"',;)}\]]+"
)


def _decoded_name(name: str) -> str:
    for _ in range(3):  # a name encoded more than three times is not what a server decodes
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.rstrip("=").strip()


def _redact_encoded(match: re.Match[str]) -> str:
    key = match.group(1)
    if _SENSITIVE_KEY_RE.match(_decoded_name(key)):
        return key + REDACTED
    return match.group(0)


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like a credential."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if "%" in text:
        text = _ENCODED_KEY.sub(_redact_encoded, text)
    return text


def _redact_value(key: str | None, value: Any) -> Any:
    if key is not None and _SENSITIVE_KEY_RE.match(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    return value


class RedactingJsonFormatter(JsonFormatter):
    """JSON lines with ``job_id`` and with credentials masked in every field."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("job_id", job_id_var.get())

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        # Non-string extras (exceptions, objects) are rendered first so their text is redacted.
        rendered = {
            key: value
            if isinstance(value, str | int | float | bool | dict | list | tuple) or value is None
            else str(value)
            for key, value in log_data.items()
        }
        # uvicorn adds an ANSI-coloured copy of every message; the plain one is enough.
        rendered.pop("color_message", None)
        return {key: _redact_value(key, value) for key, value in rendered.items()}


def make_formatter() -> RedactingJsonFormatter:
    return RedactingJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Send every logger (ours, uvicorn's, nats') to one JSON handler on stdout."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(make_formatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request URL at INFO; URLs may carry codes, and the volume is noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def bind_job(job_id: str | None) -> Token[str | None]:
    """Attach ``job_id`` to every line logged from this context (task) on."""
    return job_id_var.set(job_id)


@contextlib.contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    token = job_id_var.set(job_id)
    try:
        yield
    finally:
        job_id_var.reset(token)
