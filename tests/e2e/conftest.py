"""The whole system for end-to-end tests: nats-server and the four services as separate
processes (started by the same devstack as `make run`), the sandbox custodian in-process so the
tests can read its books (issued tokens, call counters, revocations) directly."""

from __future__ import annotations

import asyncio
import csv
import io
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from scwadd_devstack.demo import Consent, give_consent, submit_form, wait_for_job
from scwadd_devstack.stack import OPERATOR_USER, ExternalCustodian, Stack, StackConfig, StackPorts
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

EVENTS_STREAM = "SCWADD_EVENTS"


@dataclass
class System:
    stack: Stack
    sandbox: RunningSandbox

    def browser_client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.stack.pki.ca_cert))
        return httpx.Client(verify=verify, timeout=30.0)

    def customer_id(self, profile: str) -> str:
        return next(
            c.retail_customer_id for c in self.sandbox.state.customers if c.profile == profile
        )

    def consent(self, profile: str) -> tuple[Consent, dict[str, Any]]:
        """One customer through the real pages; waits for the job to end."""
        with self.browser_client() as client:
            consent = give_consent(self.stack, client, self.customer_id(profile))
            view = wait_for_job(client, consent, timeout=300)
        return consent, view

    def authorization_for(self, profile: str) -> dict[str, Any]:
        records = [
            r.public_view()
            for r in self.sandbox.state.authorizations.values()
            if r.customer.profile == profile
        ]
        return max(records, key=lambda r: r["created_at"])

    def operator(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.operator_url,
            auth=(OPERATOR_USER, self.stack.secrets.operator_password),
            timeout=30.0,
        )

    def exports(self) -> list[dict[str, Any]]:
        with self.operator() as client:
            listing = client.get("", params={"format": "json"})
            listing.raise_for_status()
            return list(listing.json()["exports"])

    def export_for(self, subscription_id: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The CSV rows and manifest of the export made for one subscription."""
        with self.operator() as client:
            for entry in self.exports():
                name = str(entry["name"])
                if not name.endswith(".manifest.json"):
                    continue
                manifest: dict[str, Any] = client.get(name).json()
                if manifest.get("subscription_id") == subscription_id:
                    csv_name = name.removesuffix(".manifest.json") + ".csv"
                    body = client.get(csv_name)
                    body.raise_for_status()
                    text = body.content.decode("utf-8-sig")
                    return list(csv.DictReader(io.StringIO(text))), manifest
        raise AssertionError(f"no export for subscription {subscription_id}")

    def subject_counts(self) -> dict[str, int]:
        async def read() -> dict[str, int]:
            connection = await nats.connect(self.stack.nats_url)
            try:
                info = await connection.jetstream().stream_info(EVENTS_STREAM, subjects_filter=">")
                return dict(info.state.subjects or {})
            finally:
                await connection.close()

        return asyncio.run(read())

    def token_calls(self) -> int:
        """Calls our client made to the custodian's token endpoint, of every grant type."""
        report = self.sandbox.state.call_report()
        return int(report["by_client"].get(self.sandbox.client_id, {}).get("token", 0))

    def log_text(self) -> str:
        logs = self.stack.run_dir / "logs"
        return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log")))


def scaled(value: int, multiplier: int, uom: int) -> Decimal:
    """A raw ESPI value in the CSV's unit: kWh for Wh (72), therms as they are (169)."""
    amount = Decimal(value).scaleb(multiplier)
    return amount / 1000 if uom == 72 else amount


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    run_dir: Path = tmp_path_factory.mktemp("stack")
    ports = StackPorts.free()
    with start_sandbox(
        run_dir / "pki",
        redirect_uri=f"http://127.0.0.1:{ports.auth}/OAuthCallback",
        notification_uri=f"https://127.0.0.1:{ports.fetcher}/espi/notify",
        # Late like PG&E's (10-40 s there), shortened for the suite.
        notification_delay=(1.0, 3.0),
    ) as sandbox:
        config = StackConfig(
            run_dir=run_dir,
            ports=ports,
            custodian=ExternalCustodian(
                sandbox.web_url, sandbox.api_url, sandbox.client_id, sandbox.client_secret
            ),
        )
        with Stack(config) as stack:
            yield System(stack, sandbox)


__all__ = ["System", "scaled", "submit_form"]
