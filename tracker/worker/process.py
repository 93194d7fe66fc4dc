"""How a Faust worker process runs here: without the terminal spinner."""

from __future__ import annotations

import logging

import faust

__all__ = ["QuietWorker"]


class QuietWorker(faust.Worker):
    """A Faust worker that leaves logging levels alone."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Skip the spinner: it sets the root logger to DEBUG so that it can spin on every record."""
        # With the spinner, every library builds debug log records that are then dropped.
        self.spinner = None
