"""The streaming, hostile-input-safe ESPI (Green Button) parser.

``iter_entries(source)`` reads an Atom feed, a single Atom entry or a bare ESPI document and
yields one :class:`ParsedEntry` per ESPI object, in document order, with its Atom links. Memory
stays flat: each entry is parsed with :func:`lxml.etree.iterparse`, turned into model objects and
cleared before the next is read; an IntervalBlock's readings are yielded with their block (a
block is one day or one month, never the file). Plain UTF-8 feeds in a file or in memory take a
faster route to the same result, one entry at a time through lxml's whole-document parser
(:mod:`scwadd_espi._split`), with an IntervalBlock's readings read straight from the bytes
when they are in the plain shape utilities send (:mod:`scwadd_espi._reading_scan`).

Elements are matched by namespace URI and local name, never by prefix; an element that lost its
namespace (PG&E has sent such documents) is read as if it had the expected one.

Safety: no DTD is loaded, no entity is expanded, nothing is fetched from the network, the text
size limits of libxml2 stay on (``huge_tree=False``), any DOCTYPE is rejected before the root
element is read, and nesting deeper than :data:`MAX_NESTING` below an entry fails. Every failure
is an :class:`EspiParseError` naming the source, line, column and what was expected.

``Resolver`` (see :mod:`scwadd_espi.resolve`) ties MeterReadings to their UsagePoint,
ReadingType, IntervalBlocks and LocalTimeParameters through the link hrefs.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from lxml import etree

from scwadd_espi import _split
from scwadd_espi._elements import (
    MAX_NESTING,
    EspiParseError,
    ParsedEntry,
    Source,
    _check_depth,
    _entry,
    _is_atom,
    _local,
    _namespace,
    _Reader,
    _syntax_message,
    declares_utf8,
    source_name,
)
from scwadd_espi.model import ATOM_NS

# Bytes handed to libxml2's push parser at a time: each feed has a fixed cost; 64-256 KiB
# measured faster than lxml's default 32 KiB, and is still a small, constant buffer.
_CHUNK = 1 << 18

# Prolog check ----------------------------------------------------------------------------------

_PROLOG_LIMIT = 1 << 20


class _PrologGuard(io.RawIOBase):
    """Passes the bytes through, refusing a DOCTYPE before the root element.

    libxml2 reads the internal DTD subset before any event reaches us, so this is the one place a
    DOCTYPE (billion laughs, external entities) can be refused before the parser acts on it.
    """

    def __init__(self, raw: IO[bytes], name: str, progress: Callable[[int], None] | None) -> None:
        super().__init__()
        self._raw = raw
        self._name = name
        self._checked = False
        self._pending = b""
        self._progress = progress
        # A byte that is not UTF-8 in a UTF-8 document: libxml2's push parser reports it at the
        # start of the document, so the bytes are checked here, with the lines they have passed.
        self._utf8: codecs.IncrementalDecoder | None = None
        self._lines = 0
        self._line_bytes = 0  # bytes since the last newline
        self._bad_byte: EspiParseError | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._checked:
            head = self._check_prolog()
            self._checked = True
            if declares_utf8(head):
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._pending = self._passed(head)
        if self._pending:
            count = min(len(view), len(self._pending))
            view[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            return count
        if self._bad_byte is not None:
            raise self._bad_byte
        data = self._raw.read(len(view))
        if not data:
            self._passed(b"", final=True)
            if self._bad_byte is not None:
                raise self._bad_byte
            return 0
        if self._progress is not None:
            self._progress(len(data))
        data = self._passed(data)
        if not data and self._bad_byte is not None:
            raise self._bad_byte
        view[: len(data)] = data
        return len(data)

    def _passed(self, data: bytes, final: bool = False) -> bytes:
        """``data`` as far as it is UTF-8. The bytes before a bad one still go to libxml2, and
        the bad byte is reported on the next read, so an earlier syntax error is reported first,
        as it would be without this check."""
        if self._utf8 is None:
            return data
        try:
            self._utf8.decode(data, final)
        except UnicodeDecodeError as error:
            start = max(error.start, 0)
            before = data.rfind(b"\n", 0, start)
            self._bad_byte = EspiParseError(
                self._name,
                self._lines + data.count(b"\n", 0, start) + 1,
                start - before if before >= 0 else self._line_bytes + start + 1,
                _syntax_message("Invalid bytes in character encoding"),  # libxml2's words
            )
            return data[:start]
        self._lines += data.count(b"\n")
        last = data.rfind(b"\n")
        self._line_bytes = len(data) - last - 1 if last >= 0 else self._line_bytes + len(data)
        return data

    def _check_prolog(self) -> bytes:
        head = b""
        while len(head) < _PROLOG_LIMIT:
            chunk = self._raw.read(65536)
            if not chunk:
                break
            if self._progress is not None:
                self._progress(len(chunk))
            head += chunk
            verdict = _scan_prolog(_decode_head(head))
            if verdict is not None:
                if verdict >= 0:
                    text = _decode_head(head)
                    line = text.count("\n", 0, verdict) + 1
                    column = verdict - (text.rfind("\n", 0, verdict) + 1) + 1
                    raise EspiParseError(
                        self._name,
                        line,
                        column,
                        "a DOCTYPE declaration is not allowed (DTDs and entities are refused); "
                        "expected the root element <feed>, <entry> or an ESPI object",
                    )
                break
        return head


def _decode_head(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


_PROLOG_ITEM = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)


def _scan_prolog(text: str) -> int | None:
    """-1 when the root element starts with no DOCTYPE before it, the DOCTYPE's offset when there
    is one, None when more input is needed to tell."""
    position = 0
    while position < len(text):
        match = _PROLOG_ITEM.match(text, position)
        if match:
            position = match.end()
            continue
        if text.startswith("<!DOCTYPE", position) or text.startswith("<!doctype", position):
            return position
        rest = text[position : position + 9]
        if rest.startswith(("<?", "<!--")) or (len(rest) < 9 and "<!DOCTYPE".startswith(rest)):
            return None  # an unfinished processing instruction, comment or DOCTYPE keyword
        return -1
    return None


def iter_entries(
    source: Source, *, name: str | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[ParsedEntry]:
    """Stream the ESPI objects of one document. ``progress`` is told how many bytes were read."""
    label = name or source_name(source)
    path = str(source) if isinstance(source, str | Path) else getattr(source, "name", None)
    reader = _Reader(label, path if isinstance(path, str) and Path(path).is_file() else None)
    # Plain Atom feeds in a file or in memory take the faster split reader (see _split).
    opener = _split.opener_for(str(source) if isinstance(source, Path) else source)
    if opener is not None and (not isinstance(source, str | Path) or reader.path is not None):
        layout = _split.plan(opener)
        if layout is not None:
            yield from _split.split_entries(opener, layout, reader, progress)
            return
    if isinstance(source, str | Path):
        try:
            handle: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed in the finally below
        except OSError as error:
            raise EspiParseError(label, None, None, f"cannot read: {error.strerror}") from None
    else:
        handle = source
    # Unbuffered: a short read (the bytes before a bad one) must reach lxml as it is.
    guarded = _PrologGuard(handle, label, progress)
    # types-lxml's stubs do not know chunk_size (lxml >= 5.3 has it).
    events = etree.iterparse(  # type: ignore[call-overload]
        guarded,
        events=("end",),
        tag=("{*}entry",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_blank_text=False,
        chunk_size=_CHUNK,
    )
    seen_entry = False
    try:
        try:
            for _event, element in events:
                if _namespace(element) in (ATOM_NS, ""):
                    seen_entry = True
                    _check_depth(reader, element)
                    yield from _entry(reader, element)
                # Drop the finished entry and its earlier siblings: memory stays flat.
                element.clear(keep_tail=False)
                parent = element.getparent()
                if parent is not None:
                    while element.getprevious() is not None:
                        del parent[0]
        except etree.XMLSyntaxError as error:
            line, column, message = _first_error(error, events.error_log)
            raise EspiParseError(label, line, column, _syntax_message(message)) from None
        root = events.root
        if root is None:
            raise EspiParseError(label, None, None, "the document is empty")
        if root.getroottree().docinfo.doctype:
            raise EspiParseError(label, 1, 1, "a DOCTYPE declaration is not allowed")
        if seen_entry:
            _check_depth(reader, root)
            return
        # A bare ESPI document: the object is the root.
        _check_depth(reader, root)
        if _is_atom(root, "feed"):
            return  # an empty feed: no entries
        obj = reader.espi_object(root)
        if obj is None:
            raise reader.error(
                root,
                f"unexpected root element <{_local(root)}> in namespace "
                f"{_namespace(root) or '(none)'}: expected an Atom <feed> or <entry>, or an ESPI "
                "object in http://naesb.org/espi",
            )
        yield ParsedEntry(obj=obj, line=root.sourceline)
    finally:
        if isinstance(source, str | Path):
            handle.close()


def _first_error(error: etree.XMLSyntaxError, log: Any) -> tuple[int | None, int | None, str]:
    """The first error this parser logged: the exception's own summary can be a later, vaguer
    one ("no element found" at 0:0 after an undefined entity)."""
    for entry in log:
        if entry.level_name in ("ERROR", "FATAL"):
            return entry.line or None, entry.column or None, entry.message
    line, column = error.position
    return line or None, column or None, str(error.msg or error)


def read_all(source: Source, *, name: str | None = None) -> list[ParsedEntry]:
    """Every object of a (small) document in a list: for tests and tools, not for big feeds."""
    return list(iter_entries(source, name=name))


__all__ = [
    "MAX_NESTING",
    "EspiParseError",
    "ParsedEntry",
    "Source",
    "declares_utf8",
    "iter_entries",
    "read_all",
    "source_name",
]
