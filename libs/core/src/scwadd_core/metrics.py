"""Metrics shared by every service, and the HTTP middleware that feeds them.

Service-specific metrics (grants by outcome, custodian calls, ...) live in the services, in the
same default registry, so one ``/metrics`` endpoint (see :mod:`scwadd_core.web`) exposes all.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "scwadd_http_requests_total",
    "HTTP requests served, by route template, method and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "scwadd_http_request_duration_seconds",
    "Time to serve an HTTP request, by route template and method.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CUSTODIAN_CALLS = Counter(
    "scwadd_custodian_calls_total",
    "Calls to the data custodian's API, by endpoint and HTTP status (or 'timeout'/'error').",
    ["endpoint", "status"],
)
DEAD_LETTERS = Counter(
    "scwadd_dead_letters_total",
    "Messages moved to the dead-letter stream after their last delivery failed, by subject.",
    ["subject"],
)
BUS_MESSAGES = Counter(
    "scwadd_bus_messages_total",
    "Messages handled by a durable consumer, by consumer, subject and outcome "
    "(acked, retried, dead_lettered).",
    ["durable", "subject", "outcome"],
)
BUS_HANDLER_DURATION = Histogram(
    "scwadd_bus_handler_duration_seconds",
    "Time a consumer's handler took for one message.",
    ["durable", "subject"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)
EVENTS_PUBLISHED = Counter(
    "scwadd_events_published_total",
    "Events published to JetStream, by subject (a duplicate suppressed by Nats-Msg-Id counts too).",
    ["subject", "duplicate"],
)


# Methods a label may name; any other (anyone can send ``FOO / HTTP/1.1``) is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str | None) -> str:
    """``method`` if it is a standard one, else ``"other"``: a bounded label set."""
    return method if method in KNOWN_METHODS else "other"


class MetricsMiddleware:
    """Counts and times requests per route *template* (``/output/{name}``), never per raw path,
    so the label set stays small and no customer-specific path becomes a label: every path that
    matches no route is ``unmatched``, every non-standard method ``other``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = method_label(scope.get("method"))
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)
