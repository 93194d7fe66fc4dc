"""The ``tracker`` command line: broker, worker, publish, demo, reports, subscriptions, schema, bench."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

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


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit status.

    ``env`` replaces the process's environment as the source of the TRACKER_* settings, and
    ``stdout``/``stderr`` receive what the command prints, so a test (or another program) runs
    a command in-process. A usage error returns its status (2) rather than exiting.
    """
    with contextlib.redirect_stdout(stdout or sys.stdout), contextlib.redirect_stderr(stderr or sys.stderr):
        return _run(argv, env)


def _run(argv: Sequence[str] | None, env: Mapping[str, str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check = getattr(args, "check", None)
        problem = check(args) if callable(check) else None
        if problem:
            args.parser.error(problem)  # a usage error, like argparse's own: usage, the problem, exit 2
    except SystemExit as exc:  # argparse exits on a usage error (2) and after --help (0)
        return exc.code if isinstance(exc.code, int) else 0
    try:
        settings = Settings() if env is None else Settings.from_env(env)
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
