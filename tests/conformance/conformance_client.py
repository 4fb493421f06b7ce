"""The request shapes working PG&E Share My Data clients send, written for this suite.

Each method sends one shape exactly as the issue describes the clients in the field: token
parameters in the query string with an empty body and a JSON content type, or in a form body;
refresh in the query string; ``published-min`` as epoch seconds or ISO 8601; Bulk with the
client token. Nothing here knows the sandbox's internals: only URLs, HTTP and mutual TLS.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from lxml import etree
from scwadd_sandbox.testing import RunningSandbox, submit_consent

ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"


@dataclass
class NotificationInbox:
    """What the third party's Notification URI received, in order."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def add(self, body: bytes) -> None:
        with self.arrived:
            self.bodies.append(body)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[bytes]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
        return list(self.bodies)


def resources(batch_list: bytes) -> list[str]:
    root = etree.fromstring(batch_list)
    assert root.tag == f"{ESPI}BatchList", root.tag
    return [(r.text or "").strip() for r in root.iter(f"{ESPI}resources")]


def readings(feed: bytes) -> list[tuple[int, int, int]]:
    """(start, duration, value) of every IntervalReading, by namespace."""
    root = etree.fromstring(feed)
    return [
        (
            int(r.findtext(f"{ESPI}timePeriod/{ESPI}start") or ""),
            int(r.findtext(f"{ESPI}timePeriod/{ESPI}duration") or ""),
            int(r.findtext(f"{ESPI}value") or ""),
        )
        for r in root.iter(f"{ESPI}IntervalReading")
    ]


def usage_point_ids(feed: bytes) -> list[str]:
    root = etree.fromstring(feed)
    found = []
    for entry in root.iter(f"{ATOM}entry"):
        content = entry.find(f"{ATOM}content")
        if content is not None and len(content) and content[0].tag == f"{ESPI}UsagePoint":
            self_link = entry.find(f"{ATOM}link[@rel='self']")
            assert self_link is not None
            found.append(self_link.get("href", "").rsplit("/", 1)[1])
    return found


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PgeClient:
    """A third party's calls, in the shapes field clients use."""

    sandbox: RunningSandbox
    http: httpx.Client

    @property
    def basic(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.sandbox.client_id, self.sandbox.client_secret)

    def consent(self, profile: str, state: str = "conformance") -> str:
        """The customer approves on the custodian's page; the code the redirect carries."""
        query = httpx.QueryParams(
            {
                "client_id": self.sandbox.client_id,
                "redirect_uri": self.sandbox.redirect_uri,
                "response_type": "code",
                "state": state,
                "login": "guest",
            }
        )
        with self.sandbox.web_client() as web:
            answer = submit_consent(web, f"{self.sandbox.authorize_url}?{query}", profile=profile)
        assert answer.status_code == 302, answer.text
        location = httpx.URL(answer.headers["location"])
        assert location.params["state"] == state
        return location.params["code"]

    # -- the token endpoint, in each shape -------------------------------------------------
    def token_in_query_json_empty_body(self, params: dict[str, str]) -> httpx.Response:
        """Parameters in the query string, an empty body, ``Content-Type: application/json``."""
        return self.http.post(
            self.sandbox.token_url,
            params=params,
            content=b"",
            headers={"Content-Type": "application/json"},
            auth=self.basic,
        )

    def token_in_form(self, params: dict[str, str]) -> httpx.Response:
        return self.http.post(self.sandbox.token_url, data=params, auth=self.basic)

    def exchange_code(self, code: str, *, in_query: bool) -> dict[str, Any]:
        params = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.sandbox.redirect_uri,
        }
        answer = (
            self.token_in_query_json_empty_body(params) if in_query else self.token_in_form(params)
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def client_token(self, *, in_query: bool = True) -> str:
        params = {"grant_type": "client_credentials"}
        answer = (
            self.token_in_query_json_empty_body(params) if in_query else self.token_in_form(params)
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["client_access_token"]
        return token

    def refresh_in_query(self, refresh_token: str) -> httpx.Response:
        return self.http.post(
            self.sandbox.token_url,
            params={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=self.basic,
        )

    # -- resources -------------------------------------------------------------------------
    def get(self, url: str, token: str, **params: str | int) -> httpx.Response:
        """GET with a bearer token; ``params`` join a query the URL may already carry."""
        merged = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        return self.http.get(merged, headers={"Authorization": f"Bearer {token}"})

    def espi(self, path: str) -> str:
        return f"{self.sandbox.espi_base}/{path}"
