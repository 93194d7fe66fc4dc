"""The real webhook transport: aiohttp, no redirects followed, bounded time per attempt, guarded addresses.

Every address a webhook host resolves to is checked against the address
policy by the resolver the connection itself uses, so a DNS answer that
changed since the subscription was created (or changes between two lookups)
cannot reach a refused address. IP-literal hosts never reach a resolver and
are checked before the request.
"""

from __future__ import annotations

import socket
import urllib.parse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from tracker.errors import WebhookTargetRefused
from tracker.security import ADDRESS_NOT_ALLOWED, AddressPolicy
from tracker.worker.delivery import Attempt

__all__ = ["AiohttpSender", "GuardedResolver"]

#: Most bytes of a receiver's answer that are read; the body is never used.
RESPONSE_READ_LIMIT = 64 * 1024


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class GuardedResolver(AbstractResolver):
    """Resolve like aiohttp does, then refuse the lookup if any address is not allowed."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Return the addresses of ``host``; raise WebhookTargetRefused if any is refused."""
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = self.policy.address_refusal(host, result["host"])
            if refusal is not None:
                raise WebhookTargetRefused(refusal)
        return results

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


class AiohttpSender:
    """POST webhook bodies with one shared session; refused addresses are never contacted."""

    def __init__(self, timeout: float = 10.0, policy: AddressPolicy | None = None) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.policy = policy or AddressPolicy()
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        """Send one attempt; a network error or a refused address is an outcome, not an exception."""
        refusal = self.policy.host_refusal(urllib.parse.urlsplit(url).hostname or "")
        if refusal is not None:
            return Attempt(None, error=f"{ADDRESS_NOT_ALLOWED}: {refusal}", refused=True)
        if self._session is None:
            # trust_env stays off: a proxy from the environment would resolve hosts past the guard.
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy))
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector, trust_env=False)
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(RESPONSE_READ_LIMIT)
                return Attempt(response.status, _retry_after(response.headers.get("Retry-After")))
        except WebhookTargetRefused as exc:
            return Attempt(None, error=f"{ADDRESS_NOT_ALLOWED}: {exc}", refused=True)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Attempt(None, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
