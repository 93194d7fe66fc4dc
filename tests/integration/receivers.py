"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records every request and can misbehave.

It answers on a background thread, so synchronous tests can publish with the
CLI and then wait (bounded) for what arrived. ``fail_next`` makes it answer an
error status a given number of times; ``stop`` closes its port (a receiver that
is down) and ``start`` opens the same port again.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it, and the status it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def header(self, name: str) -> str | None:
        """Return a header's value, whatever the case of its name, or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """Decode the body as JSON."""
        return json.loads(self.body)

    @property
    def succeeded(self) -> bool:
        """Return whether the receiver answered 2xx."""
        return 200 <= self.status < 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, retry_after = self.server.receiver._record(self.command, self.path, headers, body)
        payload = json.dumps({"status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # Keep pytest's captured output readable: the test asserts on ``requests``.
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver


class Receiver:
    """A webhook receiver on 127.0.0.1; use as a context manager or call start/stop."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or _free_port()
        self._lock = threading.Condition()
        self._requests: list[Received] = []
        self._failures: list[tuple[int, int | None]] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL (valid whether the receiver is up or down)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Return whether the port is open."""
        return self._server is not None

    def start(self) -> Receiver:
        """Open the port and answer requests on a background thread."""
        if self._server is None:
            server = _Server(("127.0.0.1", self.port), _Handler)
            server.receiver = self
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name=f"receiver-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: connections are refused until ``start`` is called again."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, times: int, status: int = 503, retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (and Retry-After, if given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    @property
    def requests(self) -> list[Received]:
        """Return a copy of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def succeeded(self) -> list[Received]:
        """Return the requests the receiver answered with 2xx."""
        return [request for request in self.requests if request.succeeded]

    def wait_for(self, count: int, timeout: float, succeeded: bool = False) -> list[Received]:
        """Wait until ``count`` requests (2xx-answered ones if ``succeeded``) arrived; return them all.

        Raise AssertionError, listing what did arrive, after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout

        def enough() -> bool:
            got = [r for r in self._requests if r.succeeded] if succeeded else self._requests
            return len(got) >= count

        with self._lock:
            while not enough():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(r.status, r.header("Idempotency-Key")) for r in self._requests]
                    raise AssertionError(f"{self.url} got {len(seen)} request(s) {seen}, wanted {count} in {timeout}s")
                self._lock.wait(remaining)
            return list(self._requests)

    def _record(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, int | None]:
        with self._lock:
            status, retry_after = self._failures.pop(0) if self._failures else (200, None)
            self._requests.append(Received(method, path, headers, body, status, time.time()))
            self._lock.notify_all()
        return status, retry_after
