"""`--customers N`: more sandbox customers than the five profiles, each with a grant of its own."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import pytest
from lxml import html
from sandbox_helpers import exchange, query_of
from scwadd_core import devpki
from scwadd_sandbox import data
from scwadd_sandbox.cli import config_from_args, register
from scwadd_sandbox.testing import RunningSandbox, start_sandbox

PROFILES = ["electric-15min", "electric-60min", "solar", "gas-electric", "multi-site"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["sandbox", *argv])


def test_the_default_book_is_unchanged_and_more_customers_extend_it() -> None:
    five = data.build_customers(7)
    assert [c.profile for c in five] == PROFILES
    assert [c.name for c in five] == [
        "Avery Quinn",
        "Blake Romero",
        "Casey Nakamura",
        "Devon Okafor",
        "Emery Valdez",
    ]
    twenty = data.build_customers(7, 20)
    assert twenty[:5] == five
    assert [c.profile for c in twenty] == PROFILES * 4
    assert twenty == data.build_customers(7, 20)  # deterministic

    def distinct(values: list[str]) -> bool:
        return len(values) == len(set(values))

    assert distinct([c.retail_customer_id for c in twenty])
    assert distinct([c.name for c in twenty])
    points = [p for c in twenty for p in c.service_points]
    assert distinct([p.usage_point_id for p in points])
    # MeterReading ids are PG&E's: derived from the ReadingType, unique within a UsagePoint.
    assert all(distinct([m.meter_reading_id for m in p.meters]) for p in points)
    # The same profile, yet a meter of its own: its readings differ from the first customer's.
    first, sixth = twenty[0].service_points[0], twenty[5].service_points[0]
    assert first.address != sixth.address
    start = data.pacific_midnight(1_700_000_000)

    def day_of(point: data.ServicePoint) -> list[int]:
        meter = point.meters[0]
        return [r.value for r in data.readings(7, point, meter, start, start + 86400)]

    assert len(day_of(first)) == len(day_of(sixth)) == 96
    assert day_of(first) != day_of(sixth)
    with pytest.raises(ValueError, match="at least one customer"):
        data.build_customers(7, 0)


def test_the_customers_flag(pki: devpki.DevPki, capsys: pytest.CaptureFixture[str]) -> None:
    assert config_from_args(_args(), pki)[0].customers == 5
    assert config_from_args(_args("--customers", "20"), pki)[0].customers == 20
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            _args("--customers", bad)
    assert "--customers" in capsys.readouterr().err


def _approve(sandbox: RunningSandbox, retail_customer_id: str, state: str) -> str:
    """The consent page, signed in as one given customer; returns the code."""
    query = httpx.QueryParams(
        {
            "client_id": sandbox.client_id,
            "redirect_uri": sandbox.redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    with sandbox.web_client() as web:
        page = web.get(f"{sandbox.authorize_url}?{query}")
        assert page.status_code == 200
        form = html.fromstring(page.text).forms[0]
        offered = form.inputs["customer"].value_options
        assert retail_customer_id in offered
        values = dict(form.form_values()) | {
            "customer": retail_customer_id,
            "decision": "approve",
        }
        answer = web.post(sandbox.authorize_url, data=values)
    assert answer.status_code == 302, answer.text
    return query_of(answer.headers["location"])["code"]


def test_customers_of_one_profile_keep_their_own_grants(pki_dir: Path) -> None:
    with start_sandbox(pki_dir, customers=12) as sandbox:
        assert len(sandbox.state.customers) == 12
        # Customers 0, 5 and 10 share the electric-15min profile.
        chosen = [sandbox.state.customers[i] for i in (0, 5, 10)]
        assert {c.profile for c in chosen} == {"electric-15min"}
        with sandbox.api_client() as api:
            grants = [
                exchange(sandbox, api, _approve(sandbox, c.retail_customer_id, f"s{i}"))
                for i, c in enumerate(chosen)
            ]
            # Re-authorization cancels only the same customer's grant: all three stay active.
            for grant, customer in zip(grants, chosen, strict=True):
                record = sandbox.state.authorizations[grant.authorization_id]
                assert record.active
                assert record.customer == customer
                feed = api.get(
                    f"{sandbox.espi_base}/Subscription/{grant.subscription_id}/UsagePoint",
                    headers=grant.headers,
                )
                assert feed.status_code == 200
                own = customer.service_points[0].usage_point_id
                assert f"UsagePoint/{own}" in feed.text
                others = {c.service_points[0].usage_point_id for c in chosen} - {own}
                assert not any(f"UsagePoint/{up}" in feed.text for up in others)
