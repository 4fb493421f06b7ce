"""The spool: readings on disk, so a conversion's memory stays flat however big its inputs.

Every IntervalBlock's readings are appended to one file as columns (``marshal``: the fastest
exact round trip of ints and tuples the standard library has), with a small index in memory: one
entry per block. Two ways read them back:

- :meth:`Spool.database`: a SQLite table, filled from the file on first use, read back sorted by
  usage point, interval start and duration (see :mod:`scwadd_espi.convert`). Any input takes it.
- :meth:`Spool.blocks_of`: one collection's blocks in the order they were read, for the direct
  path (:mod:`scwadd_espi._direct`) when the collection's readings came in strictly increasing
  start order (:meth:`Spool.in_order`), the way utilities send them. Then they need no sort and
  hold no repeat, and SQLite is never opened.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Iterator
from itertools import islice
from operator import lt
from typing import TYPE_CHECKING, Any, NamedTuple

from scwadd_espi.model import IntervalBlock

if TYPE_CHECKING:
    import sqlite3

# A spooled block's columns, in IntervalReading's field order.
Columns = tuple[tuple[Any, ...], ...]


class _BlockRef(NamedTuple):
    key_id: int
    offset: int
    size: int
    readings: int
    updated: int
    seq: int


class Spool:
    """Readings on disk, keyed for the sorted, de-duplicated read-back."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._file = open(os.path.join(directory, "blocks.marshal"), "w+b")  # noqa: SIM115
        self._blocks: list[_BlockRef] = []
        self._end = 0  # the file's size: blocks are appended without a seek
        self._reading = False
        self._db: sqlite3.Connection | None = None
        self.block_keys: dict[str | None, int] = {}
        # Where each collection's first block was read, for errors about it.
        self.origins: dict[str | None, str] = {}
        self.seq = 0
        #: Readings added per collection, counted as they arrive: the conservation check's
        #: "read" side, independent of what the read-back returns.
        self.read_counts: dict[int, int] = {}
        # Per collection, the last start while its readings are strictly increasing (None once
        # they are not).
        self._last_start: dict[int, int | None] = {}

    def add_block(
        self, key: str | None, block: IntervalBlock, updated: int | None, origin: str
    ) -> int:
        """Spool a block's readings; how many."""
        return self.add_columns(key, tuple(zip(*block.readings, strict=True)), updated, origin)

    def add_columns(
        self, key: str | None, columns: Columns, updated: int | None, origin: str
    ) -> int:
        """Spool a block's readings given as columns (IntervalReading's fields in its order;
        empty for no reading); how many."""
        key_id = self.block_keys.setdefault(key, len(self.block_keys))
        self.origins.setdefault(key, origin)
        self.seq += 1
        count = len(columns[0]) if columns else 0
        self.read_counts[key_id] = self.read_counts.get(key_id, 0) + count
        if not count:
            self._last_start.setdefault(key_id, -(2**63))
            return 0
        starts = columns[0]
        last = self._last_start.get(key_id, -(2**63))
        if last is not None:
            ordered = starts[0] > last and all(map(lt, starts, islice(starts, 1, None)))
            self._last_start[key_id] = starts[-1] if ordered else None
        data = marshal.dumps(columns)
        if self._reading:  # a read moved the position: back to the end
            self._file.seek(0, os.SEEK_END)
            self._reading = False
        self._blocks.append(_BlockRef(key_id, self._end, len(data), count, updated or 0, self.seq))
        self._file.write(data)
        self._end += len(data)
        return count

    def in_order(self, key_id: int) -> bool:
        """True when every reading of the collection started after the one read before it."""
        return self._last_start.get(key_id) is not None

    def _load(self, ref: _BlockRef) -> Columns:
        self._reading = True
        self._file.seek(ref.offset)
        # Our own file, written by this spool in this process: nothing untrusted is unmarshalled.
        columns: Columns = marshal.loads(self._file.read(ref.size))  # noqa: S302
        return columns

    def blocks_of(self, key_id: int) -> Iterator[Columns]:
        """The collection's blocks, as columns, in the order they were added."""
        for ref in self._blocks:
            if ref.key_id == key_id:
                yield self._load(ref)

    def database(self) -> sqlite3.Connection:
        """The readings in a SQLite table (``readings``), filled from the spool file on first
        use, one block at a time."""
        if self._db is None:
            import sqlite3

            db = sqlite3.connect(os.path.join(self.directory, "readings.sqlite"))
            db.executescript(
                """
                PRAGMA journal_mode = OFF;
                PRAGMA synchronous = OFF;
                PRAGMA temp_store = FILE;
                PRAGMA cache_size = -8000;
                CREATE TABLE readings (
                    block_key INTEGER, start INTEGER, duration INTEGER, value INTEGER,
                    cost INTEGER, quality TEXT, tou INTEGER, tier INTEGER, updated INTEGER,
                    seq INTEGER
                );
                """
            )
            for ref in self._blocks:
                starts, durations, values, costs, qualities, tous, tiers, _cpps = self._load(ref)
                rows = [
                    (
                        ref.key_id,
                        start,
                        duration,
                        value,
                        cost,
                        ",".join(map(str, quality)) if quality else "",
                        tou,
                        tier,
                        ref.updated,
                        ref.seq,
                    )
                    for start, duration, value, cost, quality, tou, tier in zip(
                        starts, durations, values, costs, qualities, tous, tiers, strict=True
                    )
                ]
                db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            self._db = db
        return self._db

    def close(self) -> None:
        self._file.close()
        if self._db is not None:
            self._db.close()
