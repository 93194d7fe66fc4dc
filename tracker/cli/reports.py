"""Commands an analyst reads with: signals, history, facts, one fact, alerts; and retract, to withdraw a fact."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import urllib.parse
from typing import Any

from tracker.cli import common
from tracker.cli.common import (
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    Query,
    add_format,
    failures,
    pair,
    print_errors,
    show,
)
from tracker.core.decode import validate_event
from tracker.errors import EventValidationError, InfrastructureError
from tracker.report import alerts_report, fact_detail, facts_report, history_report, no_match, signals_report
from tracker.settings import Settings

__all__ = ["register"]

#: Facts asked of the worker per request while following its cursor.
PAGE_SIZE = 500


def _get(settings: Settings, path: str, query: Query) -> dict[str, Any] | int:
    """GET a read endpoint; return its document, or print the refusal and return the exit status."""
    status, document = common.api(settings, "GET", path, query=query)
    if status >= 300:
        print_errors(status, document)
        return EXIT_REJECTED if 400 <= status < 500 else EXIT_UNAVAILABLE
    return document


def cmd_signals(settings: Settings, args: argparse.Namespace) -> int:
    """Print the signals derived now (or as of a date), filtered by family and labels."""
    labels = args.label or []
    query = [("name", args.name), *labels, ("as_of", args.as_of)]
    document = _get(settings, "/v1/signals", query)
    if isinstance(document, int):
        return document
    empty = no_match("signals", {"name": args.name, **dict(labels), "as_of": args.as_of})
    return show(signals_report(document, empty), args.format)


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    """Print a signal's value after each live fact, in event-time order."""
    labels = args.label or []
    document = _get(settings, "/v1/signals/history", [("name", args.family), *labels, ("as_of", args.as_of)])
    if isinstance(document, int):
        return document
    empty = no_match(f"history of {args.family}", {**dict(labels), "as_of": args.as_of}).replace(" match ", " for ")
    return show(history_report(document, empty), args.format)


def cmd_facts(settings: Settings, args: argparse.Namespace) -> int:
    """Print the facts that match the filters, in event-time order, following the worker's cursor."""
    fields = args.field or []
    filters: list[tuple[str, str]] = [
        ("type", args.type),
        ("entity", args.entity),
        *fields,
        ("occurred_from", args.occurred_from),
        ("occurred_to", args.occurred_to),
        ("status", args.status),
        ("include_retracted", "true" if args.include_retracted else ""),
        ("as_of", args.as_of),
    ]
    facts: list[dict[str, Any]] = []
    cursor = ""
    while len(facts) < args.limit:
        page = [*filters, ("limit", str(min(PAGE_SIZE, args.limit - len(facts)))), ("cursor", cursor)]
        document = _get(settings, "/v1/facts", page)
        if isinstance(document, int):
            return document
        facts.extend(document.get("facts", []))
        cursor = document.get("next_cursor") or ""
        if not cursor:
            break
    if cursor:
        print(f"(first {len(facts)} facts; --limit N shows more)", file=sys.stderr)
    empty = no_match("facts", {key: value for key, value in filters if value})
    return show(facts_report({"facts": facts, "next_cursor": cursor or None}, empty), args.format)


def cmd_fact(settings: Settings, args: argparse.Namespace) -> int:
    """Print one fact with its source and quote, the signals it feeds and the alerts it caused."""
    status, document = common.api(settings, "GET", f"/v1/facts/{urllib.parse.quote(args.id, safe='')}")
    if status == 404:
        print(f"no fact {args.id} is known to the worker", file=sys.stderr)
        return EXIT_REJECTED
    if status >= 300:
        print_errors(status, document)
        return EXIT_UNAVAILABLE
    if args.format == "json":
        import json

        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(fact_detail(document))
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    """Print the active alerts (now, or as of a date), most severe first."""
    document = _get(settings, "/v1/alerts", [("state", args.state), ("as_of", args.as_of)])
    if isinstance(document, int):
        return document
    empty = no_match("alerts", {"state": args.state, "as_of": args.as_of})
    return show(alerts_report(document, empty), args.format)


def _known_to_worker(settings: Settings, fact_id: str) -> None:
    """Warn, without refusing, when the worker does not know ``fact_id``: the fact may arrive later."""
    try:
        status, document = common.api(settings, "GET", f"/v1/facts/{urllib.parse.quote(fact_id, safe='')}")
    except InfrastructureError as exc:
        print(f"warning: could not check that {fact_id} exists: {exc}", file=sys.stderr)
        return
    if status == 404:
        print(
            f"warning: the worker does not know {fact_id}; the retraction is published anyway "
            "and applies when the fact arrives (check the id for typos)",
            file=sys.stderr,
        )
    elif status < 300 and (document.get("fact") or {}).get("retracted_by"):
        print(f"note: {fact_id} is already retracted by {document['fact']['retracted_by']['id']}", file=sys.stderr)


def cmd_retract(settings: Settings, args: argparse.Namespace) -> int:
    """Publish an ``event.retracted`` for a fact id; its contribution is removed everywhere."""
    record: dict[str, Any] = {
        "type": "event.retracted",
        "target_id": args.id,
        "reason": args.reason,
        # Knowledge time of the retraction: "as of" answers before this date still see the fact.
        "occurred_on": args.on or dt.date.today().isoformat(),
        "source": {"name": args.source, **({"url": args.url} if args.url else {})},
    }
    try:
        event = validate_event(record)
    except EventValidationError as exc:
        for problem in exc.errors:
            print(f"{problem.path}: {problem.reason}", file=sys.stderr)
        return EXIT_REJECTED
    _known_to_worker(settings, args.id)
    failed = failures(common.publish_events(settings, [event]))
    if failed:
        print(f"failed: {failed[0]}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"retracted {args.id}: published {event.event_id} -> {settings.events_topic}")
    return 0


def _as_of(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", metavar="DATE", help="what was known on YYYY, YYYY-MM or YYYY-MM-DD")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the report commands and retract."""
    signals = commands.add_parser("signals", help="print the signals (latest values, growth, ratios, ...)")
    signals.add_argument("name", nargs="?", help="only this family, e.g. market_usage")
    signals.add_argument(
        "--label", action="append", type=pair, metavar="NAME=VALUE", help="only signals with this label"
    )
    _as_of(signals)
    add_format(signals)
    signals.set_defaults(run=cmd_signals, demo_aware=True)

    history = commands.add_parser("history", help="print a signal's value after each fact, by event time")
    history.add_argument("family", help="signal family, e.g. market_usage")
    history.add_argument(
        "--label", action="append", type=pair, metavar="NAME=VALUE", help="e.g. entity=bytedance (repeat)"
    )
    _as_of(history)
    add_format(history)
    history.set_defaults(run=cmd_history, demo_aware=True)

    facts = commands.add_parser("facts", help="print facts with their sources, by event time")
    facts.add_argument("--type", help="e.g. usage.reported")
    facts.add_argument("--entity", help="e.g. bytedance")
    facts.add_argument(
        "--field", action="append", type=pair, metavar="NAME=VALUE", help="a slug field, e.g. metric=mau"
    )
    facts.add_argument("--from", dest="occurred_from", metavar="DATE", help="occurred on or after DATE")
    facts.add_argument("--to", dest="occurred_to", metavar="DATE", help="occurred on or before DATE")
    facts.add_argument("--status", help="reported, planned, ...")
    facts.add_argument("--include-retracted", action="store_true", help="also list retracted facts")
    facts.add_argument("--limit", type=int, default=1000, help="most facts to print (default 1000)")
    _as_of(facts)
    add_format(facts)
    facts.set_defaults(run=cmd_facts, demo_aware=True)

    fact = commands.add_parser("fact", help="print one fact: source, quote, the signals and alerts it feeds")
    fact.add_argument("id", help="the fact's id")
    fact.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    fact.set_defaults(run=cmd_fact, demo_aware=True)

    alerts = commands.add_parser("alerts", help="print the active alerts")
    alerts.add_argument("--state", help="pending or firing")
    _as_of(alerts)
    add_format(alerts)
    alerts.set_defaults(run=cmd_alerts, demo_aware=True)

    retract = commands.add_parser("retract", help="withdraw a wrong fact (publishes event.retracted)")
    retract.add_argument("id", help="id of the fact to retract")
    retract.add_argument("--reason", required=True, help="why the fact is wrong")
    retract.add_argument("--source", required=True, help="who says so (a source name)")
    retract.add_argument("--url", help="a link to the correction")
    retract.add_argument("--on", metavar="DATE", help="when the retraction became known (default: today)")
    retract.set_defaults(run=cmd_retract, demo_aware=True)
