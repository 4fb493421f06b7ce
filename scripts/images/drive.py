"""The containerised demo's customer and operator, run in a container of the demo pod.

Started by scripts/images/pod.py with the fetcher image's Python (httpx and lxml, nothing else
of ours). It reaches the services only as the outside world does, through the chart's rendered
Ingress routes (/demo/routes.json: host, path prefix, in-pod backend): a request to
PUBLIC_BASE_URL goes to the backend of the longest matching path with the original Host and
X-Forwarded-Proto, as the ingress controller sends it. The custodian's consent pages are reached
by their own name, verified against the sandbox's CA (CUSTODIAN_CA_FILE).

Steps, as `scwadd run --demo` takes them (tools/devstack): the landing page, the custodian's
consent form (approve), the callback, the status page until the job ends; then the job must be
done and the grant revoked, and the operator lists /output/ and downloads the newest CSV, which
must hold readings. Exit 0 when all of that held; the CSV is left in /demo/out.
"""

from __future__ import annotations

import csv
import io
import json
import os
import ssl
import sys
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from lxml import html

TIMEOUT = 600.0  # seconds the job may take from consent to revocation
ROUTES = json.loads(Path("/demo/routes.json").read_text())


class Ingress(httpx.HTTPTransport):
    """Sends requests for the ingress host to the in-pod backend of the matching route."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        for route in ROUTES:
            if route["host"] == host and request.url.path.startswith(route["path"]):
                # A new request: the client keeps the public URL on its own, for its cookies.
                headers = request.headers.copy()
                headers["Host"] = host
                headers["X-Forwarded-Proto"] = request.url.scheme
                headers["X-Forwarded-Host"] = host
                backend = request.url.copy_with(
                    scheme="http", host=route["service"], port=route["port"]
                )
                forwarded = httpx.Request(
                    request.method, backend, headers=headers, content=request.read()
                )
                return super().handle_request(forwarded)
        return super().handle_request(request)


def submit_form(
    client: httpx.Client, page_url: str, page: str, button: str | None = None
) -> httpx.Response:
    """Submits the page's first form as a browser would: its own values and one button."""
    form = html.fromstring(page).forms[0]
    values = dict(form.form_values())
    if button is not None:
        name, _, value = button.partition("=")
        values[name] = value
    target = urljoin(page_url, form.action or page_url)
    return client.request((form.method or "GET").upper(), target, data=values)


def main() -> int:
    public = os.environ["PUBLIC_BASE_URL"]
    verify = ssl.create_default_context(cafile=os.environ["CUSTODIAN_CA_FILE"])
    operator = (os.environ["OPERATOR_USER"], os.environ["OPERATOR_PASSWORD"])
    with httpx.Client(transport=Ingress(verify=verify), timeout=30.0) as client:
        print(f"demo: the customer opens {public}/", flush=True)
        landing = client.get(f"{public}/")
        landing.raise_for_status()
        to_custodian = submit_form(client, f"{public}/", landing.text)
        consent_url = to_custodian.headers["location"]
        print(f"demo: consent at {urlsplit(consent_url).netloc}: approve", flush=True)
        consent = client.get(consent_url)
        consent.raise_for_status()
        back = submit_form(client, consent_url, consent.text, "decision=approve")
        callback_url = back.headers["location"]
        callback = client.get(callback_url)
        if callback.status_code not in (302, 303):
            print(f"demo: the callback answered {callback.status_code}, not a redirect")
            return 1
        status_url = urljoin(callback_url, callback.headers["location"])
        status_id = status_url.rstrip("/").rsplit("/", 1)[-1]
        view = wait_for_job(client, urljoin(status_url, f"/api/status/{status_id}"))
        if view.get("phase") != "done":
            print(f"demo: the job failed: {view.get('message')}")
            return 1
        listing = client.get(f"{public}/output/", params={"format": "json"}, auth=operator)
        listing.raise_for_status()
        exports = [
            e
            for e in listing.json()["exports"]
            if str(e["name"]).endswith(".csv") and not str(e["name"]).endswith(".bills.csv")
        ]
        if not exports:
            print("demo: the files service lists no CSV")
            return 1
        name = str(max(exports, key=lambda e: str(e["modified"]))["name"])
        body = client.get(f"{public}/output/{name}", auth=operator)
        body.raise_for_status()
    target = Path("/demo/out") / Path(name).name
    target.write_bytes(body.content)
    rows = sum(1 for _ in csv.DictReader(io.StringIO(body.content.decode("utf-8-sig"))))
    revoked = bool(view.get("revoked"))
    print(f"demo: operator downloaded {name}: {rows} rows")
    print(f"demo: grant revoked: {'yes' if revoked else 'no'}")
    return 0 if rows > 0 and revoked else 1


def wait_for_job(client: httpx.Client, url: str) -> dict[str, object]:
    deadline = time.monotonic() + TIMEOUT
    seen = ""
    while time.monotonic() < deadline:
        view: dict[str, object] = client.get(url).json()
        phase = str(view.get("phase"))
        if phase != seen:
            print(f"demo: status {phase}: {view.get('message', '')}", flush=True)
            seen = phase
        if phase in ("done", "failed"):
            return view
        time.sleep(1.0)
    raise TimeoutError(f"the job did not end within {TIMEOUT:.0f} s (last phase: {seen})")


if __name__ == "__main__":
    sys.exit(main())
