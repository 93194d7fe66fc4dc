"""Who may call the API, and where webhooks may go.

API tokens are kept only as SHA-256 digests and compared in constant time.
The webhook address policy refuses loopback, private, link-local,
unspecified, multicast, otherwise non-global and cloud-metadata addresses,
unless ``TRACKER_WEBHOOK_ALLOW`` lists the host or a network holding the address.
Nothing here does I/O except ``check_webhook_url``, which resolves through
an injectable resolver.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from pydantic import SecretStr

from tracker.errors import AuthenticationError, AuthorizationError, WebhookTargetRefused

__all__ = [
    "ADDRESS_NOT_ALLOWED",
    "AddressPolicy",
    "TokenSet",
    "bearer_token",
    "check_webhook_url",
    "parse_digests",
    "parse_tokens",
    "token_digest",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], Awaitable[list[str]]]

#: The reason a webhook delivery to a refused address is dead-lettered with.
ADDRESS_NOT_ALLOWED = "address not allowed"
MIN_TOKEN_LENGTH = 16
# RFC 6750's b64token: what a Bearer credential may contain.
_TOKEN = re.compile(r"^[A-Za-z0-9._~+/-]+=*$")
_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data.ec2.internal"})
# AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over IPv6, ECS task metadata, Alibaba Cloud.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HINT = " (TRACKER_WEBHOOK_ALLOW lists exceptions)"


def token_digest(token: str) -> bytes:
    """Return the SHA-256 digest of a token, the only form in which tokens are kept."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_tokens(text: str) -> tuple[str, ...]:
    """Split comma-separated tokens; raise ValueError (never quoting a token) if one is unusable."""
    tokens = tuple(_split(text))
    if not tokens:
        raise ValueError("no token given")
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"token {number} is shorter than {MIN_TOKEN_LENGTH} characters")
        if not _TOKEN.match(token):
            raise ValueError(f"token {number} has characters a bearer token cannot carry (use A-Z a-z 0-9 . _ ~ + / -)")
    return tokens


def parse_digests(text: str) -> tuple[bytes, ...]:
    """Split comma-separated SHA-256 hex digests; raise ValueError if one is not 64 hex digits."""
    digests = _split(text)
    if not digests:
        raise ValueError("no digest given")
    for number, digest in enumerate(digests, start=1):
        if not _DIGEST.match(digest):
            raise ValueError(f"digest {number} is not 64 hexadecimal digits (sha256sum of the token)")
    return tuple(bytes.fromhex(digest) for digest in digests)


def bearer_token(header: str | None) -> str | None:
    """Return the credential of an ``Authorization: Bearer <token>`` header, or None if absent or malformed."""
    if header is None:
        return None
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return None
    return credential


class TokenSet:
    """The accepted API tokens, as digests; empty means the API is open."""

    def __init__(self, digests: Iterable[bytes] = ()) -> None:
        self._digests = tuple(digests)

    @classmethod
    def from_config(cls, tokens: SecretStr | None, digests: SecretStr | None) -> TokenSet:
        """Build from ``TRACKER_API_TOKENS`` and ``TRACKER_API_TOKEN_SHA256``, keeping only digests."""
        kept = [token_digest(token) for token in parse_tokens(tokens.get_secret_value())] if tokens else []
        kept += parse_digests(digests.get_secret_value()) if digests else []
        return cls(kept)

    @property
    def enabled(self) -> bool:
        """Return whether any token is configured (otherwise nothing is checked)."""
        return bool(self._digests)

    def accepts(self, token: str) -> bool:
        """Return whether ``token`` is one of the accepted tokens, comparing every digest in constant time."""
        presented = token_digest(token)
        found = False
        for digest in self._digests:
            # No early exit: the time taken does not tell which digest matched.
            found |= hmac.compare_digest(presented, digest)
        return found

    def authorize(self, header: str | None) -> None:
        """Check an Authorization header; raise AuthenticationError (none) or AuthorizationError (wrong)."""
        token = bearer_token(header)
        if token is None:
            raise AuthenticationError("missing bearer token")
        if not self.accepts(token):
            raise AuthorizationError("token not accepted")


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_category(address: IPAddress) -> str | None:
    """Return why an address is not a public unicast one (e.g. "loopback"), or None if it is."""
    # An IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64) reaches that IPv4 address.
    candidate = _embedded_ipv4(address)
    if candidate in _METADATA_ADDRESSES or address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (candidate.is_loopback, "loopback"),
        (candidate.is_unspecified, "unspecified"),
        (candidate.is_link_local, "link-local"),
        (candidate.is_multicast, "multicast"),
        (candidate.is_private, "private"),
        (not candidate.is_global, "not globally routable"),
    )
    return next((category for refused, category in checks if refused), None)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


@dataclass(frozen=True)
class AddressPolicy:
    """Which webhook hosts and addresses are allowed beyond public unicast ones."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> AddressPolicy:
        """Parse ``TRACKER_WEBHOOK_ALLOW``: hosts, addresses and CIDRs separated by commas."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in _split(text):
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host = _normal_host(entry)
            if not 0 < len(host) <= 253 or not all(_LABEL.match(label) for label in host.split(".")):
                raise ValueError(f"{entry!r} is neither a host name, an IP address nor a CIDR")
            hosts.add(host)
        return cls(tuple(networks), frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        """Return whether the host name itself is allow-listed (its addresses are then trusted)."""
        return _normal_host(host) in self.hosts

    def _listed(self, address: IPAddress) -> bool:
        for network in self.networks:
            if address in network:
                # A metadata address is allowed only when named exactly, never through a wider range.
                exact = network.prefixlen == network.max_prefixlen
                if address not in _METADATA_ADDRESSES or exact:
                    return True
        return False

    def address_refusal(self, host: str, address: str) -> str | None:
        """Return why ``host``'s resolved ``address`` is refused, or None if allowed."""
        if self.allows_host(host):
            return None
        parsed = ipaddress.ip_address(address)
        category = address_category(parsed)
        if category is None or self._listed(parsed):
            return None
        shown = str(parsed) if _literal(host) == parsed else f"{host} resolves to {parsed}, which"
        return f"{shown} is {category}"

    def host_refusal(self, host: str) -> str | None:
        """Return why a URL host is refused before any lookup (metadata names, IP literals), or None."""
        name = _normal_host(host)
        if self.allows_host(name):
            return None
        if name in _METADATA_HOSTS:
            return f"{name} is a cloud metadata host"
        literal = _literal(name)
        return None if literal is None else self.address_refusal(name, str(literal))


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_webhook_url(
    url: str, policy: AddressPolicy, resolve: Resolve = _getaddrinfo, timeout: float = 5.0
) -> None:
    """Resolve a webhook URL's host; raise WebhookTargetRefused if its port, host, addresses or userinfo are refused."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # They would show in every listing and dead letter; the signature authenticates the sender.
        raise WebhookTargetRefused("the URL carries credentials (user:password@); receivers verify the signature")
    try:
        port = parts.port
    except ValueError:  # urllib's own check: out of range, or not a number
        port = 0
    if port == 0:
        raise WebhookTargetRefused("the port must be a number from 1 to 65535")
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    refusal = policy.host_refusal(host)
    if refusal is not None:
        raise WebhookTargetRefused(f"{ADDRESS_NOT_ALLOWED}: {refusal}{_HINT}")
    if policy.allows_host(host) or _literal(host) is not None:
        return
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        raise WebhookTargetRefused(f"cannot resolve host {host}") from None
    if not addresses:
        raise WebhookTargetRefused(f"cannot resolve host {host}")
    for address in addresses:
        refusal = policy.address_refusal(host, address)
        if refusal is not None:
            raise WebhookTargetRefused(f"{ADDRESS_NOT_ALLOWED}: {refusal}{_HINT}")
