"""A stand-in Variantlab server on 127.0.0.1 for the client's unit tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

CONFIG: dict[str, Any] = {
    "experiments": [
        {
            "key": "ranker",
            "status": "running",
            "shipped_variant": None,
            "seed": "ranker",
            "hash_version": 2,
            "coverage": 1.0,
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True, "payload": {"m": 1}},
                {"key": "treatment", "weight": 0.5, "is_control": False, "payload": {"m": 2}},
            ],
            "condition": {},
            "layer": None,
            "forced_assignments": {"qa": "treatment"},
        },
        {
            "key": "old",
            "status": "paused",
            "shipped_variant": None,
            "seed": "old",
            "hash_version": 2,
            "coverage": 1.0,
            "variants": [
                {"key": "control", "weight": 0.5, "is_control": True, "payload": {}},
                {"key": "b", "weight": 0.5, "is_control": False, "payload": {"b": 1}},
            ],
            "condition": {},
            "layer": None,
            "forced_assignments": {},
        },
    ]
}


@dataclass
class FakeServer:
    """Serves /api/v1/config with an ETag and records /api/v1/events batches.

    ``config_status`` / ``events_statuses`` script failures: the events list is consumed one
    answer per request (then 202s).
    """

    url: str = ""
    config: dict[str, Any] = field(default_factory=lambda: CONFIG)
    etag: str = '"v1"'
    config_status: int = 200
    events_statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    config_requests: list[dict[str, str]] = field(default_factory=list)
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for batch in self.batches for e in batch]


def handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with server.lock:
                server.config_requests.append(dict(self.headers))
            if self.path != "/api/v1/config":
                return self._send(404)
            if server.config_status != 200:
                return self._send(server.config_status)
            if self.headers.get("If-None-Match") == server.etag:
                return self._send(304, headers={"ETag": server.etag})
            self._send(200, json.dumps(server.config).encode(), {"ETag": server.etag})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with server.lock:
                scripted = server.events_statuses.pop(0) if server.events_statuses else None
                if scripted is None:
                    server.batches.append(body["events"])
            if scripted is not None:
                return self._send(scripted[0], b"{}", scripted[1])
            answer = {"accepted": len(body["events"]), "rejected": []}
            self._send(202, json.dumps(answer).encode())

    return Handler
