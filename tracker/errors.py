"""Every exception the tracker raises on purpose.

    TrackerError
    ├── DomainError                  a fact or a request breaks the contract
    │   ├── EventValidationError     one record failed the event contract
    │   ├── InputFormatError         a body or file could not be parsed at all
    │   │   └── TooManyRecords       a body holds more records than one request may carry
    │   ├── AuthenticationError      a request carries no bearer token (HTTP 401)
    │   ├── AuthorizationError       a request's bearer token is not accepted (HTTP 403)
    │   ├── QueryRefused             a read names an unknown parameter, family, label or value (HTTP 400)
    │   └── WebhookTargetRefused     a webhook URL's host or address is not allowed
    ├── ConfigurationError           settings or a config file are unusable
    └── InfrastructureError          something outside the process failed
        ├── BrokerError              provisioning or running the local broker
        └── PublishError             the broker did not acknowledge a record

Infrastructure errors keep the client library's error as ``__cause__`` and,
where the library has one, its error code in ``code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "BrokerError",
    "ConfigurationError",
    "DomainError",
    "EventValidationError",
    "FieldError",
    "InfrastructureError",
    "InputFormatError",
    "PublishError",
    "QueryRefused",
    "TooManyRecords",
    "TrackerError",
    "WebhookTargetRefused",
]


@dataclass(frozen=True)
class FieldError:
    """One reason a record was refused, located by its field path."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


class TrackerError(Exception):
    """Base of every error the tracker raises on purpose."""


class DomainError(TrackerError):
    """A fact or a request breaks the event contract."""


class EventValidationError(DomainError):
    """One record failed validation; ``errors`` locates each problem."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


class InputFormatError(DomainError):
    """A body or a file could not be parsed as JSON, JSON Lines or a JSON array."""


class TooManyRecords(InputFormatError):
    """A body holds more records than one request may carry; ``limit`` is how many it may."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"more than {limit} records")


class AuthenticationError(DomainError):
    """A request that needs a bearer token has none, or a malformed Authorization header."""


class AuthorizationError(DomainError):
    """A request's bearer token matches none of the accepted tokens."""


class WebhookTargetRefused(DomainError):
    """A webhook URL names a host, or resolves to an address, that the policy refuses."""


class ConfigurationError(TrackerError):
    """Settings or a configuration file cannot be used."""


class InfrastructureError(TrackerError):
    """Something outside the process (broker, network, JVM) failed."""

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


class BrokerError(InfrastructureError):
    """The local Kafka broker could not be provisioned, started or stopped."""


class PublishError(InfrastructureError):
    """The broker did not acknowledge a record."""


class QueryRefused(DomainError):
    """A read names an unknown parameter, signal family, label or value: never answered with nothing."""

    def __init__(self, parameter: str, reason: str, accepted: Sequence[str] = ()) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.accepted = list(accepted)
