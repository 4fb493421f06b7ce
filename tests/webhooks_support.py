"""A real webhook receiver for the tests: an HTTP server on loopback that verifies every request
with the standardwebhooks library, as an operator's receiver would, and can be told to fail."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()


@dataclass
class Receiver:
    """Answers ``status_for(path, attempt_of_this_id)``; records what it verified."""

    secret: str = NEW_SECRET
    failures_per_id: int = 0  # the first N requests of each webhook-id get a 500
    redirect: bool = False  # answer 302 to another path instead
    attempts: Counter[str] = field(default_factory=Counter)
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k: v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.paths.append(self.path)
                    message_id = headers.get("webhook-id", "")
                    receiver.attempts[message_id] += 1
                    attempt = receiver.attempts[message_id]
                try:
                    payload = Webhook(receiver.secret).verify(body, headers)
                except Exception:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401)
                    return
                if receiver.redirect:
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if attempt <= receiver.failures_per_id:
                    self._answer(500)
                    return
                with receiver.lock:
                    receiver.verified.setdefault(message_id, payload)
                self._answer(204)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hooks/scwadd?token=t0ps3cret"

    def types(self) -> list[str]:
        return sorted(json.loads(json.dumps(p))["type"] for p in self.verified.values())
