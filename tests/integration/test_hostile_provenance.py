"""One write must never stall the fold (issue 14, finding 1), against a real broker and worker.

N ``export_rule.changed`` facts of one authority, product and destination
used to write N transitions that each carried the provenance of all N
records: the alerts topic grew with N squared, until a transition was too
large for the broker and the fold retried it forever. Now a transition
carries its own causes (bounded), and a record the broker refuses for good
goes to the dead-letter topic with its reason while the fold goes on.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.conftest import ROOT, RunningWorker
from tests.integration.fault_helpers import health_or_none, record_figures
from tests.integration.helpers import post
from tests.integration.kafka_helpers import read_topic
from tracker.kafka.topics import ensure_topics
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FACTS = 16_000
#: Facts per request: under the records-per-request cap, and a body of about 1.3 MB.
PER_REQUEST = 4_000


def export_fact(number: int) -> dict[str, Any]:
    """Return one export-rule change of the same authority, product and destination, with a 128-character id."""
    return {
        "type": "export_rule.changed",
        "id": f"probe-{number:07d}-" + "x" * 114,
        "authority": "us_government",
        "product": "nvidia_h200",
        "destination": "CN",
        "direction": "tightened" if number % 2 else "loosened",
        "effective_on": "2025-12",
        "occurred_on": "2025-12",
        "source": {"name": "probe"},
    }


def folded(worker: RunningWorker) -> int:
    """Return how many records the worker has folded (0 while it does not answer)."""
    return int((health_or_none(worker.url) or {}).get("folded", 0))


def visible(worker: RunningWorker, name: str, **labels: str) -> bool:
    """Return whether /v1/signals shows a signal ``name`` with ``labels``."""
    query = "&".join([f"name={name}", *(f"{key}={value}" for key, value in labels.items())])
    status, document = http_get(f"{worker.url}/v1/signals?{query}")
    return status == 200 and bool(document["signals"])


def http_get(url: str) -> tuple[int, Any]:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_the_alerts_topic_grows_in_proportion_to_the_facts_of_one_busy_series(
    settings_factory: Callable[..., Settings], worker_factory: Callable[[Settings], RunningWorker]
) -> None:
    # Arrange
    settings = settings_factory()
    worker = worker_factory(settings)
    bodies = [
        "\n".join(json.dumps(export_fact(n)) for n in range(start, start + PER_REQUEST)).encode()
        for start in range(0, FACTS, PER_REQUEST)
    ]
    sent = sum(len(body) for body in bodies)

    # Act
    started = time.monotonic()
    for body in bodies:
        status, document = post(f"{worker.url}/v1/events", body)
        assert status == 202 and document["accepted"] == PER_REQUEST, (status, str(document)[:500])
    wait_until(f"the worker to fold {FACTS} facts", lambda: folded(worker) >= FACTS, timeout=300)
    took = time.monotonic() - started
    alerts = read_topic(settings, settings.alerts_topic, at_least=FACTS, timeout=120)

    # Assert: one firing transition per fact, each carrying its own cause, and bytes in proportion.
    written = sum(len(record.value or b"") for record in alerts)
    documents = [json.loads(record.value) for record in alerts]
    firing = {d["alert"]["labels"]["event_id"] for d in documents if d["status"] == "firing"}
    assert firing == {export_fact(n)["id"] for n in range(FACTS)}
    assert all(len(d["provenance"]["events"]) <= 20 for d in documents)
    assert all(len(record.value or b"") < 4096 for record in alerts)
    assert written < 8 * sent, (written, sent)
    # The fold goes on: a fact posted afterwards is folded and visible.
    status, _ = post(f"{worker.url}/v1/events", (ROOT / "events" / "samples" / "seed.jsonl").read_bytes())
    assert status == 202
    wait_until("a later fact to be visible", lambda: visible(worker, "market_usage", entity="doubao"), 60)
    record_figures(
        "provenance_one_busy_series",
        {
            "facts": FACTS,
            "bytes_posted": sent,
            "alerts_topic_records": len(alerts),
            "alerts_topic_bytes": written,
            "alerts_bytes_per_posted_byte": round(written / sent, 2),
            "seconds_to_fold": round(took, 1),
        },
    )


def test_a_transition_the_broker_refuses_for_good_is_dead_lettered_and_the_fold_goes_on(
    settings_factory: Callable[..., Settings], worker_factory: Callable[[Settings], RunningWorker]
) -> None:
    # Arrange: an alerts topic that refuses every transition (each is larger than 200 bytes).
    settings = settings_factory()
    asyncio.run(ensure_topics(settings))
    asyncio.run(limit_record_size(settings, settings.alerts_topic, 200))
    worker = worker_factory(settings)
    seed = (ROOT / "events" / "samples" / "seed.jsonl").read_bytes()

    # Act: the seed fires three alerts, whose transitions the broker refuses.
    status, _ = post(f"{worker.url}/v1/events", seed)
    assert status == 202

    # Assert: the three are dead-lettered with their reason, and the fold went on.
    letters = [json.loads(r.value) for r in read_topic(settings, settings.dead_letter_topic, at_least=3, timeout=90)]
    refused = [letter for letter in letters if letter["reason"] == "refused_by_broker"]
    assert len(refused) == 3, letters
    assert {letter["topic"] for letter in refused} == {settings.alerts_topic}
    assert {letter["error"] for letter in refused} == {"MessageSizeTooLargeError"}
    assert all(letter["bytes"] > 200 for letter in refused)
    wait_until("the seed to be folded", lambda: folded(worker) >= 10, 60)
    later = {
        "type": "usage.reported",
        "entity": "acme",
        "metric": "mau",
        "value": {"value": 1e6, "unit": "users"},
        "occurred_on": "2025-12",
        "source": {"name": "probe"},
    }
    status, _ = post(f"{worker.url}/v1/events", json.dumps(later).encode())
    assert status == 202
    wait_until("a later fact to be visible", lambda: visible(worker, "market_usage", entity="acme"), 60)


async def limit_record_size(settings: Settings, topic: str, limit: int) -> None:
    """Set a topic's ``max.message.bytes``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})
        responses = await admin.alter_configs([resource])
        assert not [code for r in responses for code, *_ in r.resources if code], responses
    finally:
        await admin.close()
