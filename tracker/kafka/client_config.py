"""How every Kafka client reaches the cluster: bootstrap servers, TLS and SASL, from the settings.

``client_options`` is the one source of connection keyword arguments for every
aiokafka producer, consumer and admin client in the tracker;
``faust_credentials`` gives the Faust app the same connection.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from tracker.errors import ConfigurationError
from tracker.settings import SASL_PROTOCOLS, TLS_PROTOCOLS, Settings

if TYPE_CHECKING:
    from faust.auth import Credentials

__all__ = ["client_options", "faust_credentials", "tls_arguments", "tls_context"]


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def tls_arguments(settings: Settings) -> dict[str, Any]:
    """Return the arguments of ``create_ssl_context``: CA bundle, client certificate, key and its password."""
    password = settings.kafka_ssl_key_password
    return {
        "cafile": _text(settings.kafka_ssl_cafile),
        "certfile": _text(settings.kafka_ssl_certfile),
        "keyfile": _text(settings.kafka_ssl_keyfile),
        "password": None if password is None else password.get_secret_value(),
    }


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """Return the TLS context for SSL and SASL_SSL (hostname checked, system CAs unless a CA file is set)."""
    if settings.kafka_security_protocol not in TLS_PROTOCOLS:
        return None
    try:
        context: ssl.SSLContext = create_ssl_context(**tls_arguments(settings))
    except (OSError, ssl.SSLError) as exc:
        # The exception names the file, never the key password.
        raise ConfigurationError(f"cannot load the Kafka TLS files: {exc}") from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Return the aiokafka keyword arguments that reach and authenticate to the cluster."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap, "security_protocol": protocol}
    context = tls_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol in SASL_PROTOCOLS:
        assert settings.kafka_sasl_password is not None  # the settings refuse SASL without one
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def faust_credentials(settings: Settings) -> Credentials | None:
    """Return the Faust ``broker_credentials`` equivalent to ``client_options`` (None for PLAINTEXT)."""
    # Imported here: `tracker publish` uses this module and needs no Faust (a fifth of a second to import).
    from faust.auth import SASLCredentials, SSLCredentials

    protocol = settings.kafka_security_protocol
    context = tls_context(settings)
    if protocol in SASL_PROTOCOLS:
        assert settings.kafka_sasl_password is not None
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None
