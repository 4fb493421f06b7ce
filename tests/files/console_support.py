"""The console's test world: a year (or less) of PG&E-shaped Green Button data, the events the
other services publish about a job, and the objects they store, over a real nats-server."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from scwadd_core.bus import Bus
from scwadd_core.events import (
    EXPORTS_BUCKET,
    RAW_BUCKET,
    ExportCompleted,
    FetchCompleted,
    FetchFailed,
    GrantReceived,
    GrantRevoked,
    JobProgress,
    SealedSecret,
)
from scwadd_espi.convert import convert
from scwadd_espi.localtime import local_time_parameters_for
from scwadd_espi.model import DateTimeInterval, IntervalBlock, IntervalReading, Quality, UsagePoint
from scwadd_espi.sample import ELECTRIC, GAS, SAMPLE_ZONE, SOLAR_EXPORT, local_days
from scwadd_espi.writer import MeterReadingData, UsagePointData, write_usage_feed

SEALED = SealedSecret(kid="test", nonce="AAAAAAAAAAAAAAAA", ciphertext="AAAA")


def _blocks(first: date, days: int, interval: int, kind: str) -> Iterator[IntervalBlock]:
    for number, (start, end) in enumerate(local_days(first, days, SAMPLE_ZONE)):
        readings = []
        for moment in range(start, end, interval):
            if kind in ("delivered", "received") and number == 3 and moment % 86400 < 7200:
                continue  # two hours missing on the fourth day: a gap
            hour = datetime.fromtimestamp(moment, UTC).astimezone(SAMPLE_ZONE).hour
            if kind == "delivered":
                value = 100_000 + 150_000 * int(17 <= hour <= 21) + (moment // interval) % 7 * 1000
            elif kind == "received":
                value = int(max(0.0, math.sin(math.pi * (hour - 7) / 10)) * 300_000)
            else:
                value = 20 + 40 * int(6 <= hour <= 9)
            # Every 50th reading estimated: a known share.
            quality = (
                (Quality.ESTIMATED_USING_REFERENCE_DAY,)
                if (moment // interval) % 50 == 0
                else (Quality.VALID,)
            )
            if kind == "delivered" and number == 5 and moment == start:
                # One reading without a value (espi.xsd allows it): unknown, not zero.
                readings.append(IntervalReading(moment, interval, None, None, quality))
                continue
            readings.append(IntervalReading(moment, interval, value, None, quality))
        yield IntervalBlock(DateTimeInterval(start, end - start), readings)


def feed(first: date, days: int, *, gas: bool = True, subscription: str = "SUB") -> bytes:
    """One PG&E-style usage feed: 15-minute electricity delivered and received, hourly gas."""
    local_time = local_time_parameters_for(SAMPLE_ZONE, first.year)
    points = [
        UsagePointData(
            id="1111111111",
            usage_point=UsagePoint(kind=0),
            meter_readings=[
                MeterReadingData("RUxFQ1Q", ELECTRIC, _blocks(first, days, 900, "delivered")),
                MeterReadingData("UkVDRUk", SOLAR_EXPORT, _blocks(first, days, 900, "received")),
            ],
            local_time=local_time,
            title="Electric service",
        )
    ]
    if gas:
        points.append(
            UsagePointData(
                id="2222222222",
                usage_point=UsagePoint(kind=1),
                meter_readings=[MeterReadingData("R0FT", GAS, _blocks(first, days, 3600, "gas"))],
                local_time=local_time,
                title="Gas service",
            )
        )
    out = io.BytesIO()
    write_usage_feed(out, subscription, points, style="pge")
    return out.getvalue()


async def publish_exported_job(
    bus: Bus,
    job_id: str,
    subscription: str,
    *,
    first: date,
    days: int,
    promised_days: int = 365,
    consented: datetime | None = None,
    revoked: str | None = "revoked",
    reason: str | None = None,
    gas: bool = True,
    manifest_extra: dict[str, Any] | None = None,
) -> tuple[bytes, bytes]:
    """Everything the other services do for one exported job; returns the default CSV and the
    raw Green Button document."""
    consented = consented or datetime.now(UTC)
    raw = feed(first, days, gas=gas, subscription=subscription)
    raw_name = f"{job_id}/0.xml"
    await (await bus.object_store(RAW_BUCKET)).put(raw_name, raw)
    out = io.BytesIO()
    report = convert([io.BytesIO(raw)], out, layout="default", names=[raw_name])
    csv_name = f"{subscription}-{consented:%Y-%m-%d}-{job_id[:8]}.csv"
    manifest_name = csv_name.removesuffix(".csv") + ".manifest.json"
    end = datetime.combine(first + timedelta(days=days), datetime.min.time(), UTC)
    promised_start = end - timedelta(days=promised_days)
    manifest = {
        "job_id": job_id,
        "csv": csv_name,
        "csv_layout": "default",
        "requested_period": {"start": promised_start.isoformat(), "end": end.isoformat()},
        **report.to_dict(),
        **(manifest_extra or {}),
    }
    exports = await bus.object_store(EXPORTS_BUCKET)
    await exports.put(csv_name, out.getvalue())
    await exports.put(manifest_name, json.dumps(manifest, default=str).encode())
    await bus.publish(
        GrantReceived(
            job_id=job_id,
            occurred_at=consented,
            subscription_id=subscription,
            resource_uri="https://custodian.test/resource/Subscription/" + subscription,
            authorization_uri="https://custodian.test/resource/Authorization/" + job_id,
            scope="FB=1_3_4_5_13_14_39;IntervalDuration=900",
            access_token=SEALED,
        )
    )
    await bus.publish(
        FetchCompleted(
            job_id=job_id,
            subscription_id=subscription,
            raw_objects=[raw_name],
            usage_points=["1111111111"],
            period_start=promised_start,
            period_end=end,
            custodian_calls=3,
        )
    )
    await bus.publish(
        ExportCompleted(
            job_id=job_id, csv_object=csv_name, manifest_object=manifest_name, rows=report.rows
        )
    )
    if revoked:
        await bus.publish(GrantRevoked(job_id=job_id, outcome=revoked, reason=reason))  # type: ignore[arg-type]
    return out.getvalue(), raw


async def publish_failed_job(bus: Bus, job_id: str, subscription: str, why: str) -> None:
    await bus.publish(
        GrantReceived(
            job_id=job_id,
            subscription_id=subscription,
            resource_uri="https://custodian.test/resource/Subscription/" + subscription,
            authorization_uri="https://custodian.test/resource/Authorization/" + job_id,
            scope="FB=1",
            access_token=SEALED,
        )
    )
    await bus.publish(FetchFailed(job_id=job_id, reason=why))
    await bus.publish(JobProgress(job_id=job_id, phase="failed", message=why))
    await bus.publish(GrantRevoked(job_id=job_id, outcome="revoked"))
