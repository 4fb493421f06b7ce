"""The ESPI (Green Button) engine: a streaming, safe parser, a writer, and CSV layouts.

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
- :mod:`.convert_cli` — ``scwadd convert``.
"""
