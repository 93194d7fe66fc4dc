"""The one gate every HTTP request passes: bearer tokens, body size and encoding, time limit, no stray 500 details.

It is an aiohttp middleware on Faust's web application, so it also covers the
views Faust itself serves. ``/metrics`` and ``/healthz`` stay open: Prometheus
and liveness probes scrape them without credentials, and they expose no secret
and no fact. Every other path is closed to writes without a token (when tokens
are configured) and, with ``TRACKER_READ_REQUIRES_TOKEN``, to reads as well.

A request refused before its body is read (400, 401, 403, 413, 415) is answered
at once and its connection closed: the worker neither reads nor inflates the
body. ``web_application_options`` sets up aiohttp's server to match, and routes
what aiohttp itself logs about a request through ``RedactedRequestErrors``.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tracker.errors import AuthenticationError, AuthorizationError
from tracker.security import TokenSet

__all__ = [
    "OPEN_PATHS",
    "SERVER_LOGGER",
    "SMALL_BODY_LIMIT",
    "STREAM_PATH",
    "HttpGuard",
    "RedactedRequestErrors",
    "web_application_options",
]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/metrics", "/healthz"})
STREAM_PATH = "/v1/alerts/stream"
EVENTS_PATH = "/v1/events"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Largest body of any request but ``POST /v1/events`` (subscriptions are small JSON objects).
SMALL_BODY_LIMIT = 64 * 1024
#: The logger aiohttp's server writes to (parse errors, unhandled exceptions), redacted.
SERVER_LOGGER = "tracker.worker.http_server"
#: Longest text taken from a request (method, path) or a log message into one log line, in characters.
LOGGED_TEXT_LIMIT = 200
#: Innermost stack frames logged with an unexpected exception (a RecursionError has a thousand).
LOGGED_FRAMES = 12
UNCOMPRESSED = "request bodies must not be compressed: send Content-Encoding identity (or none)"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tracker"'}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _refused(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Return an error after which aiohttp closes the connection (``Connection: close``) instead of reading on."""
    response = _error(status, message, headers)
    response.force_close()
    return response


def _uncompressed(encodings: Iterable[str]) -> bool:
    """Return whether Content-Encoding header values leave the body as sent (identity, or none at all)."""
    codings = (coding.strip().lower() for value in encodings for coding in value.split(","))
    return all(coding in ("", "identity") for coding in codings)


def _printable(text: str, limit: int = LOGGED_TEXT_LIMIT) -> str:
    """Return ``text`` cut to ``limit`` characters with line breaks and control characters escaped."""
    shown = repr(text[:limit])[1:-1]
    return shown + "..." if len(text) > limit else shown


def _frames(exc: BaseException) -> str:
    """Return where an exception was raised (its innermost frames), without its message."""
    return "".join(traceback.format_tb(exc.__traceback__, limit=-LOGGED_FRAMES)).rstrip()


@dataclass(frozen=True)
class HttpGuard:
    """Check tokens, refuse oversized or compressed bodies, bound each request's time; turn surprises into a 500."""

    tokens: TokenSet
    read_requires_token: bool
    timeout: float
    events_body_limit: int

    def body_limit(self, path: str) -> int:
        """Return the largest body accepted on ``path``."""
        return self.events_body_limit if path == EVENTS_PATH else SMALL_BODY_LIMIT

    def needs_token(self, method: str, path: str) -> bool:
        """Return whether a request must carry an accepted bearer token."""
        if not self.tokens.enabled or path in OPEN_PATHS:
            return False
        return method not in READ_METHODS or self.read_requires_token

    def refusal(self, request: web.Request) -> web.Response | None:
        """Return the answer to a request refused on its head alone, or None to let it through."""
        if len(request.headers.getall("Authorization", ())) > 1:
            # A proxy that reads the last header and the worker reading the first would disagree.
            return _refused(400, "more than one Authorization header")
        if self.needs_token(request.method, request.path):
            try:
                self.tokens.authorize(request.headers.get("Authorization"))
            except AuthenticationError as exc:
                return _refused(401, str(exc), _CHALLENGE)
            except AuthorizationError as exc:
                return _refused(403, str(exc))
        limit = self.body_limit(request.path)
        if request.content_length is not None and request.content_length > limit:
            return _refused(413, f"request body is larger than {limit} bytes")
        if not _uncompressed(request.headers.getall("Content-Encoding", ())):
            # 16 MiB of gzip inflates to 16 GiB: no body is ever inflated, so none may claim an encoding.
            return _refused(415, UNCOMPRESSED)
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run one request through the checks, then the handler under the time limit."""
        refused = self.refusal(request)
        if refused is not None:
            return refused
        if request.path == STREAM_PATH:
            # The stream bounds itself: an idle limit, a total limit and a limit per write.
            return await self._handled(request, handler)
        timer = asyncio.timeout(self.timeout)
        try:
            async with timer:
                return await self._handled(request, handler)
        except TimeoutError:
            if not timer.expired():
                raise
            if not request.content.is_eof():
                # The client is still sending its body: its fault, and the connection is closed.
                return _refused(408, f"request body not received within {self.timeout:g} s")
            return _error(503, f"request not completed within {self.timeout:g} s")

    async def _handled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            # The message may quote request data (a secret, even): log the type and where, not the text.
            logger.error(
                "%s %s failed with %s\n%s",
                _printable(request.method),
                _printable(request.path),
                type(exc).__name__,
                _frames(exc),
            )
            return _error(500, "internal error")


class RedactedRequestErrors(logging.Filter):
    """Cut what aiohttp's server logs about a request down to the exception's type (and frames, for a fault).

    aiohttp logs a request it cannot parse with the parser's message, which
    quotes the raw request (a header line over 8190 bytes: its first 100 bytes,
    a bearer token among them) and a traceback that repeats it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without the exception's message; keep every record."""
        exc = record.exc_info[1] if record.exc_info else None
        text = _printable(record.getMessage())
        if exc is not None:
            text = f"{text}: {type(exc).__name__}"
            if not isinstance(exc, HttpProcessingError):  # a client's malformed request has no worker frames to show
                text = f"{text}\n{_frames(exc)}"
        record.msg, record.args = text, ()  # not None: mode's formatter (the worker's log) wraps None as an argument
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_REDACTION = RedactedRequestErrors()


def web_application_options(max_body_bytes: int) -> dict[str, Any]:
    """Return the options of the worker's aiohttp application (Faust's ``web_application_options``)."""
    server_logger = logging.getLogger(SERVER_LOGGER)
    server_logger.addFilter(_REDACTION)  # once: a filter already present is not added again
    return {
        "client_max_size": max_body_bytes + 1,
        # Passed to each connection's aiohttp.web.RequestHandler.
        "handler_args": {
            # Bodies stay as sent: the guard refuses a compressed one (415) before anything reads it.
            "auto_decompress": False,
            # A refused request's unread body is not drained (aiohttp "lingers" 10 s by default): the
            # connection is closed at once. A client still sending may then see a reset, not the status.
            "lingering_time": 0,
            "logger": server_logger,
        },
    }
