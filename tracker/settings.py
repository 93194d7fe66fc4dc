"""The one settings object, read from ``TRACKER_*`` environment variables at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracker.core.routing import PeerPair, parse_peers

__all__ = ["DEFAULT_PEERS", "Settings"]

DEFAULT_PEERS = "bytedance:google:tokens_per_day,bytedance:us_hyperscalers:investment_usd"


class Settings(BaseSettings):
    """Everything a worker, the CLI or the demo needs to know; frozen once built."""

    model_config = SettingsConfigDict(env_prefix="TRACKER_", frozen=True, extra="ignore")

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
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 2000
    batch_within_seconds: Annotated[float, Field(gt=0, le=10)] = 0.05
    log_level: str = "warning"
    worker_url: str | None = Field(None, description="base URL of a worker for CLI subscription commands")
    rules_path: Path | None = Field(None, description="alert rules YAML; unset = deploy/rules/default.yaml")

    @field_validator("peers")
    @classmethod
    def _valid_peers(cls, value: str) -> str:
        parse_peers(value)
        return value

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
        """Return the settings as TRACKER_* variables, to hand to a child process."""
        env = {}
        for name, value in self.model_dump(exclude_none=True).items():
            env[f"TRACKER_{name.upper()}"] = str(value)
        return env

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
