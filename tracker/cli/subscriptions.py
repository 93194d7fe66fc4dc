"""Commands for alert subscriptions: subscribe, list, unsubscribe (through the worker's API)."""

from __future__ import annotations

import argparse

from tracker.cli import common
from tracker.cli.common import EXIT_REJECTED, EXIT_UNAVAILABLE, add_format, print_errors, show
from tracker.report import subscriptions_report
from tracker.settings import Settings

__all__ = ["register"]


def cmd_subscribe(settings: Settings, args: argparse.Namespace) -> int:
    """Create (or replace, with --id) an alert subscription on the worker."""
    channel: dict[str, object] = {"type": "sse"}
    if args.webhook:
        channel = {"type": "webhook", "url": args.webhook, "secret": args.secret, "max_attempts": args.max_attempts}
    body: dict[str, object] = {
        "owner": args.owner,
        "matchers": args.match,
        "send_resolved": not args.no_resolved,
        "repeat_interval": args.repeat_interval,
        "channel": channel,
    }
    if args.id:
        body["id"] = args.id
    status, document = common.api(settings, "POST", "/v1/subscriptions", body)
    if status >= 300:
        print_errors(status, document)
        return EXIT_REJECTED
    print(document["id"])
    return 0


def _check_subscribe(args: argparse.Namespace) -> str | None:
    if args.webhook and not args.secret:
        return "--secret is required with --webhook (the HMAC-SHA256 signing secret, at least 16 characters)"
    if args.secret and not args.webhook:
        return "--secret signs webhook deliveries: give --webhook URL too"
    return None


def cmd_subscriptions(settings: Settings, args: argparse.Namespace) -> int:
    """List alert subscriptions (secrets redacted)."""
    status, document = common.api(settings, "GET", "/v1/subscriptions")
    if status >= 300:
        print_errors(status, document)
        return EXIT_UNAVAILABLE
    return show(subscriptions_report(document, "no subscriptions (create one with `tracker subscribe`)"), args.format)


def cmd_unsubscribe(settings: Settings, args: argparse.Namespace) -> int:
    """Delete an alert subscription."""
    status, document = common.api(settings, "DELETE", f"/v1/subscriptions/{args.id}")
    if status >= 300:
        print_errors(status, document)
        return EXIT_REJECTED
    print(f"deleted {args.id}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the subscription commands."""
    subscribe = commands.add_parser("subscribe", help="subscribe to alerts (webhook, or sse for /v1/alerts/stream)")
    subscribe.add_argument("--owner", required=True, help="who owns the subscription (a label)")
    subscribe.add_argument(
        "--match",
        default="{}",
        help='Alertmanager label matchers, e.g. \'{entity="bytedance",severity=~"warning|critical"}\'',
    )
    subscribe.add_argument("--webhook", metavar="URL", help="POST notifications to this http(s) URL (needs --secret)")
    subscribe.add_argument("--secret", help="HMAC-SHA256 signing secret for the webhook (at least 16 characters)")
    subscribe.add_argument("--max-attempts", type=int, default=8, help="delivery attempts before dead-lettering")
    subscribe.add_argument("--no-resolved", action="store_true", help="do not notify when an alert resolves")
    subscribe.add_argument(
        "--repeat-interval", type=float, default=0, help="seconds between reminders while firing; 0 = transitions only"
    )
    subscribe.add_argument("--id", help="subscription id (to replace an existing one)")
    subscribe.set_defaults(run=cmd_subscribe, check=_check_subscribe, parser=subscribe, demo_aware=True)

    listing = commands.add_parser("subscriptions", help="list alert subscriptions")
    add_format(listing)
    listing.set_defaults(run=cmd_subscriptions, demo_aware=True)

    unsubscribe = commands.add_parser("unsubscribe", help="delete an alert subscription")
    unsubscribe.add_argument("id", help="subscription id")
    unsubscribe.set_defaults(run=cmd_unsubscribe, demo_aware=True)
