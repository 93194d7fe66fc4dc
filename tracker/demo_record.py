"""Where the demo runs (topic prefix, broker, HTTP port), kept in its data dir for the CLI's other commands.

``make demo`` picks a topic prefix of its own; a user who then runs ``tracker publish``
or ``tracker facts`` without setting ``TRACKER_TOPIC_PREFIX`` means the demo's topics.
The record says where they are. Settings the user sets explicitly always win.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tracker.settings import Settings

__all__ = ["DEMO_RECORD", "DemoRecord", "with_demo"]

DEMO_RECORD = "demo.json"
#: What the CLI needs to reach the demo's topics and worker. Secrets are never recorded.
_RECORDED = ("topic_prefix", "kafka_bootstrap", "kafka_port", "http_port", "partitions")


@dataclass(frozen=True)
class DemoRecord:
    """The settings a demo runs with, as far as a client needs them."""

    topic_prefix: str
    kafka_bootstrap: str | None
    kafka_port: int
    http_port: int
    partitions: int
    #: Whether the demo's events were published to this prefix (a re-run does not publish them again).
    seeded: bool = False

    @classmethod
    def of(cls, settings: Settings, seeded: bool) -> DemoRecord:
        """Return the record of a demo run with ``settings``."""
        return cls(**{name: getattr(settings, name) for name in _RECORDED}, seeded=seeded)

    @classmethod
    def read(cls, data_dir: Path) -> DemoRecord | None:
        """Return the record in ``data_dir``, or None when there is none (or it cannot be read)."""
        try:
            data = json.loads((data_dir / DEMO_RECORD).read_text())
            return cls(**{name: data[name] for name in (*_RECORDED, "seeded")})
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, data_dir: Path) -> None:
        """Write the record into ``data_dir``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / DEMO_RECORD).write_text(json.dumps(asdict(self), indent=2) + "\n")

    def applied(self, settings: Settings) -> Settings:
        """Return ``settings`` with the demo's values for every recorded setting the user did not set."""
        update = {name: getattr(self, name) for name in _RECORDED if name not in settings.model_fields_set}
        return settings.model_copy(update=update) if update else settings


def with_demo(settings: Settings) -> Settings:
    """Return ``settings`` pointed at the demo, unchanged without one or when another broker is set."""
    record = DemoRecord.read(settings.data_dir)
    if record is None:
        return settings
    applied = record.applied(settings)
    # A broker set explicitly that is not the demo's: the demo's topics are not there, its record does not apply.
    if (applied.kafka_bootstrap, applied.kafka_port) != (record.kafka_bootstrap, record.kafka_port):
        return settings
    return applied
