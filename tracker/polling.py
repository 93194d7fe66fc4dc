"""Wait for something outside the process: a condition polled until it holds, a JSON document over HTTP.

The demo, the benchmark, the worker launcher and the tests all wait for a worker to
come up or catch up; they share these two so that every wait is bounded and says
what it waited for.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tracker.errors import TrackerError
from tracker.progress import Progress

__all__ = ["http_json", "wait_until"]


def http_json(url: str, timeout: float = 5.0, token: str | None = None) -> Any:
    """GET a URL (with a bearer token if given) and decode its JSON body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; raise TrackerError after ``timeout``.

    A check that raises OSError (a refused connection), URLError or ValueError (a body
    that is not JSON yet) counts as not yet: a server that is starting does all three.
    """
    deadline = time.monotonic() + timeout
    progress = Progress(f"waiting for {what}")
    try:
        while time.monotonic() < deadline:
            try:
                result = check()
            except (OSError, urllib.error.URLError, ValueError):
                result = None
            if result:
                return result
            progress.update()
            time.sleep(interval)
    finally:
        progress.close()
    raise TrackerError(f"timed out after {timeout:.0f}s waiting for {what}")
