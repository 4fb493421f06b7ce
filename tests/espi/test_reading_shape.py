"""The one-shape reading pattern reads exactly what the general pattern reads, or declines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scwadd_espi import _reading_scan as scan

_CHILDREN = st.fixed_dictionaries(
    {
        "cost": st.one_of(st.none(), st.integers(-99, 10**6)),
        "qualities": st.lists(st.integers(0, 20), max_size=2),
        "start_first": st.booleans(),
        "value": st.one_of(st.none(), st.integers(-(10**9), 10**9)),
        "tier": st.one_of(st.none(), st.integers(0, 5)),
        "tou": st.one_of(st.none(), st.integers(0, 5)),
        "cpp": st.one_of(st.none(), st.integers(0, 5)),
        "start": st.integers(0, 2 * 10**9),
        "duration": st.sampled_from([900, 3600, 86400]),
        "junk": st.sampled_from([b"", b"", b"", b" ", b"<!-- x -->", b"x"]),
    }
)


def _reading(p: bytes, r: dict[str, object]) -> bytes:
    def element(name: str, value: object) -> bytes:
        return b"<%s%s>%s</%s%s>" % (p, name.encode(), str(value).encode(), p, name.encode())

    parts = [element("cost", r["cost"])] if r["cost"] is not None else []
    for code in r["qualities"]:  # type: ignore[attr-defined]
        parts.append(b"<%sReadingQuality>%s</%sReadingQuality>" % (p, element("quality", code), p))
    period = [element("duration", r["duration"]), element("start", r["start"])]
    if r["start_first"]:
        period.reverse()
    parts.append(b"<%stimePeriod>%s</%stimePeriod>" % (p, b"".join(period), p))
    for name, key in (("value", "value"), ("consumptionTier", "tier"), ("tou", "tou")):
        if r[key] is not None:
            parts.append(element(name, r[key]))
    if r["cpp"] is not None:
        parts.append(element("cpp", r["cpp"]))
    body = b"".join(parts)
    return b"<%sIntervalReading>%s</%sIntervalReading>%s" % (p, body, p, r["junk"])


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"ns0:", b"espi:"]),
    first=_CHILDREN,
    others=st.lists(_CHILDREN, max_size=6),
    same_shape=st.booleans(),
)
def test_one_shape_reads_what_the_general_pattern_reads(
    prefix: bytes, first: dict[str, object], others: list[dict[str, object]], same_shape: bool
) -> None:
    if same_shape:  # mostly the case the pattern is for: every reading shaped like the first
        keep = ("cost", "qualities", "start_first", "value", "tier", "tou", "cpp")
        others = [{**o, **{k: first[k] for k in keep}, "junk": b""} for o in others]
    run = b"".join(_reading(prefix, r) for r in [first, *others]).rstrip(b" x")
    if run.endswith(b"-->"):
        run = run[: run.rfind(b"<!--")]
    quick = scan._read_one_shape(run, prefix)
    columns = scan._columns(run, prefix)
    if quick is None:
        return
    assert columns is not None, "the one-shape pattern accepted a run the general one refuses"
    general = _general(run, prefix)
    assert general is not None and quick.columns == general.columns


def _general(run: bytes, prefix: bytes) -> scan.ReadingColumns | None:
    original = scan._read_one_shape
    try:
        scan._read_one_shape = lambda run, prefix: None  # type: ignore[assignment]
        return scan._read(run, prefix)
    finally:
        scan._read_one_shape = original


def test_a_plain_run_takes_the_one_shape_pattern() -> None:
    run = b"".join(
        b"<ns0:IntervalReading><ns0:timePeriod><ns0:duration>900</ns0:duration>"
        b"<ns0:start>%d</ns0:start></ns0:timePeriod><ns0:value>%d</ns0:value>"
        b"</ns0:IntervalReading>" % (900 * n, n)
        for n in range(5)
    )
    quick = scan._read_one_shape(run, b"ns0:")
    assert quick is not None and list(quick.columns[2]) == [0, 1, 2, 3, 4]
    assert scan._read_one_shape(run.replace(b"><ns0:Int", b">\n<ns0:Int", 1), b"ns0:") is None
