"""Limits of the HTTP API (issue 14): refusals on the head alone, bodies never inflated, bounded logs.

The guard is called directly with mocked requests; what needs aiohttp's own
server (decompression, draining a refused body, the parser's errors) runs an
in-process server on loopback with the worker's application options.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer, make_mocked_request
from mode.utils.logging import ExtensionFormatter
from pydantic import SecretStr

from tracker.security import TokenSet
from tracker.worker.http_guard import SERVER_LOGGER, HttpGuard, RedactedRequestErrors, web_application_options

pytestmark = pytest.mark.unit

TOKEN = "tok-limits-0123456789abcdefXYZ"
WRONG = "tok-wrong-00000000000000000000"
UNCOMPRESSED = {"error": "request bodies must not be compressed: send Content-Encoding identity (or none)"}


def guard(tokens: str | None = TOKEN, events_body_limit: int = 4096) -> HttpGuard:
    return HttpGuard(
        tokens=TokenSet.from_config(SecretStr(tokens) if tokens else None, None),
        read_requires_token=False,
        timeout=5.0,
        events_body_limit=events_body_limit,
    )


class Handler:
    """A route handler that counts its calls and answers 200, or runs ``behaviour``."""

    def __init__(self, behaviour: Callable[[web.Request], Any] | None = None) -> None:
        self.calls = 0
        self.behaviour = behaviour

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.behaviour is not None:
            return await self.behaviour(request)  # type: ignore[no-any-return]
        return web.json_response({"ok": True})


def body_of(response: web.StreamResponse) -> dict[str, Any]:
    assert isinstance(response, web.Response) and response.body is not None
    return dict(json.loads(bytes(response.body)))  # type: ignore[arg-type]


async def call(gate: HttpGuard, method: str, path: str, handler: Handler, headers: Any = None) -> web.StreamResponse:
    return await gate.middleware(make_mocked_request(method, path, headers=headers), handler)


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


# --- refusals on the head alone ---------------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [[TOKEN, WRONG], [WRONG, TOKEN], [TOKEN, TOKEN]])
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/events"), ("GET", "/v1/signals"), ("GET", "/healthz")])
async def test_two_authorization_headers_are_400_whichever_comes_first(
    tokens: list[str], method: str, path: str
) -> None:
    handler = Handler()

    response = await call(guard(), method, path, handler, headers=[bearer(token) for token in tokens])

    assert response.status == 400
    assert body_of(response) == {"error": "more than one Authorization header"}
    assert handler.calls == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "GZIP", "identity, gzip", "x-unknown"])
async def test_a_body_that_claims_an_encoding_is_415_before_the_handler(encoding: str) -> None:
    handler = Handler()
    headers = [bearer(TOKEN), ("Content-Encoding", encoding)]

    response = await call(guard(), "POST", "/v1/events", handler, headers=headers)

    assert response.status == 415
    assert body_of(response) == UNCOMPRESSED
    assert handler.calls == 0


async def test_a_second_content_encoding_header_counts_too() -> None:
    headers = [bearer(TOKEN), ("Content-Encoding", "identity"), ("Content-Encoding", "gzip")]

    response = await call(guard(), "POST", "/v1/events", Handler(), headers=headers)

    assert response.status == 415


@pytest.mark.parametrize("encoding", [None, "identity", "Identity", ""])
async def test_an_uncompressed_body_passes(encoding: str | None) -> None:
    handler = Handler()
    headers = [bearer(TOKEN)] + ([("Content-Encoding", encoding)] if encoding is not None else [])

    response = await call(guard(), "POST", "/v1/events", handler, headers=headers)

    assert response.status == 200
    assert handler.calls == 1


async def test_a_compressed_body_without_a_token_is_401_first() -> None:
    response = await call(guard(), "POST", "/v1/events", Handler(), headers={"Content-Encoding": "gzip"})

    assert response.status == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([bearer(TOKEN), bearer(TOKEN)], 400),
        ([], 401),
        ([bearer(WRONG)], 403),
        ([bearer(TOKEN), ("Content-Length", "4097")], 413),
        ([bearer(TOKEN), ("Content-Encoding", "gzip")], 415),
    ],
)
async def test_every_refusal_closes_the_connection(headers: list[tuple[str, str]], status: int) -> None:
    response = await call(guard(), "POST", "/v1/events", Handler(), headers=headers)

    assert response.status == status
    assert response.keep_alive is False


async def test_an_accepted_request_keeps_its_connection() -> None:
    response = await call(guard(), "POST", "/v1/events", Handler(), headers=[bearer(TOKEN)])

    assert response.keep_alive is not False


# --- what the log gets -------------------------------------------------------------------------------------


async def test_the_log_line_of_a_fault_is_bounded_escaped_and_without_the_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def recurse(depth: int) -> int:
        return recurse(depth + 1) + 1

    async def explode(request: web.Request) -> web.StreamResponse:
        recurse(0)
        raise AssertionError("unreachable")

    # %0A is a line break in request.path: a log line could be forged.
    forged = "/v1/alerts/" + "a" * 10_000 + f"%0A[ERROR]%20forged%20line%20{TOKEN}"

    with caplog.at_level(logging.ERROR):
        response = await call(guard(tokens=None), "GET", forged, Handler(explode))

    assert response.status == 500
    assert body_of(response) == {"error": "internal error"}
    assert "RecursionError" in caplog.text
    assert TOKEN not in caplog.text
    assert not any(line.startswith("[ERROR] forged") for line in caplog.text.splitlines())
    assert len(caplog.text) < 2_000


def test_the_server_log_filter_keeps_the_type_and_drops_the_message() -> None:
    try:
        raise ValueError(f"quoting the request: Bearer {TOKEN}")
    except ValueError:
        record = logging.LogRecord(
            SERVER_LOGGER, logging.ERROR, __file__, 1, "Error from %s", ("peer",), sys.exc_info()
        )

    kept = RedactedRequestErrors().filter(record)

    assert kept
    assert record.getMessage().startswith("Error from peer: ValueError\n")
    assert "test_the_server_log_filter" in record.getMessage()  # where it was raised
    # As the worker's log handler writes it (mode's formatter; it formats the arguments itself).
    assert TOKEN not in ExtensionFormatter(stream=io.StringIO()).format(record)


# --- aiohttp's server, with the worker's options ------------------------------------------------------------


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """Start in-process servers with the worker's application options; each is closed at the end."""
    servers: list[TestServer] = []

    async def start(handler: Handler, gate: HttpGuard | None = None) -> TestServer:
        app = web.Application(**web_application_options(4096))
        if gate is not None:
            app.middlewares.append(gate.middleware)
        app.router.add_route("*", "/{tail:.*}", handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


def raw_request(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> tuple[bytes, float | None]:
    """Send ``head`` and ``body``; return the answer and when the server closed the connection (None: it did not)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(head + body)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            return answer, None
    return answer, time.monotonic() - started


async def test_the_server_hands_a_compressed_body_over_as_sent(serve: Callable[..., Any]) -> None:
    async def measure(request: web.Request) -> web.StreamResponse:
        return web.json_response({"length": len(await request.read())})

    server = await serve(Handler(measure))
    gzipped = zlib.compress(bytes(1024 * 1024), wbits=16 + zlib.MAX_WBITS)
    head = f"POST /x HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\nContent-Length: {len(gzipped)}\r\n\r\n"

    answer, _ = await asyncio.to_thread(raw_request, server.port, head.encode(), gzipped)

    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"length": len(gzipped)}


async def test_a_refused_body_is_not_drained_the_connection_closes_at_once(serve: Callable[..., Any]) -> None:
    server = await serve(Handler(), guard(events_body_limit=1 << 30))
    head = b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n"

    answer, closed_after = await asyncio.to_thread(raw_request, server.port, head, bytes(256 * 1024))

    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"Connection: close" in answer
    assert closed_after is not None and closed_after < 2.0  # aiohttp's default drains for up to 10 s


async def test_a_header_line_too_long_is_logged_without_its_value(
    serve: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(Handler(), guard())
    head = f"GET /v1/signals HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}{'x' * 9000}\r\n\r\n"

    with caplog.at_level(logging.DEBUG, logger=SERVER_LOGGER):
        answer, _ = await asyncio.to_thread(raw_request, server.port, head.encode())
        await asyncio.sleep(0.1)

    assert answer.startswith(b"HTTP/1.0 400 ")
    assert "LineTooLong" in caplog.text
    assert TOKEN not in caplog.text
    assert "xxxx" not in caplog.text
