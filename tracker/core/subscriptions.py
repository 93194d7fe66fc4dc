"""Alert subscriptions: who wants which alerts, through which channel; and what they receive.

A subscription is event-sourced like everything else: the registry is the
fold of a compacted topic keyed by subscription id (a record with no value
deletes). The webhook body follows Alertmanager's webhook format (version 4)
so existing receivers work unchanged; our provenance rides under ``tracker``.
A webhook URL may carry a credential in its path or query (Slack's do), so
only its scheme, host and port are shown to readers who may not write.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from tracker.core.dates import PartialDate
from tracker.core.events import check_http_url
from tracker.core.matchers import Matcher, match_all, parse_matchers
from tracker.errors import FieldError

__all__ = [
    "MIN_REPEAT_INTERVAL",
    "REDACTED",
    "SIGNATURE_HEADER",
    "SseChannel",
    "Subscription",
    "WebhookChannel",
    "capacity_refusal",
    "check_port",
    "redact_url",
    "sign",
    "verify",
    "webhook_body",
]

SIGNATURE_HEADER = "X-Tracker-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_ZERO_TIME = "0001-01-01T00:00:00Z"
#: Shortest reminder period, in seconds: a reminder round is computed on a one-second timer,
#: so a tiny period sent one reminder per alert per second to the receiver.
MIN_REPEAT_INTERVAL = 60.0
#: What stands for a webhook URL's path, query and fragment where they are not shown.
REDACTED = "<redacted>"
_PORT = re.compile(r"^[0-9]{1,5}$")


def _authority(url: str) -> str:
    # ``host[:port]`` as written, without any ``user:password@`` (never shown).
    return urllib.parse.urlsplit(url).netloc.rpartition("@")[2]


def _port_text(authority: str) -> str | None:
    if authority.startswith("["):  # an IPv6 literal: the port follows the closing bracket
        rest = authority.partition("]")[2]
        if rest and not rest.startswith(":"):
            raise ValueError("the host is not a valid IPv6 literal")
        return rest[1:] if rest else None
    _, colon, port = authority.partition(":")
    return port if colon else None


def check_port(url: str) -> str:
    """Accept a URL without a port or with a numeric one from 1 to 65535; raise ValueError otherwise."""
    port = _port_text(_authority(url))
    # ``http://host:/`` means the default port, as urllib and aiohttp read it.
    if port and (not _PORT.match(port) or not 1 <= int(port) <= 65535):
        raise ValueError(f"the port must be a number from 1 to 65535, not {port[:20]!r}")
    return url


def redact_url(url: str) -> str:
    """Return the URL with scheme, host and port only; any path, query or fragment becomes ``/<redacted>``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # a stored URL today's checks refuse: show nothing of it
        return REDACTED
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{shown}/{REDACTED}"
    return shown + parts.path


class WebhookChannel(BaseModel):
    """Deliver by HTTP POST to ``url``, signed with ``secret``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["webhook"]
    url: Annotated[str, Field(max_length=2000), AfterValidator(check_http_url), AfterValidator(check_port)]
    secret: SecretStr = Field(min_length=16, max_length=256)
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 8


class SseChannel(BaseModel):
    """Deliver to clients holding ``GET /v1/alerts/stream`` open."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["sse"]


class Subscription(BaseModel):
    """Who wants which alerts (label matchers), and how they receive them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    owner: Annotated[str, Field(min_length=1, max_length=200)]
    matchers: Annotated[str, Field(max_length=2000)] = "{}"
    send_resolved: bool = True
    repeat_interval: Annotated[float, Field(ge=0, le=30 * 24 * 3600)] = 0
    channel: WebhookChannel | SseChannel = Field(discriminator="type")

    @field_validator("matchers")
    @classmethod
    def _valid_matchers(cls, value: str) -> str:
        parse_matchers(value)
        return value

    @field_validator("repeat_interval")
    @classmethod
    def _valid_repeat_interval(cls, value: float) -> float:
        if 0 < value < MIN_REPEAT_INTERVAL:
            raise ValueError(f"must be 0 (no reminders) or at least {MIN_REPEAT_INTERVAL:g} seconds")
        return value

    @functools.cached_property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        """Return the matchers as objects, parsed once (``wants`` runs for every alert)."""
        return parse_matchers(self.matchers)

    def wants(self, labels: Mapping[str, str], status: str) -> bool:
        """Return whether this subscription receives a transition of an alert with these labels."""
        if status == "resolved" and not self.send_resolved:
            return False
        return match_all(self.parsed_matchers, labels)

    def public(self, full_url: bool = False) -> dict[str, Any]:
        """Return the subscription as JSON data, secret redacted, URL too unless ``full_url``."""
        data = self.model_dump(mode="json")
        if data["channel"]["type"] == "webhook":
            data["channel"]["secret"] = "**********"
            if not full_url:
                data["channel"]["url"] = redact_url(data["channel"]["url"])
        return data

    def stored(self) -> dict[str, Any]:
        """Return the subscription as JSON data for the subscriptions topic (secret included)."""
        data = self.model_dump(mode="json")
        if isinstance(self.channel, WebhookChannel):
            data["channel"]["secret"] = self.channel.secret.get_secret_value()
        return data


def capacity_refusal(
    existing: Iterable[Subscription], candidate: Subscription, per_owner: int, total: int
) -> FieldError | None:
    """Return why storing ``candidate`` would pass a cap (per owner, in all), or None if it fits."""
    others = [sub for sub in existing if sub.id != candidate.id]  # a replacement is not one more
    owned = sum(sub.owner == candidate.owner for sub in others)
    if owned >= per_owner:
        return FieldError(
            "owner",
            f"owner {candidate.owner[:200]!r} already has {owned} subscriptions, the most one owner may have "
            f"(TRACKER_MAX_SUBSCRIPTIONS_PER_OWNER={per_owner}); delete one first",
        )
    if len(others) >= total:
        return FieldError(
            "",
            f"there are already {len(others)} subscriptions, the most a cluster may hold "
            f"(TRACKER_MAX_SUBSCRIPTIONS={total}); delete one first",
        )
    return None


def _rfc3339(date: dt.datetime) -> str:
    return date.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(date: str) -> dt.datetime:
    return dt.datetime.combine(PartialDate.parse(date).start, dt.time(), dt.UTC)


def webhook_body(subscription_id: str, transition: Mapping[str, Any], external_url: str) -> dict[str, Any]:
    """Return the Alertmanager-compatible (version 4) body for one transition."""
    alert = transition["alert"]
    status = transition["status"]
    # Both in event time: the first day of the date the condition started (and stopped) holding.
    starts = _rfc3339(_day(alert["since"]))
    # A transition written before ``until`` existed ends at its wall-clock evaluation, as it used to.
    until = alert.get("until") or None
    if status != "resolved":
        ends = _ZERO_TIME
    elif until is not None:
        ends = _rfc3339(_day(until))
    else:
        ends = _rfc3339(dt.datetime.fromtimestamp(transition["evaluated_at"], dt.UTC))
    labels = dict(alert["labels"])
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alert["rule"]}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": subscription_id,
        "groupLabels": {"alertname": alert["rule"]},
        "commonLabels": labels,
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": external_url,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": dict(alert["annotations"]),
                "startsAt": starts,
                "endsAt": ends,
                "generatorURL": f"{external_url}/v1/alerts",
                "fingerprint": alert["fingerprint"],
            }
        ],
        "tracker": {
            "idempotency_key": transition["idempotency_key"],
            "since": alert["since"],
            "until": alert.get("until") or None,
            "value": alert["value"],
            "provenance": transition["provenance"],
        },
    }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Return the signature header value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: float, tolerance: float = 300) -> bool:
    """Check a signature header the way a receiver should: right HMAC and a recent timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
