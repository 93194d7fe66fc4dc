"""The one settings object, read from ``TRACKER_*`` environment variables at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracker.core.routing import PeerPair, parse_peers
from tracker.security import AddressPolicy, parse_digests, parse_tokens

__all__ = ["DEFAULT_PEERS", "SASL_PROTOCOLS", "TLS_PROTOCOLS", "Settings"]

DEFAULT_PEERS = "bytedance:google:tokens_per_day,bytedance:us_hyperscalers:investment_usd"
SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


class Settings(BaseSettings):
    """Everything a worker, the CLI or the demo needs to know; frozen once built."""

    # hide_input_in_errors: an invalid secret must not be printed back in the error.
    model_config = SettingsConfigDict(env_prefix="TRACKER_", frozen=True, extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port] of an existing cluster; unset = the local broker"
    )
    kafka_port: Annotated[int, Field(ge=1, le=65535)] = 9092
    kafka_version: str = "4.1.1"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Field(ge=1, le=65535)] = 6066
    app_id: str = Field("ai-infra-tracker", pattern=r"^[A-Za-z0-9._-]+$")
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")
    data_dir: Path = Path(".tracker")
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "tracker")
    partitions: Annotated[int, Field(ge=1, le=256)] = 4
    replication_factor: Annotated[int, Field(ge=1, le=10)] = 1
    peers: str = DEFAULT_PEERS
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    # A request's records are validated, published and answered together: the cap bounds its work and its
    # answer (about 150 bytes per accepted record). 10,000 is ten times the batches `tracker bench` posts.
    max_records_per_request: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 20_000
    batch_within_seconds: Annotated[float, Field(gt=0, le=10)] = 0.05
    # Kafka's group protocol bounds it (group.min/max.session.timeout.ms: 6 s to 30 min by default).
    session_timeout_seconds: Annotated[float, Field(ge=6, le=1800)] = Field(
        20.0, description="how long the group waits for a silent worker before its partitions move"
    )
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="where a worker keeps its tables: RocksDB in data_dir, or memory"
    )
    standby_replicas: Annotated[int, Field(ge=0, le=10)] = Field(
        1, description="standby copies of each table partition kept by other workers (with two or more)"
    )
    log_level: str = "warning"
    worker_url: str | None = Field(None, description="base URL of a worker for CLI subscription commands")
    rules_path: Path | None = Field(None, description="alert rules YAML; unset = deploy/rules/default.yaml")
    api_tokens: SecretStr | None = Field(None, description="comma-separated bearer tokens accepted by the API")
    api_token_sha256: SecretStr | None = Field(None, description="comma-separated SHA-256 hex digests of tokens")
    read_requires_token: bool = False
    api_token: SecretStr | None = Field(None, description="bearer token the CLI sends to a worker")
    request_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    stream_max_idle_seconds: Annotated[float, Field(gt=0, le=86400)] = 600.0
    stream_max_seconds: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0
    webhook_allow: str = Field("", description="hosts, addresses and CIDRs webhooks may reach beyond public ones")
    # Every transition is matched against every subscription: the caps bound that work.
    max_subscriptions_per_owner: Annotated[int, Field(ge=1, le=100_000)] = 100
    max_subscriptions: Annotated[int, Field(ge=1, le=100_000)] = 1000
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None

    @field_validator("peers")
    @classmethod
    def _valid_peers(cls, value: str) -> str:
        parse_peers(value)
        return value

    @field_validator("api_tokens")
    @classmethod
    def _valid_tokens(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(value.get_secret_value())
        return value

    @field_validator("api_token_sha256")
    @classmethod
    def _valid_digests(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_digests(value.get_secret_value())
        return value

    @field_validator("webhook_allow")
    @classmethod
    def _valid_allow_list(cls, value: str) -> str:
        AddressPolicy.parse(value)
        return value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent_security(self) -> Settings:
        if self.read_requires_token and not self.api_tokens_configured:
            raise ValueError("read_requires_token needs TRACKER_API_TOKENS or TRACKER_API_TOKEN_SHA256")
        protocol = self.kafka_security_protocol
        has_credentials = self.kafka_sasl_username is not None or self.kafka_sasl_password is not None
        if protocol in SASL_PROTOCOLS and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(f"kafka_security_protocol {protocol} needs kafka_sasl_username and kafka_sasl_password")
        if protocol not in SASL_PROTOCOLS and has_credentials:
            raise ValueError(f"SASL credentials are set but kafka_security_protocol is {protocol}: use SASL_SSL")
        tls_files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if protocol not in TLS_PROTOCOLS and any(path is not None for path in tls_files):
            raise ValueError(f"TLS files are set but kafka_security_protocol is {protocol}: use SSL or SASL_SSL")
        if self.kafka_ssl_certfile is None and (self.kafka_ssl_keyfile or self.kafka_ssl_key_password):
            raise ValueError("kafka_ssl_keyfile and kafka_ssl_key_password need kafka_ssl_certfile")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from ``env``'s TRACKER_* variables alone, not from the process's environment.

        The same values as ``Settings()`` reads from ``os.environ`` (names are case-insensitive,
        unknown ones ignored): a caller running the CLI in-process hands it an environment of its own.
        """
        prefix = cls.model_config.get("env_prefix", "")
        values = {name[len(prefix) :].lower(): value for name, value in env.items() if name.upper().startswith(prefix)}
        # model_validate skips BaseSettings.__init__, so os.environ is not read; the validators all run.
        return cls.model_validate(values)

    @property
    def api_tokens_configured(self) -> bool:
        """Return whether the API requires bearer tokens (for writes, and for reads if closed)."""
        return self.api_tokens is not None or self.api_token_sha256 is not None

    @property
    def webhook_policy(self) -> AddressPolicy:
        """Return the webhook address policy with its allow list."""
        return AddressPolicy.parse(self.webhook_allow)

    @property
    def bootstrap(self) -> str:
        """Return the bootstrap servers: the external cluster, else the local broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def api_url(self) -> str:
        """Return the base URL the CLI uses to reach a worker's HTTP API."""
        return self.worker_url or f"http://127.0.0.1:{self.http_port}"

    @property
    def uses_local_broker(self) -> bool:
        """Return whether the tracker provisions its own broker."""
        return self.kafka_bootstrap is None

    @property
    def peer_pairs(self) -> tuple[PeerPair, ...]:
        """Return the configured peer pairs."""
        return parse_peers(self.peers)

    def as_env(self) -> dict[str, str]:
        """Return the settings as TRACKER_* variables, secrets in clear, to hand to a child process."""
        env = {}
        for name, value in self.model_dump(exclude_none=True).items():
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            env[f"TRACKER_{name.upper()}"] = text
        return env

    @property
    def faust_app_id(self) -> str:
        """Return the Faust app id: it names the consumer group and prefixes Faust's own topics."""
        return f"{self.topic_prefix}{self.app_id}"

    @property
    def changelog_topics(self) -> tuple[str, ...]:
        """Return the changelog topics of the worker's tables (as Faust names them)."""
        return tuple(f"{self.faust_app_id}-{table}-changelog" for table in ("series", "groups"))

    def topic(self, name: str) -> str:
        """Return a topic's full name, with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def events_topic(self) -> str:
        """Return the name of the append-only events topic."""
        return self.topic("market-events")

    @property
    def alerts_topic(self) -> str:
        """Return the name of the topic of alert transitions (keyed by fingerprint)."""
        return self.topic("market-alerts")

    @property
    def subscriptions_topic(self) -> str:
        """Return the name of the compacted topic of subscriptions (keyed by id)."""
        return self.topic("subscriptions")

    @property
    def deliveries_topic(self) -> str:
        """Return the name of the compacted ledger of delivered notifications."""
        return self.topic("notification-deliveries")

    @property
    def notifications_dead_letter_topic(self) -> str:
        """Return the name of the topic of notifications that could not be delivered."""
        return self.topic("notifications-dlq")

    @property
    def dead_letter_topic(self) -> str:
        """Return the name of the topic holding records that failed validation."""
        return self.topic("market-events-dlq")
