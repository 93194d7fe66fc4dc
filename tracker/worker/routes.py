"""The worker's HTTP routes: plain aiohttp handlers, installed behind the HTTP guard on an aiohttp application.

The routes need the folded state, the reads, ingestion and notifications, not
the Faust app: the wiring (``tracker.worker.app``) installs them on the aiohttp
application Faust's web server runs (next to ``/metrics``), and a test on a
plain ``web.Application`` served in-process.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from tracker.core.decode import field_errors, parse_json
from tracker.core.matchers import parse_matchers, require_known_labels
from tracker.core.queries import alert_query, as_of_query, fact_query, overview_query, signal_query
from tracker.core.subscriptions import Subscription, WebhookChannel, capacity_refusal
from tracker.errors import InfrastructureError, InputFormatError, QueryRefused, WebhookTargetRefused
from tracker.security import TokenSet, bearer_token, check_webhook_url
from tracker.worker.api import Ingestion, TooLarge, ingest_body, read_limited, signals_document
from tracker.worker.http_guard import SMALL_BODY_LIMIT, HttpGuard
from tracker.worker.notifications import Feed, Notifications
from tracker.worker.page import install_page

if TYPE_CHECKING:
    from tracker.settings import Settings
    from tracker.worker.reads import Reads
    from tracker.worker.state import WorkerState

__all__ = ["install_routes"]

FEED_KEEPALIVE_SECONDS = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install_routes(
    web_app: web.Application, state: WorkerState, ingestion: Ingestion, notifications: Notifications, reads: Reads
) -> None:
    """Register every route of the worker, and the page, on ``web_app``, behind the HTTP guard."""
    settings = state.settings
    limit = settings.max_body_bytes
    policy = settings.webhook_policy
    labels = state.rules.label_names
    guard = HttpGuard(
        tokens=TokenSet.from_config(settings.api_tokens, settings.api_token_sha256),
        read_requires_token=settings.read_requires_token,
        timeout=settings.request_timeout_seconds,
        events_body_limit=limit,
    )
    web_app.middlewares.append(guard.middleware)
    install_page(web_app)

    async def post_events(request: web.Request) -> web.StreamResponse:
        """Validate and publish a JSON object, a JSON array or NDJSON."""
        try:
            body = await read_limited(request.content, limit)
        except TooLarge as exc:
            return _json({"error": str(exc)}, status=413)
        status, document = await ingest_body(ingestion, body)
        return _json(document, status=status)

    async def get_signals(request: web.Request) -> web.StreamResponse:
        """List derived signals; ``name``, label and ``as_of`` query parameters select them."""
        try:
            query = signal_query(request.query.items())
        except QueryRefused as exc:
            return _refusal(exc)
        return _json(signals_document(reads.signals(query), lambda _: True))

    async def get_signal_history(request: web.Request) -> web.StreamResponse:
        """Return a signal family's values after each event date of its facts (labels and ``as_of`` select)."""
        try:
            query = signal_query(request.query.items(), history=True)
        except QueryRefused as exc:
            return _refusal(exc)
        return _json(reads.history(query))

    async def get_facts(request: web.Request) -> web.StreamResponse:
        """List facts in event-time order, with their sources; filters, ``as_of`` and a cursor."""
        try:
            query = fact_query(request.query.items())
        except QueryRefused as exc:
            return _refusal(exc)
        return _json(await reads.facts(query))

    async def get_fact(request: web.Request) -> web.StreamResponse:
        """Return one fact, the signals it feeds now and the alerts it caused or resolved."""
        event_id = request.match_info["event_id"]
        try:
            as_of = as_of_query(request.query.items())
        except QueryRefused as exc:
            return _refusal(exc)
        found = await reads.fact(event_id, as_of)
        if found is None:
            return _json({"error": f"no fact {event_id!r} on this worker's partitions"}, status=404)
        return _json(found)

    async def get_alerts(request: web.Request) -> web.StreamResponse:
        """List active alerts with their provenance; ``state`` filters pending/firing, ``as_of`` re-evaluates."""
        try:
            query = alert_query(request.query.items())
        except QueryRefused as exc:
            return _refusal(exc)
        return _json({"alerts": reads.alerts(query)})

    async def get_overview(request: web.Request) -> web.StreamResponse:
        """Return a page of entities with their latest figures and the most severe active alerts, counted."""
        try:
            query = overview_query(request.query.items())
        except QueryRefused as exc:
            return _refusal(exc)
        return _json(reads.overview(query))

    async def get_alert_stream(request: web.Request) -> web.StreamResponse:
        """Stream alert transitions as Server-Sent Events; ``match`` or ``subscription`` filter them."""
        try:
            matchers = _feed_matchers(request.query, notifications)
            require_known_labels(matchers, labels)
        except ValueError as exc:
            return _json({"error": str(exc)}, status=400)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        queue = notifications.open_feed(matchers)
        try:
            await _stream(response, queue, settings)
        except (ConnectionResetError, TimeoutError, asyncio.CancelledError):
            pass  # the client went away or stopped reading
        finally:
            notifications.close_feed(queue)
        return response

    async def get_subscriptions(request: web.Request) -> web.StreamResponse:
        """List subscriptions (secrets redacted; webhook URLs too, unless the reader may write)."""
        full_url = _may_write(guard.tokens, request)
        return _json({"subscriptions": [sub.public(full_url) for sub in notifications.subscriptions()]})

    async def post_subscription(request: web.Request) -> web.StreamResponse:
        """Create or replace a subscription; errors name the field."""
        try:
            body = await read_limited(request.content, SMALL_BODY_LIMIT)
            # Strict JSON with bounded nesting: 30,000 nested arrays were a RecursionError (500).
            data = parse_json(body)
        except TooLarge as exc:
            return _json({"error": str(exc)}, status=413)
        except InputFormatError as exc:
            return _json({"error": str(exc)}, status=400)
        if not isinstance(data, dict):
            return _json({"errors": [{"path": "", "reason": "expected a JSON object"}]}, status=422)
        data.setdefault("id", f"sub-{uuid.uuid4().hex[:12]}")
        try:
            subscription = Subscription.model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc, frozenset({"webhook", "sse"}))
            return _json({"errors": [{"path": e.path, "reason": e.reason} for e in errors]}, status=422)
        try:
            require_known_labels(subscription.parsed_matchers, labels)
        except ValueError as exc:
            return _json({"errors": [{"path": "matchers", "reason": str(exc)}]}, status=422)
        # Checked against this worker's registry: creations racing on other workers may pass a cap by a few.
        full = capacity_refusal(
            notifications.subscriptions(),
            subscription,
            settings.max_subscriptions_per_owner,
            settings.max_subscriptions,
        )
        if full is not None:
            return _json({"errors": [{"path": full.path, "reason": full.reason}]}, status=409)
        if isinstance(subscription.channel, WebhookChannel):
            try:
                await check_webhook_url(subscription.channel.url, policy)
            except WebhookTargetRefused as exc:
                return _json({"errors": [{"path": "channel.url", "reason": str(exc)}]}, status=422)
        existed = notifications.get(subscription.id) is not None
        try:
            await notifications.save(subscription)
        except (InfrastructureError, TimeoutError) as exc:
            return _json({"error": f"subscription not stored: {exc}"}, status=503)
        # The guard let this write through: the writer sees what it wrote.
        return _json(subscription.public(full_url=True), status=200 if existed else 201)

    async def get_subscription(request: web.Request) -> web.StreamResponse:
        """Return one subscription (secret redacted; webhook URL too, unless the reader may write)."""
        subscription_id = request.match_info["subscription_id"]
        found = notifications.get(subscription_id)
        if found is None:
            return _json({"error": f"no subscription {subscription_id!r}"}, status=404)
        return _json(found.public(_may_write(guard.tokens, request)))

    async def delete_subscription(request: web.Request) -> web.StreamResponse:
        """Delete a subscription."""
        subscription_id = request.match_info["subscription_id"]
        if notifications.get(subscription_id) is None:
            return _json({"error": f"no subscription {subscription_id!r}"}, status=404)
        try:
            await notifications.delete(subscription_id)
        except (InfrastructureError, TimeoutError) as exc:
            return _json({"error": f"subscription not deleted: {exc}"}, status=503)
        return _json({"deleted": subscription_id})

    async def get_health(request: web.Request) -> web.StreamResponse:
        """Answer while the worker runs; report the partitions it owns and what it folded."""
        return _json(
            {
                "status": "ok",
                "partitions": sorted(state.owned_partitions()),
                **state.progress(),
                "notifications_ready": notifications.ready.is_set(),
            }
        )

    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/v1/events", post_events),
        ("GET", "/v1/signals", get_signals),
        ("GET", "/v1/signals/history", get_signal_history),
        ("GET", "/v1/facts", get_facts),
        ("GET", "/v1/facts/{event_id}", get_fact),
        ("GET", "/v1/alerts", get_alerts),
        ("GET", "/v1/overview", get_overview),
        ("GET", "/v1/alerts/stream", get_alert_stream),
        ("GET", "/v1/subscriptions", get_subscriptions),
        ("POST", "/v1/subscriptions", post_subscription),
        ("GET", "/v1/subscriptions/{subscription_id}", get_subscription),
        ("DELETE", "/v1/subscriptions/{subscription_id}", delete_subscription),
        ("GET", "/healthz", get_health),
    ]
    for method, path, handler in routes:
        if method == "GET":
            web_app.router.add_get(path, handler)  # and HEAD, as Faust's views answered it
        else:
            web_app.router.add_route(method, path, handler)


async def _stream(response: web.StreamResponse, queue: Feed, settings: Settings) -> None:
    loop = asyncio.get_running_loop()

    async def write(data: bytes) -> None:
        # A client that stops reading fills the socket buffer: bound each write.
        async with asyncio.timeout(settings.request_timeout_seconds):
            await response.write(data)

    await write(b": connected\n\n")
    started = last_sent = loop.time()
    while True:
        now = loop.time()
        if now - started >= settings.stream_max_seconds:
            await write(b": closed after stream_max_seconds; reconnect\n\n")
            return
        if now - last_sent >= settings.stream_max_idle_seconds:
            await write(b": closed after stream_max_idle_seconds without a transition; reconnect\n\n")
            return
        wait = min(
            FEED_KEEPALIVE_SECONDS,
            started + settings.stream_max_seconds - now,
            last_sent + settings.stream_max_idle_seconds - now,
        )
        try:
            transition = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            await write(b": keepalive\n\n")
            continue
        if transition is None:
            await write(b": closed, the worker is stopping; reconnect\n\n")
            return
        data = json.dumps(transition, sort_keys=True)
        await write(f"id: {transition['idempotency_key']}\nevent: {transition['status']}\ndata: {data}\n\n".encode())
        last_sent = loop.time()


def _json(document: Any, status: int = 200) -> web.Response:
    """Return a JSON response encoded as Faust's views encoded it (orjson), so answers keep their bytes."""
    body = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type="application/json", charset="utf-8")


def _refusal(exc: QueryRefused) -> web.Response:
    """Return the 400 of a refused query: the sentence, the parameter, what is accepted."""
    return _json({"error": str(exc), "parameter": exc.parameter, "accepted": exc.accepted}, status=400)


def _may_write(tokens: TokenSet, request: web.Request) -> bool:
    """Return whether the request could write: no token is configured, or it carries an accepted one."""
    if not tokens.enabled:
        return True
    token = bearer_token(request.headers.get("Authorization"))
    return token is not None and tokens.accepts(token)


def _feed_matchers(query: Any, notifications: Notifications) -> tuple[Any, ...]:
    subscription_id = query.get("subscription")
    if subscription_id is not None:
        found = notifications.get(subscription_id)
        if found is None:
            raise ValueError(f"no subscription {subscription_id!r}")
        return found.parsed_matchers
    return parse_matchers(query.get("match", "{}"))
