"""The spool: readings on disk, so a conversion's memory stays flat however big its inputs.

Readings are spooled, block by block, into a SQLite file in a temporary directory and read back
sorted by usage point, interval start and duration (see :mod:`scwadd_espi.convert`).
"""

from __future__ import annotations

import os
import sqlite3

from scwadd_espi.model import IntervalBlock


class Spool:
    """Readings on disk, keyed for the sorted, de-duplicated read-back."""

    def __init__(self, directory: str) -> None:
        self.db = sqlite3.connect(os.path.join(directory, "readings.sqlite"))
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            PRAGMA cache_size = -8000;
            CREATE TABLE readings (
                block_key INTEGER, start INTEGER, duration INTEGER, value INTEGER, cost INTEGER,
                quality TEXT, tou INTEGER, updated INTEGER, seq INTEGER
            );
            """
        )
        self.block_keys: dict[str | None, int] = {}
        # Where each collection's first block was read, for errors about it.
        self.origins: dict[str | None, str] = {}
        self.seq = 0

    def add_block(
        self, key: str | None, block: IntervalBlock, updated: int | None, origin: str
    ) -> int:
        key_id = self.block_keys.setdefault(key, len(self.block_keys))
        self.origins.setdefault(key, origin)
        self.seq += 1
        seq, stamp = self.seq, updated or 0
        rows = [
            (
                key_id,
                r.start,
                r.duration,
                r.value,
                r.cost,
                ",".join(map(str, r.qualities)) if r.qualities else "",
                r.tou,
                stamp,
                seq,
            )
            for r in block.readings
        ]
        self.db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?,?)", rows)
        return len(rows)

    def close(self) -> None:
        self.db.close()
