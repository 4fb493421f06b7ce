"""The ESPI (Green Button) engine: a streaming, safe parser, a writer, and CSV layouts.

The public API (see ``libs/espi/README.md``): :func:`iter_readings` (a file's readings, typed and
exactly scaled, each with its channel), :func:`convert` (documents to one CSV in one of
:data:`LAYOUTS`, returning a :class:`ConversionReport`), :func:`iter_entries` (the ESPI objects
themselves), and the errors :class:`EspiParseError` and :class:`ConversionError`.

- :mod:`.model` — the data model (frozen dataclasses; raw integers, epoch seconds).
- :mod:`.writer` — streaming, schema-valid ESPI XML in PG&E's or the generic style.
- :mod:`.parser` — ``iter_entries(source)``: streaming, hostile-input-safe reading; the element
  readers both routes share are in :mod:`._elements`, the split reader in :mod:`._split`, the
  byte-level reading scan in :mod:`._reading_scan` (imports run one way: parser → _split →
  _reading_scan → _elements).
- :mod:`.resolve` — ``Resolver``: UsagePoint → MeterReading → ReadingType / IntervalBlock and
  LocalTimeParameters through link hrefs, in any entry order.
- :mod:`.convert` — ``convert(inputs, out, layout, tz) -> ConversionReport``: documents → one CSV
  and the facts for a manifest, using :mod:`.layouts` (the CSV layouts, ``docs/csv.md``),
  :mod:`.report` (the report), :mod:`._spool` (readings on disk) and :mod:`._clock` (local time).
- :mod:`.localtime` — DST rule bitfields and a ``tzinfo`` from LocalTimeParameters.
- :mod:`.sample` — a generated PG&E-shaped sample feed.
- :mod:`.readings` — ``iter_readings(source)``: typed, exactly scaled readings per channel.
- :mod:`.bills` — ``iter_bills(sources)``: UsageSummary documents as typed :class:`Bill` records
  (exact consumption, amounts in dollars, cost lines, tariff, read cycle, quality);
  ``read_customer(sources)``: RetailCustomer name, agreements and service addresses.
- :mod:`.convert_cli` — ``scwadd convert``.
"""

from scwadd_espi.bills import Bill, CostLine, CustomerDetails, iter_bills, read_customer
from scwadd_espi.convert import convert
from scwadd_espi.layouts import DEFAULT_COLUMNS, LAYOUTS, Layout
from scwadd_espi.parser import EspiParseError, ParsedEntry, iter_entries
from scwadd_espi.readings import ChannelInfo, Reading, iter_readings
from scwadd_espi.report import (
    ConversionError,
    ConversionReport,
    Gap,
    InputReport,
    ReadingTypeReport,
    UsagePointReport,
)

__all__ = [
    "DEFAULT_COLUMNS",
    "LAYOUTS",
    "Bill",
    "ChannelInfo",
    "ConversionError",
    "ConversionReport",
    "CostLine",
    "CustomerDetails",
    "EspiParseError",
    "Gap",
    "InputReport",
    "Layout",
    "ParsedEntry",
    "Reading",
    "ReadingTypeReport",
    "UsagePointReport",
    "convert",
    "iter_bills",
    "iter_entries",
    "iter_readings",
    "read_customer",
]
