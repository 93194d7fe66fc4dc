"""The one gate every HTTP request passes: bearer tokens, body size, time limit, no stray 500 details.

It is an aiohttp middleware on Faust's web application, so it also covers the
views Faust itself serves. ``/metrics`` and ``/healthz`` stay open: Prometheus
and liveness probes scrape them without credentials, and they expose no secret
and no fact. Every other path is closed to writes without a token (when tokens
are configured) and, with ``TRACKER_READ_REQUIRES_TOKEN``, to reads as well.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from tracker.errors import AuthenticationError, AuthorizationError
from tracker.security import TokenSet

__all__ = ["OPEN_PATHS", "SMALL_BODY_LIMIT", "STREAM_PATH", "HttpGuard"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_PATHS = frozenset({"/metrics", "/healthz"})
STREAM_PATH = "/v1/alerts/stream"
EVENTS_PATH = "/v1/events"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Largest body of any request but ``POST /v1/events`` (subscriptions are small JSON objects).
SMALL_BODY_LIMIT = 64 * 1024
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tracker"'}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@dataclass(frozen=True)
class HttpGuard:
    """Check tokens, refuse oversized bodies and bound each request's time; turn surprises into a bare 500."""

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

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run one request through the checks, then the handler under the time limit."""
        if self.needs_token(request.method, request.path):
            try:
                self.tokens.authorize(request.headers.get("Authorization"))
            except AuthenticationError as exc:
                return _error(401, str(exc), _CHALLENGE)
            except AuthorizationError as exc:
                return _error(403, str(exc))
        limit = self.body_limit(request.path)
        if request.content_length is not None and request.content_length > limit:
            return _error(413, f"request body is larger than {limit} bytes", {"Connection": "close"})
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
                return _error(408, f"request body not received within {self.timeout:g} s", {"Connection": "close"})
            return _error(503, f"request not completed within {self.timeout:g} s")

    async def _handled(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception as exc:
            # The message may quote request data (a secret, even): log the type and where, not the text.
            where = "".join(traceback.format_tb(exc.__traceback__))
            logger.error("%s %s failed with %s\n%s", request.method, request.path, type(exc).__name__, where)
            return _error(500, "internal error")
