"""Helpers for the sandbox tests: the consent dance and token exchanges over real HTTP."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
from scwadd_sandbox.testing import RunningSandbox, submit_consent

YEAR = 365 * 86400


def consent(
    sandbox: RunningSandbox,
    profile: str = "electric-15min",
    history: int = YEAR,
    state: str = "s-123",
    decision: str = "approve",
    share: str = "all",
) -> httpx.Response:
    """Drive the real consent page as a browser would: GET the page, POST its form."""
    query = httpx.QueryParams(
        {
            "client_id": sandbox.client_id,
            "redirect_uri": sandbox.redirect_uri,
            "response_type": "code",
            "state": state,
            "login": "guest",
        }
    )
    with sandbox.web_client() as web:
        return submit_consent(
            web,
            f"{sandbox.authorize_url}?{query}",
            profile=profile,
            history_days=history // 86400,
            decision=decision,
            share=share,
        )


def query_of(location: str) -> dict[str, str]:
    return dict(httpx.URL(location).params)


def approve(
    sandbox: RunningSandbox,
    profile: str = "electric-15min",
    history: int = YEAR,
    share: str = "all",
) -> str:
    response = consent(sandbox, profile, history, share=share)
    assert response.status_code == 302
    return query_of(response.headers["location"])["code"]


@dataclass
class Grant:
    access_token: str
    refresh_token: str
    subscription_id: str
    authorization_id: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def exchange(sandbox: RunningSandbox, api: httpx.Client, code: str) -> Grant:
    response = api.post(
        sandbox.token_url,
        auth=sandbox.basic_auth,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": sandbox.redirect_uri,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Grant(
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        subscription_id=body["resourceURI"].rsplit("/", 1)[1],
        authorization_id=body["authorizationURI"].rsplit("/", 1)[1],
        body=body,
    )


def grant_for(
    sandbox: RunningSandbox,
    api: httpx.Client,
    profile: str = "electric-15min",
    history: int = YEAR,
    share: str = "all",
) -> Grant:
    return exchange(sandbox, api, approve(sandbox, profile, history, share))


def client_token(sandbox: RunningSandbox, api: httpx.Client) -> dict[str, str]:
    response = api.post(
        sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['client_access_token']}"}


@dataclass
class Receiver:
    """A real HTTPS notification endpoint (dev server certificate) that records BatchLists."""

    url: str
    bodies: list[bytes] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)
        return list(self.bodies)
