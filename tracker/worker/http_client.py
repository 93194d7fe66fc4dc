"""The real webhook transport: aiohttp, no redirects followed, bounded time per attempt."""

from __future__ import annotations

import aiohttp

from tracker.worker.notify import Outcome

__all__ = ["AiohttpSender"]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class AiohttpSender:
    """POST webhook bodies with one shared session."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        """Send one attempt; a network error is an outcome, not an exception."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.read()
                return Outcome(response.status, _retry_after(response.headers.get("Retry-After")))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Outcome(None, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
