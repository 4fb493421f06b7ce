"""What the files tests share with their conftest: the operator, the exports put in the bucket and
the running server's handle (a module of its own: ``conftest`` is a name every test area has)."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.object_store import ObjectStore
from scwadd_core.bus import Bus
from scwadd_files.service import FilesService

OPERATOR = ("operator", "correct horse battery staple")
CSV_NAME = "sub123-2026-11-26-abcd1234.csv"
CSV_BODY = b"".join(f"2026-01-01T00:{m:02d}:00Z,{m}\n".encode() for m in range(60)) * 3000
MANIFEST_NAME = "sub123-2026-11-26-abcd1234.manifest.json"
MANIFEST_BODY = b'{"rows": 180000}'


@dataclass
class FilesServer:
    url: str
    bus: Bus
    store: ObjectStore
    service: FilesService


@dataclass
class ConsoleServer:
    url: str
    bus: Bus
    service: FilesService
    database_url: str
