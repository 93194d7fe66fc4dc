"""The ``tracker`` command line: broker, worker, publish, demo, reports, subscriptions, schema, bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tracker.cli import operate, reports, subscriptions
from tracker.cli.common import EXIT_UNAVAILABLE, EXIT_USAGE
from tracker.demo_record import with_demo
from tracker.errors import ConfigurationError, TrackerError
from tracker.settings import Settings

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tracker",
        description="Event-sourced tracker of AI-infrastructure market signals (Kafka + Faust). "
        "Settings come from TRACKER_* environment variables; see README.md. After `make demo`, "
        "the commands that publish or read use the demo's topics and worker unless those are set.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    operate.register(commands)
    reports.register(commands)
    subscriptions.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    problem = check(args) if callable(check) else None
    if problem:
        args.parser.error(problem)  # a usage error, like argparse's own: usage, the problem, exit 2
    try:
        settings = Settings()
    except Exception as exc:  # pydantic reports every bad TRACKER_* variable at once
        print(f"invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "demo_aware", False):
        settings = with_demo(settings)
    try:
        return int(args.run(settings, args))
    except ConfigurationError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrackerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
