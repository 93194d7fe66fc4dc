"""The worker's HTTP routes, served by Faust's web server next to ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any, cast

import faust
from aiohttp import web as aioweb
from faust.web import Request, Response, View
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
    from tracker.worker.app import Worker
    from tracker.worker.reads import Reads

__all__ = ["install_routes"]

FEED_KEEPALIVE_SECONDS = 15.0


def install_routes(
    app: faust.App, worker: Worker, ingestion: Ingestion, notifications: Notifications, reads: Reads
) -> None:
    """Register every route of the worker on the Faust app, behind the HTTP guard."""
    settings = worker.settings
    limit = settings.max_body_bytes
    policy = settings.webhook_policy
    labels = worker.rules.label_names
    guard = HttpGuard(
        tokens=TokenSet.from_config(settings.api_tokens, settings.api_token_sha256),
        read_requires_token=settings.read_requires_token,
        timeout=settings.request_timeout_seconds,
        events_body_limit=limit,
    )
    # Faust's aiohttp driver, the one the worker runs, holds the aiohttp application.
    app.web.web_app.middlewares.append(guard.middleware)  # type: ignore[attr-defined]
    install_page(app)

    @app.page("/v1/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            """Validate and publish a JSON object, a JSON array or NDJSON."""
            try:
                body = await read_limited(_raw(request).content, limit)
            except TooLarge as exc:
                return self.json({"error": str(exc)}, status=413)
            status, document = await ingest_body(ingestion, body)
            return self.json(document, status=status)

    @app.page("/v1/signals")
    class Signals(View):
        async def get(self, request: Request) -> Response:
            """List derived signals; ``name``, label and ``as_of`` query parameters select them."""
            try:
                query = signal_query(request.query.items())
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            return self.json(signals_document(reads.signals(query), lambda _: True))

    @app.page("/v1/signals/history")
    class SignalHistory(View):
        async def get(self, request: Request) -> Response:
            """Return a signal family's values after each event date of its facts (labels and ``as_of`` select)."""
            try:
                query = signal_query(request.query.items(), history=True)
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            return self.json(reads.history(query))

    @app.page("/v1/facts")
    class Facts(View):
        async def get(self, request: Request) -> Response:
            """List facts in event-time order, with their sources; filters, ``as_of`` and a cursor."""
            try:
                query = fact_query(request.query.items())
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            return self.json(await reads.facts(query))

    @app.page("/v1/facts/{event_id}")
    class OneFact(View):
        async def get(self, request: Request, event_id: str) -> Response:
            """Return one fact, the signals it feeds now and the alerts it caused or resolved."""
            try:
                as_of = as_of_query(request.query.items())
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            found = await reads.fact(event_id, as_of)
            if found is None:
                return self.json({"error": f"no fact {event_id!r} on this worker's partitions"}, status=404)
            return self.json(found)

    @app.page("/v1/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            """List active alerts with their provenance; ``state`` filters pending/firing, ``as_of`` re-evaluates."""
            try:
                query = alert_query(request.query.items())
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            return self.json({"alerts": reads.alerts(query)})

    @app.page("/v1/overview")
    class Overview(View):
        async def get(self, request: Request) -> Response:
            """Return a page of entities with their latest figures and the most severe active alerts, counted."""
            try:
                query = overview_query(request.query.items())
            except QueryRefused as exc:
                return self.json(_refusal(exc), status=400)
            return self.json(reads.overview(query))

    @app.page("/v1/alerts/stream")
    class AlertStream(View):
        async def get(self, request: Request) -> Any:
            """Stream alert transitions as Server-Sent Events; ``match`` or ``subscription`` filter them."""
            try:
                matchers = _feed_matchers(request.query, notifications)
                require_known_labels(matchers, labels)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(_raw(request))
            queue = notifications.open_feed(matchers)
            try:
                await _stream(response, queue, settings)
            except (ConnectionResetError, TimeoutError, asyncio.CancelledError):
                pass  # the client went away or stopped reading
            finally:
                notifications.close_feed(queue)
            return response

    @app.page("/v1/subscriptions")
    class Subscriptions(View):
        async def get(self, request: Request) -> Response:
            """List subscriptions (secrets redacted; webhook URLs too, unless the reader may write)."""
            full_url = _may_write(guard.tokens, request)
            return self.json({"subscriptions": [sub.public(full_url) for sub in notifications.subscriptions()]})

        async def post(self, request: Request) -> Response:
            """Create or replace a subscription; errors name the field."""
            try:
                body = await read_limited(_raw(request).content, SMALL_BODY_LIMIT)
                # Strict JSON with bounded nesting: 30,000 nested arrays were a RecursionError (500).
                data = parse_json(body)
            except TooLarge as exc:
                return self.json({"error": str(exc)}, status=413)
            except InputFormatError as exc:
                return self.json({"error": str(exc)}, status=400)
            if not isinstance(data, dict):
                return self.json({"errors": [{"path": "", "reason": "expected a JSON object"}]}, status=422)
            data.setdefault("id", f"sub-{uuid.uuid4().hex[:12]}")
            try:
                subscription = Subscription.model_validate(data)
            except ValidationError as exc:
                errors = field_errors(exc, frozenset({"webhook", "sse"}))
                return self.json({"errors": [{"path": e.path, "reason": e.reason} for e in errors]}, status=422)
            try:
                require_known_labels(subscription.parsed_matchers, labels)
            except ValueError as exc:
                return self.json({"errors": [{"path": "matchers", "reason": str(exc)}]}, status=422)
            # Checked against this worker's registry: creations racing on other workers may pass a cap by a few.
            full = capacity_refusal(
                notifications.subscriptions(),
                subscription,
                settings.max_subscriptions_per_owner,
                settings.max_subscriptions,
            )
            if full is not None:
                return self.json({"errors": [{"path": full.path, "reason": full.reason}]}, status=409)
            if isinstance(subscription.channel, WebhookChannel):
                try:
                    await check_webhook_url(subscription.channel.url, policy)
                except WebhookTargetRefused as exc:
                    return self.json({"errors": [{"path": "channel.url", "reason": str(exc)}]}, status=422)
            existed = notifications.get(subscription.id) is not None
            try:
                await notifications.save(subscription)
            except (InfrastructureError, TimeoutError) as exc:
                return self.json({"error": f"subscription not stored: {exc}"}, status=503)
            # The guard let this write through: the writer sees what it wrote.
            return self.json(subscription.public(full_url=True), status=200 if existed else 201)

    @app.page("/v1/subscriptions/{subscription_id}")
    class OneSubscription(View):
        async def get(self, request: Request, subscription_id: str) -> Response:
            """Return one subscription (secret redacted; webhook URL too, unless the reader may write)."""
            found = notifications.get(subscription_id)
            if found is None:
                return self.json({"error": f"no subscription {subscription_id!r}"}, status=404)
            return self.json(found.public(_may_write(guard.tokens, request)))

        async def delete(self, request: Request, subscription_id: str) -> Response:
            """Delete a subscription."""
            if notifications.get(subscription_id) is None:
                return self.json({"error": f"no subscription {subscription_id!r}"}, status=404)
            try:
                await notifications.delete(subscription_id)
            except (InfrastructureError, TimeoutError) as exc:
                return self.json({"error": f"subscription not deleted: {exc}"}, status=503)
            return self.json({"deleted": subscription_id})

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            """Answer while the worker runs; report the partitions it owns and what it folded."""
            return self.json(
                {
                    "status": "ok",
                    "partitions": sorted(worker.owned_partitions()),
                    **worker.progress(),
                    "notifications_ready": notifications.ready.is_set(),
                }
            )


async def _stream(response: aioweb.StreamResponse, queue: Feed, settings: Settings) -> None:
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


def _refusal(exc: QueryRefused) -> dict[str, Any]:
    """Return the 400 body of a refused query: the sentence, the parameter, what is accepted."""
    return {"error": str(exc), "parameter": exc.parameter, "accepted": exc.accepted}


def _may_write(tokens: TokenSet, request: Request) -> bool:
    """Return whether the request could write: no token is configured, or it carries an accepted one."""
    if not tokens.enabled:
        return True
    token = bearer_token(_raw(request).headers.get("Authorization"))
    return token is not None and tokens.accepts(token)


def _raw(request: Request) -> aioweb.Request:
    # Faust's aiohttp driver hands views the aiohttp request itself.
    return cast(aioweb.Request, request)


def _feed_matchers(query: Any, notifications: Notifications) -> tuple[Any, ...]:
    subscription_id = query.get("subscription")
    if subscription_id is not None:
        found = notifications.get(subscription_id)
        if found is None:
            raise ValueError(f"no subscription {subscription_id!r}")
        return found.parsed_matchers
    return parse_matchers(query.get("match", "{}"))
