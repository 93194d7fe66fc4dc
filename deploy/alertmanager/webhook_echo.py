"""Print every Alertmanager webhook notification it receives, one line per alert.

The example receiver of the compose stack (standard library only, run in a
python:3.11-slim container): ``python webhook_echo.py [--port 9099]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1024 * 1024


def describe(notification: dict[str, Any]) -> list[str]:
    """Return one line per alert of an Alertmanager (version 4) notification."""
    lines = []
    for alert in notification.get("alerts", []):
        labels = alert.get("labels", {})
        summary = alert.get("annotations", {}).get("summary", "")
        name = labels.get("alertname", "?")
        severity = labels.get("severity", "?")
        lines.append(f"{alert.get('status', '?')} {name} [{severity}] {summary}".rstrip())
    return lines


class Handler(BaseHTTPRequestHandler):
    """Answer 200 to a JSON POST and print its alerts; 400 to anything unreadable."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            if length > MAX_BODY:
                raise ValueError(f"body over {MAX_BODY} bytes")
            notification = json.loads(self.rfile.read(length))
            lines = describe(notification)
        except (ValueError, AttributeError) as exc:
            self.send_error(400, str(exc))
            return
        for line in lines:
            print(line, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        # Only the alerts go to stdout: that is what `docker compose logs` should show.
        pass


def main() -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (0.0.0.0 inside a container)")
    parser.add_argument("--port", type=int, default=9099)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on {args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
