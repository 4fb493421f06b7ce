"""The public API a Python user meets first: ``from scwadd_espi import ...``."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import scwadd_espi
from espi_support import OneWayStream
from scwadd_espi import ConversionError, EspiParseError, convert, iter_readings

DATA = Path(__file__).parent / "data"


def test_the_package_exports_its_api() -> None:
    for name in scwadd_espi.__all__:
        assert getattr(scwadd_espi, name) is not None
    assert scwadd_espi.LAYOUTS == ("default", "pge", "scwadd")


@pytest.mark.parametrize("kind", ["path", "bytes", "stream"])
def test_readings_per_channel_typed_and_exact(kind: str) -> None:
    path = DATA / "tier-channels-same-interval.xml"
    source: object = {
        "path": path,
        "bytes": path.read_bytes(),
        "stream": io.BufferedReader(OneWayStream(path.read_bytes())),
    }[kind]
    readings = list(iter_readings(source))  # type: ignore[arg-type]
    assert len(readings) == 2
    by_tou = {r.tou: r for r in readings}
    assert by_tou[3].value == Decimal("46.8246")
    assert by_tou[1].value == Decimal("16.4178")
    assert isinstance(by_tou[1].value, Decimal)
    assert by_tou[1].channel != by_tou[3].channel  # two channels, never merged
    assert by_tou[1].channel.meter_reading.endswith("/MeterReading/1")
    assert {r.channel.unit for r in readings} == {"kWh"}
    assert {r.channel.flow_direction for r in readings} == {1}
    assert {r.start for r in readings} == {datetime(2025, 12, 8, 5, tzinfo=UTC)}
    assert {r.duration for r in readings} == {86400}


def test_cost_is_in_currency_units_and_gas_in_its_unit() -> None:
    data = (DATA / "empty-local-time-parameters-gas-m3.xml").read_bytes()
    readings = list(iter_readings(data, name="gas.xml"))
    assert [r.value for r in readings] == [Decimal(212), Decimal(198), Decimal(172)]
    assert {r.channel.unit for r in readings} == {"m3"}
    assert {r.channel.service for r in readings} == {"gas"}
    with_cost = data.replace(
        b"<espi:IntervalReading>", b"<espi:IntervalReading><espi:cost>123456</espi:cost>", 1
    )
    assert with_cost != data
    assert next(iter_readings(with_cost)).cost == Decimal("1.23456")


def test_errors_name_the_file() -> None:
    with pytest.raises(EspiParseError, match=r"^broken\.xml:1:"):
        list(iter_readings(b"<feed><entry>", name="broken.xml"))
    data = (DATA / "two-blocks-in-one-entry.xml").read_bytes()
    # The MeterReading moves to /9: nothing lists the blocks' collection /3/IntervalBlock any more.
    orphan = data.replace(b'UP1/MeterReading/3"/>', b'UP1/MeterReading/9"/>').replace(
        b'MeterReading/3/IntervalBlock"/><link rel="related"',
        b'MeterReading/9/IntervalBlock"/><link rel="related"',
    )
    assert orphan.count(b"MeterReading/9") == 2
    with pytest.raises(
        ConversionError, match=r"^orphan\.xml:\d+: IntervalBlock entry: no MeterReading"
    ):
        list(iter_readings(orphan, name="orphan.xml"))


def test_convert_from_the_package_root() -> None:
    out = io.BytesIO()
    report = convert([DATA / "two-blocks-in-one-entry.xml"], out)
    assert report.rows == 2
    assert report.to_dict()["usage_points"][0]["reading_types"][0]["readings_written"] == 2
