"""The Faust ceiling: a worker that takes batches of the events topic and does nothing else.

``python -m tracker.bench.faust_ceiling BOOTSTRAP TOPIC PARTITIONS TOTAL OUT [--table]`` reads
TOTAL records with ``stream.take_events`` (and, with ``--table``, one table write per
record) and writes the rate to OUT. It shows what Faust itself costs on this machine,
next to the transport and decode ceilings of the same run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust

from tracker.kafka.client_config import faust_credentials
from tracker.settings import Settings
from tracker.worker.process import QuietWorker


def main(argv: list[str]) -> None:
    """Run the ceiling worker until TOTAL records are taken, then exit."""
    bootstrap, topic_name, partitions, total, out = argv[0], argv[1], int(argv[2]), int(argv[3]), Path(argv[4])
    with_table = "--table" in argv
    app = faust.App(
        f"faust-ceiling-{os.getpid()}-{int(time.time())}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=partitions,
        datadir=str(out.parent / f"faust-ceiling-{os.getpid()}"),
        # Credentials come from the same TRACKER_* variables as every other client.
        broker_credentials=faust_credentials(Settings()),
    )
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    table = app.Table("ceiling", default=None, partitions=partitions, use_partitioner=True, key_type=str)
    state: dict[str, Any] = {"taken": 0, "started": None}

    async def take(stream: Any) -> None:
        async for events in stream.take_events(2000, within=0.05):
            if state["started"] is None:
                state["started"] = time.perf_counter()
            if with_table:
                for event in events:
                    table[str(event.message.offset)] = {"offset": event.message.offset}
            state["taken"] += len(events)
            if state["taken"] >= total:
                rate = state["taken"] / (time.perf_counter() - state["started"])
                out.write_text(json.dumps({"records": state["taken"], "rate": rate}))
                os._exit(0)

    app.agent(topic, name="take")(take)
    QuietWorker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
