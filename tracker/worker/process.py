"""How a worker process runs here: without Faust's terminal spinner, with a calmer garbage collector."""

from __future__ import annotations

import gc
import logging

import faust

__all__ = ["QuietWorker", "tune_garbage_collector"]

#: Allocations between two young-generation collections (Python's default: 700).
YOUNG_COLLECTION_EVERY = 50_000


class QuietWorker(faust.Worker):
    """A Faust worker that leaves logging levels alone."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Skip the spinner: it sets the root logger to DEBUG so that it can spin on every record."""
        # With the spinner, every library builds debug log records that are then dropped.
        self.spinner = None


def tune_garbage_collector() -> None:
    """Collect cycles less often: a fold allocates millions of short-lived objects, few in cycles.

    With the default thresholds the collector ran about every 700 allocations and
    took a third of a 200,000-record fold (docs/performance.md). Objects alive
    now (modules, settings) are frozen out of every later collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)
