"""What every command shares: exit codes, the worker's HTTP API, publishing, the output format flag."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from tracker.core.events import Event
from tracker.errors import InfrastructureError, PublishError
from tracker.progress import Progress
from tracker.report import FORMATS, Report, render
from tracker.rules_file import build_router
from tracker.settings import Settings

__all__ = [
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "Query",
    "add_format",
    "api",
    "pair",
    "print_errors",
    "publish_events",
    "show",
]

EXIT_REJECTED = 1
EXIT_UNAVAILABLE = 2
EXIT_USAGE = 64

Query = Sequence[tuple[str, str]]


def api(
    settings: Settings, method: str, path: str, body: object | None = None, query: Query = ()
) -> tuple[int, dict[str, Any]]:
    """Call the worker's HTTP API; return the status and the decoded JSON answer."""
    given = [(key, value) for key, value in query if value not in (None, "")]
    url = f"{settings.api_url}{path}" + (f"?{urllib.parse.urlencode(given)}" if given else "")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=settings.request_timeout_seconds) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {"error": f"HTTP {error.code} {error.reason}"}
    except (urllib.error.URLError, OSError) as error:
        raise InfrastructureError(
            f"cannot reach the worker at {settings.api_url} ({error}): is it running? "
            "`make demo` starts one, `tracker worker` runs one"
        ) from None


def print_errors(status: int, document: dict[str, Any]) -> None:
    """Print the worker's refusal on stderr: each field error, or the error with what is accepted."""
    for error in document.get("errors", []) or []:
        print(f"{error.get('path') or '(body)'}: {error.get('reason')}", file=sys.stderr)
    if "error" in document:
        parameter, error = document.get("parameter"), str(document["error"])
        named = not parameter or error.startswith(f"{parameter}:")
        print(error if named else f"{parameter}: {error}", file=sys.stderr)
        accepted = document.get("accepted")
        if accepted:
            listed = ", ".join(str(item) for item in accepted) if isinstance(accepted, list) else str(accepted)
            print(f"accepted: {listed}", file=sys.stderr)
    if not document.get("errors") and "error" not in document:
        print(f"the worker answered HTTP {status}", file=sys.stderr)


def pair(text: str) -> tuple[str, str]:
    """Split a ``NAME=VALUE`` flag value (an argparse type: a bad one is a usage error naming the flag)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return key, value


def add_format(parser: argparse.ArgumentParser) -> None:
    """Add ``--format table|json|csv``."""
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table (default), json (the API's answer) or csv"
    )


def show(report: Report, form: str) -> int:
    """Print a report in the chosen format; return exit status 0."""
    print(render(report, form))  # type: ignore[arg-type]  # argparse checked the choice
    return 0


def publish_events(settings: Settings, events: Sequence[Event]) -> list[Any]:
    """Publish ``events``, creating the topics first on a fresh broker; return a receipt or a PublishError for each."""
    from tracker.kafka.publisher import TOPIC_MISSING, Publisher
    from tracker.kafka.topics import ensure_topics

    progress = Progress(f"publishing to {settings.events_topic}", total=len(events))

    async def run() -> list[Any]:
        publisher = Publisher(settings, build_router(settings))
        try:
            await publisher.start()
        except PublishError as exc:
            # Only a broker without the events topic pays for ensure_topics' admin requests
            # (a create per topic, then describes): once the topics exist, a publish is
            # one metadata request and the records.
            if exc.code != TOPIC_MISSING:
                raise
            await ensure_topics(settings)
            await publisher.start()
        try:
            return list(await publisher.publish(events, progress.update))
        finally:
            await publisher.stop()

    try:
        return asyncio.run(run()) if events else []
    finally:
        progress.close()


def failures(receipts: Sequence[Any]) -> list[PublishError]:
    """Return the receipts that are errors."""
    return [receipt for receipt in receipts if isinstance(receipt, PublishError)]
