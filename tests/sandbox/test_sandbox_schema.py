"""Every kind of document the sandbox serves validates against the NAESB ESPI schema.

Runs when ESPI_XSD names espi.xsd (``make test`` sets it from ../shared/reference); customer data
is checked against customer.xsd beside it. The Atom envelope is not part of those schemas (their
atom.xsd import is not shipped), so each ``content`` object is validated on its own and the
envelope's required parts are checked here.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sandbox_helpers import Receiver, client_token, grant_for
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

ESPI_NS = "http://naesb.org/espi"
CUSTOMER_NS = "http://naesb.org/espi/customer"
ATOM = "{http://www.w3.org/2005/Atom}"
DAY = 86400

XSD = os.environ.get("ESPI_XSD")
pytestmark = pytest.mark.skipif(
    not XSD, reason="ESPI_XSD is not set: the schema check needs the official espi.xsd"
)


@pytest.fixture(scope="module")
def schemas() -> dict[str, etree.XMLSchema]:
    assert XSD is not None
    espi = Path(XSD)
    return {
        ESPI_NS: etree.XMLSchema(etree.parse(str(espi))),
        CUSTOMER_NS: etree.XMLSchema(etree.parse(str(espi.with_name("customer.xsd")))),
    }


def _validate(body: bytes, schemas: dict[str, etree.XMLSchema], what: str) -> int:
    """Validate every ESPI object in a document; returns how many were checked."""
    root = etree.fromstring(body)
    if root.tag in (f"{ATOM}feed", f"{ATOM}entry"):
        entries = [root] if root.tag == f"{ATOM}entry" else root.findall(f"{ATOM}entry")
        objects = []
        for entry in entries:
            assert entry.find(f"{ATOM}id") is not None, what
            assert entry.find(f"{ATOM}link[@rel='self']") is not None, what
            content = entry.find(f"{ATOM}content")
            assert content is not None and len(content) == 1, what
            objects.append(content[0])
    else:
        objects = [root]
    for obj in objects:
        namespace = etree.QName(obj).namespace
        schema = schemas[namespace or ""]
        document = etree.ElementTree(etree.fromstring(etree.tostring(obj)))
        assert schema.validate(document), f"{what}: {schema.error_log.last_error}"
    return len(objects)


def _documents(sandbox: RunningSandbox, api: httpx.Client, receiver: Receiver) -> dict[str, bytes]:
    docs: dict[str, bytes] = {}
    base = sandbox.espi_base
    end = sandbox.state.data_end
    window = {"published-min": end - 3 * DAY, "published-max": end}
    client = client_token(sandbox, api)
    docs["ServiceStatus"] = api.get(f"{base}/ReadServiceStatus", headers=client).content
    for profile in ("electric-15min", "electric-60min", "solar", "gas-electric", "multi-site"):
        grant = grant_for(sandbox, api, profile)
        customer = next(c for c in sandbox.state.customers if c.profile == profile)
        sub = f"{base}/Subscription/{grant.subscription_id}"
        docs[f"{profile} UsagePoint feed"] = api.get(
            f"{sub}/UsagePoint", headers=grant.headers
        ).content
        for point in customer.service_points:
            up = f"{sub}/UsagePoint/{point.usage_point_id}"
            docs[f"{profile} UsagePoint"] = api.get(up, headers=grant.headers).content
            docs[f"{profile} UsageSummary feed"] = api.get(
                f"{up}/UsageSummary",
                headers=grant.headers,
                params={"published-min": end - 70 * DAY},
            ).content
            docs[f"{profile} MeterReading feed"] = api.get(
                f"{up}/MeterReading", headers=grant.headers
            ).content
            meter = point.meters[-1]
            mr = f"{up}/MeterReading/{meter.meter_reading_id}"
            docs[f"{profile} MeterReading"] = api.get(mr, headers=grant.headers).content
            docs[f"{profile} ReadingType"] = api.get(
                f"{mr}/ReadingType/{meter.spec.reading_type_id}", headers=grant.headers
            ).content
            docs[f"{profile} IntervalBlock feed"] = api.get(
                f"{mr}/IntervalBlock", headers=grant.headers, params=window
            ).content
            batch = api.get(
                f"{base}/Batch/Subscription/{grant.subscription_id}/UsagePoint/{point.usage_point_id}",
                headers=grant.headers,
                params=window,
            )
            assert batch.status_code == 200
            docs[f"{profile} {point.usage_point_id} Batch"] = batch.content
        docs[f"{profile} RetailCustomer"] = api.get(
            f"{base}/Batch/RetailCustomer/{customer.retail_customer_id}", headers=grant.headers
        ).content
        docs[f"{profile} Authorization"] = api.get(
            grant.body["authorizationURI"], headers=client
        ).content
        if profile == "multi-site":
            assert (
                api.get(grant.body["resourceURI"], headers=grant.headers, params=window).status_code
                == 202
            )
            [notification] = receiver.wait_for(1)
            docs["BatchList"] = notification
            url = etree.fromstring(notification)[0].text or ""
            docs["Batch/Bulk"] = api.get(url, headers=client).content
    docs["LocalTimeParameters"] = api.get(f"{base}/LocalTimeParameters/1", headers=client).content
    docs["Authorization feed"] = api.get(f"{base}/Authorization", headers=client).content
    return docs


def test_every_served_document_validates(
    pki_dir: Path, receiver: Receiver, schemas: dict[str, etree.XMLSchema]
) -> None:
    with (
        start_sandbox(pki_dir, notification_uri=receiver.url) as sandbox,
        sandbox.api_client() as api,
    ):
        documents = _documents(sandbox, api, receiver)
    checked = {what: _validate(body, schemas, what) for what, body in documents.items()}
    assert all(count >= 1 for count in checked.values()), checked
    kinds = {etree.QName(o).localname for body in documents.values() for o in _objects(body)}
    assert kinds >= {
        "ServiceStatus",
        "UsagePoint",
        "MeterReading",
        "ReadingType",
        "IntervalBlock",
        "LocalTimeParameters",
        "Customer",
        "Authorization",
        "BatchList",
        "UsageSummary",
    }


def _objects(body: bytes) -> list[etree._Element]:
    root = etree.fromstring(body)
    if root.tag in (f"{ATOM}feed", f"{ATOM}entry"):
        return [c[0] for c in root.iter(f"{ATOM}content")]
    return [root]
