"""`scwadd run --demo`: one sandbox customer through consent and out the other end, unattended.

It clicks through the same pages a customer sees (landing page, the custodian's consent form,
the callback, the status page) with plain HTTP form posts, then checks the result where the
operator and the custodian would: the files service and the sandbox's authorization list.
"""

from __future__ import annotations

import csv
import io
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
from lxml import html

from scwadd_devstack.bill_summary import bill_summary
from scwadd_devstack.stack import OPERATOR_USER, Stack

TERMINAL_PHASES = ("done", "failed")
# The exporter's bills beside the interval CSV (`<export>.bills.csv`): not the export's CSV.
BILLS_SUFFIX = ".bills.csv"


@dataclass(frozen=True)
class Consent:
    status_url: str
    status_json_url: str


@dataclass(frozen=True)
class DemoResult:
    phase: str
    revoked: bool
    csv_name: str
    csv_path: Path
    rows: int


def submit_form(
    client: httpx.Client, page_url: str, page: str, button: str | None = None, **choices: str
) -> httpx.Response:
    """Submits the page's first form as a browser would: its own values, one button, choices."""
    form = html.fromstring(page).forms[0]
    values = dict(form.form_values())
    if button is not None:
        name, _, value = button.partition("=")
        values[name] = value
    values.update(choices)
    target = urljoin(page_url, form.action or page_url)
    return client.request((form.method or "GET").upper(), target, data=values)


def give_consent(
    stack: Stack, client: httpx.Client, customer: str | None = None, share: str | None = None
) -> Consent:
    """Landing page → custodian consent (approve) → callback → status page. ``share`` is the
    consent form's choice (``all``: usage, bills and account details; ``usage``: usage only);
    the form's own default when None."""
    landing = client.get(stack.customer_url)
    landing.raise_for_status()
    to_custodian = submit_form(client, stack.customer_url, landing.text)
    consent_url = to_custodian.headers["location"]
    consent = client.get(consent_url)
    consent.raise_for_status()
    choices = {"customer": customer} if customer else {}
    if share is not None:
        choices["share"] = share
    back = submit_form(client, consent_url, consent.text, "decision=approve", **choices)
    callback_url = back.headers["location"]
    callback = client.get(callback_url)
    if callback.status_code not in (302, 303):
        raise RuntimeError(f"the callback answered {callback.status_code}, not a redirect")
    status_url = urljoin(callback_url, callback.headers["location"])
    status_id = status_url.rstrip("/").rsplit("/", 1)[-1]
    return Consent(status_url, urljoin(status_url, f"/api/status/{status_id}"))


def wait_for_job(client: httpx.Client, consent: Consent, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        view: dict[str, object] = client.get(consent.status_json_url).json()
        phase = str(view.get("phase"))
        if phase != seen:
            print(f"  status: {phase} — {view.get('message', '')}", flush=True)
            seen = phase
        if phase in TERMINAL_PHASES:
            return view
        time.sleep(1.0)
    raise TimeoutError(f"the job did not finish within {timeout:.0f} s (last phase: {seen})")


def newest_export(stack: Stack, client: httpx.Client) -> str:
    auth = (OPERATOR_USER, stack.secrets.operator_password)
    listing = client.get(stack.operator_url, params={"format": "json"}, auth=auth)
    listing.raise_for_status()
    entries = [
        e
        for e in listing.json()["exports"]
        if str(e["name"]).endswith(".csv") and not str(e["name"]).endswith(BILLS_SUFFIX)
    ]
    if not entries:
        raise RuntimeError("the files service lists no CSV export")
    return str(max(entries, key=lambda e: str(e["modified"]))["name"])


def console_page(stack: Stack, client: httpx.Client, csv_name: str, timeout: float = 60.0) -> str:
    """The console's page of the export named ``csv_name`` (its read model may lag a moment)."""
    auth = (OPERATOR_USER, stack.secrets.operator_password)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(
            urljoin(stack.console_url, "/api/jobs"), params={"limit": 20}, auth=auth
        )
        answer.raise_for_status()
        for job in answer.json()["jobs"]:
            if job["links"].get("csv_as_exported") == f"/output/{csv_name}":
                return urljoin(stack.console_url, str(job["links"]["page"]))
        time.sleep(1.0)
    raise TimeoutError(f"the console does not list {csv_name} after {timeout:.0f} s")


def run_demo(stack: Stack, timeout: float = 600.0) -> int:
    verify = ssl.create_default_context(cafile=stack.pki.ca_cert)
    with httpx.Client(verify=verify, timeout=30.0) as client:
        print(f"customer opens {stack.customer_url} and approves at the sandbox ...", flush=True)
        consent = give_consent(stack, client)
        print(f"  status page: {consent.status_url}", flush=True)
        view = wait_for_job(client, consent, timeout)
        if view.get("phase") != "done":
            print(f"the job failed: {view.get('message')}")
            return 1
        name = newest_export(stack, client)
        auth = (OPERATOR_USER, stack.secrets.operator_password)
        body = client.get(urljoin(stack.operator_url, name), auth=auth)
        body.raise_for_status()
        console = console_page(stack, client, name)
        manifest_name = name.removesuffix(".csv") + ".manifest.json"
        manifest = client.get(urljoin(stack.operator_url, manifest_name), auth=auth)
        manifest.raise_for_status()
    target = stack.run_dir / "exports" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body.content)
    rows = sum(1 for _ in csv.DictReader(io.StringIO(body.content.decode("utf-8-sig"))))
    print(f"CSV: {target}")
    print(f"console: {console}")
    print(f"rows: {rows}")
    print(f"revoked: {'yes' if view.get('revoked') else 'no'}")
    for line in bill_summary(manifest.json()):
        print(line)
    return 0 if view.get("revoked") else 1
