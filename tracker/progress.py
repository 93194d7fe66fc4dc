"""Progress of a long operation on a terminal: one line, rewritten in place, only when stderr is a TTY."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Report ``done/total`` (or the seconds waited) on one line of a terminal; silent on pipes and files."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.active = self.stream.isatty()
        self._started = time.monotonic()
        self._width = 0

    def update(self, done: int | None = None) -> None:
        """Rewrite the line with the count done so far, or with the time waited."""
        if not self.active:
            return
        waited = time.monotonic() - self._started
        if done is None:
            text = f"{self.label} ... {waited:.0f}s"
        elif self.total:
            text = f"{self.label} {done:,}/{self.total:,} ({done * 100 // self.total}%)"
        else:
            text = f"{self.label} {done:,}"
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Erase the line, so what is printed next starts clean."""
        if self.active and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
