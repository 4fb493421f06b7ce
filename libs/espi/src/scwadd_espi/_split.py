"""The split reader: a faster way through plain Atom feeds, one entry at a time.

lxml's streaming parser (``iterparse``) costs about twice what its whole-document parser does.
For the common case, a UTF-8 Atom feed with no comments, CDATA sections or processing
instructions after the prolog, the entries can be found with byte searches instead: every
``<{prefix}entry`` is then a start tag, because ``<`` cannot appear raw anywhere else. Each
entry (with whatever feed-level elements follow it) is parsed on its own with the same safe
parser settings, inside a wrapper element carrying the feed's namespace declarations, so memory
stays one entry large and the bytes between entries are checked as strictly as the rest.

A first pass over the bytes decides whether a document qualifies; anything unusual (another
encoding, a comment, a DOCTYPE, an entry-less stretch over 16 MiB, a root that is not an Atom
feed, a malformed end) leaves it to ``iterparse``, which also gives the precise error. Errors
found here are reported with their line and column in the original document.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from lxml import etree

from scwadd_espi._elements import (
    EspiParseError,
    ParsedEntry,
    _check_depth,
    _entry,
    _local,
    _namespace,
    _Reader,
    _syntax_message,
    declares_utf8,
)
from scwadd_espi._reading_scan import cut_readings
from scwadd_espi.model import ATOM_NS, IntervalReading

_BLOCK = 1 << 20
_MAX_SEGMENT = 16 << 20
_HEAD = 1 << 16
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_START_TAG = re.compile(
    rb"<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)"
    rb"((?:\s+[A-Za-z_][\w.\-:]*\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*(/?)>"
)
# Comments, CDATA, DOCTYPEs and processing instructions: where a "<entry" could hide.
_HIDING_MARKUP = re.compile(rb"<[!?]")
_WRAPPER_NAME = b"scwadd-split"
_SEGMENT_LINE = re.compile(r"\bline (\d+)\b")
_ONE_LINE = re.compile(rb"[\r\n]")


def _safe_parser() -> etree.XMLParser:
    """The settings iterparse gets in parser.py: no entities, no network, no DTD, size limits."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class _Plan:
    wrapper_open: bytes
    wrapper_close: bytes
    entry_tag: bytes  # b"<ns1:entry" or b"<entry": a start tag when one of _TAG_END follows
    body_start: int  # just after the root start tag
    body_end: int  # where the root end tag begins
    body_line: int  # the line body_start is on
    body_line_start: int  # where that line starts


Opener = Callable[[], IO[bytes]]


def plan(open_stream: Opener) -> _Plan | None:
    """Whether (and how) the document can be split; None sends it to iterparse."""
    with open_stream() as stream:
        head = stream.read(_HEAD)
        if not declares_utf8(head):
            return None
        offset = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        position = offset
        while True:
            item = _PROLOG_ITEM.match(head, position)
            if item is None:
                break
            position = item.end()
        root = _START_TAG.match(head, position)
        if root is None or root.group(3):  # no parsable root tag, or an empty <feed/>
            return None
        qname, attributes = root.group(1), root.group(2)
        try:
            element = etree.fromstring(
                head[position : root.end()] + b"</" + qname + b">",
                _safe_parser(),
            )
        except etree.XMLSyntaxError:
            return None
        if element.tag != f"{{{ATOM_NS}}}feed":
            return None
        prefix = qname[: -len(b"feed")]  # b"ns1:" or b""
        entry_tag = b"<" + prefix + b"entry"
        body_start = root.end()
        # The rest: no markup that could hide a false "<entry", entries not too far apart.
        stream.seek(0)
        data = b""
        consumed = 0  # bytes of the document before data[0]
        last_entry = body_start
        tail = b""
        while True:
            block = stream.read(_BLOCK)
            data = tail + block
            base = consumed - len(tail)
            search_from = max(0, body_start - base)
            # "!" and "?" are rare in ESPI data: look for the markup only where they occur.
            maybe_hidden = data.find(b"!", search_from) >= 0 or data.find(b"?", search_from) >= 0
            if maybe_hidden and _HIDING_MARKUP.search(data, search_from):
                return None
            for found in _entry_starts(data, entry_tag, search_from):
                start = base + found
                if start - last_entry > _MAX_SEGMENT:
                    return None
                last_entry = max(last_entry, start)
            consumed += len(block)
            if not block:
                break
            tail = data[-4096:]  # room for the root end tag and trailing whitespace
        end_tag = re.search(b"</" + re.escape(qname) + rb"\s*>\s*\Z", data)
        if end_tag is None:
            return None
        body_end = base + end_tag.start()
        if body_end - last_entry > _MAX_SEGMENT or body_end < body_start:
            return None
        return _Plan(
            # On one line: the wrapper sits on each segment's first line, so a root tag that spans
            # lines must not move the lines lxml reports (XML normalises the spaces anyway).
            wrapper_open=b"<" + _WRAPPER_NAME + _ONE_LINE.sub(b" ", attributes) + b">",
            wrapper_close=b"</" + _WRAPPER_NAME + b">",
            entry_tag=entry_tag,
            body_start=body_start,
            body_end=body_end,
            body_line=1 + head.count(b"\n", 0, body_start),
            body_line_start=head.rfind(b"\n", 0, body_start) + 1,
        )


# What may follow an element name in a start tag.
_TAG_END = frozenset(b" \t\r\n/>")


def _next_entry(data: bytes, entry_tag: bytes, start: int) -> int:
    """Where the next entry start tag begins, -1 if none is complete in ``data``."""
    end = len(data) - len(entry_tag)
    while True:
        found = data.find(entry_tag, start)
        if found < 0 or found >= end:
            return -1
        if data[found + len(entry_tag)] in _TAG_END:
            return found
        start = found + 1


def _entry_starts(data: bytes, entry_tag: bytes, start: int) -> Iterator[int]:
    found = _next_entry(data, entry_tag, start)
    while found >= 0:
        yield found
        found = _next_entry(data, entry_tag, found + 1)


def split_entries(
    open_stream: Opener,
    layout: _Plan,
    reader: _Reader,
    progress: Callable[[int], None] | None,
) -> Iterator[ParsedEntry]:
    parser = _safe_parser()
    with open_stream() as stream:
        stream.seek(layout.body_start)
        if progress is not None:
            progress(layout.body_start)
        buffer = b""
        base = layout.body_start  # document offset of buffer[0]
        line = layout.body_line  # line of the current segment start
        line_start = layout.body_line_start  # document offset where that line starts
        segment_start = layout.body_start
        exhausted = False
        while True:
            found = _next_entry(buffer, layout.entry_tag, segment_start - base + 1)
            next_start = base + found if found >= 0 else layout.body_end
            must_read = found < 0 or next_start > layout.body_end
            if must_read and not exhausted and base + len(buffer) <= layout.body_end:
                # Drop what is consumed, then read on: one copy per block, not per entry.
                block = stream.read(_BLOCK)
                if progress is not None and block:
                    progress(len(block))
                exhausted = not block
                buffer = buffer[segment_start - base :] + block
                base = segment_start
                continue
            next_start = min(max(next_start, segment_start), layout.body_end)
            first, last = segment_start - base, next_start - base
            segment = buffer[first:last]
            newline = buffer.rfind(b"\n", first, last)  # -1 for all of a compact document
            yield from _parse_segment(
                segment, layout, reader, parser, line, segment_start - line_start + 1, newline >= 0
            )
            if next_start >= layout.body_end:
                return
            # Move the line count to the next segment's start.
            if newline >= 0:
                line += buffer.count(b"\n", first, last)
                line_start = base + newline + 1
            segment_start = next_start


def _parse_segment(
    segment: bytes,
    layout: _Plan,
    reader: _Reader,
    parser: etree.XMLParser,
    line: int,
    column: int,
    multiline: bool,
) -> Iterator[ParsedEntry]:
    if not segment.strip():
        return
    reader.line_offset = line - 1
    # An IntervalBlock entry's readings are read from the bytes when they are plain enough; lxml
    # parses the rest, and the whole segment whenever the run turns out not to be (see there).
    run = cut_readings(segment, multiline)
    if run is not None:
        try:
            wrapped = etree.fromstring(
                layout.wrapper_open + run.stub + layout.wrapper_close, parser
            )
        except etree.XMLSyntaxError:
            wrapped = None
        owner = None if wrapped is None else run.claim(wrapped)
        if wrapped is not None and owner is not None:
            yield from _entries(wrapped, reader, owner, run.readings)
            return
    try:
        wrapped = etree.fromstring(layout.wrapper_open + segment + layout.wrapper_close, parser)
    except etree.XMLSyntaxError as error:
        error_line, error_column, message = _first_logged(error, parser)
        if error_line is not None and error_column is not None and error_line == 1:
            error_column = error_column - len(layout.wrapper_open) + column - 1
            error_column = max(error_column, 1)
        absolute = None if error_line is None else error_line + line - 1
        # libxml2 names other lines in its words too ("... IntervalReading line 1 and ..."):
        # those are the segment's lines, not the document's.
        message = _SEGMENT_LINE.sub(lambda m: f"line {int(m.group(1)) + line - 1}", message)
        # ... and the wrapper's name where a segment ends before its elements do.
        message = message.replace(_WRAPPER_NAME.decode(), "the next <entry> or the feed's end")
        raise EspiParseError(
            reader.name, absolute, error_column, _syntax_message(message)
        ) from None
    yield from _entries(wrapped, reader)


def _entries(
    wrapped: etree._Element,
    reader: _Reader,
    owner: etree._Element | None = None,
    readings: Sequence[IntervalReading] | None = None,
) -> Iterator[ParsedEntry]:
    """The entries of a parsed segment; ``owner``'s IntervalBlock gets ``readings``, which were
    read from the bytes before lxml parsed the entry without them."""
    for child in wrapped:
        if not isinstance(child.tag, str):
            continue
        _check_depth(reader, child)
        if _local(child) == "entry" and _namespace(child) in (ATOM_NS, ""):
            yield from _entry(reader, child, readings if child is owner else None)
    reader.line_offset = 0


def _first_logged(
    error: etree.XMLSyntaxError, parser: etree.XMLParser
) -> tuple[int | None, int | None, str]:
    for entry in parser.error_log:
        if entry.level_name in ("ERROR", "FATAL"):
            return entry.line or None, entry.column or None, entry.message
    line, column = error.position
    return line or None, column or None, str(error.msg or error)


def opener_for(source: object) -> Opener | None:
    """How to read a source twice from its start, when it can be: a path or an in-memory buffer."""
    if isinstance(source, str):
        path = source
        return lambda: open(path, "rb")
    if isinstance(source, io.BytesIO):
        # bytes, not a buffer view: a BytesIO made from bytes shares them instead of copying.
        data = source.getvalue()
        return lambda: io.BytesIO(data)
    return None
