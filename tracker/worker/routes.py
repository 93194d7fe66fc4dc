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

from tracker.core.decode import field_errors
from tracker.core.matchers import parse_matchers
from tracker.core.signals import Signal
from tracker.core.subscriptions import Subscription
from tracker.errors import InfrastructureError
from tracker.worker.api import Ingestion, TooLarge, ingest_body, read_limited, signals_document
from tracker.worker.notifications import Notifications

if TYPE_CHECKING:
    from tracker.worker.app import Worker

__all__ = ["install_routes"]

SUBSCRIPTION_BODY_LIMIT = 64 * 1024
FEED_KEEPALIVE_SECONDS = 15.0


def install_routes(app: faust.App, worker: Worker, ingestion: Ingestion, notifications: Notifications) -> None:
    """Register every route of the worker on the Faust app."""
    limit = worker.settings.max_body_bytes

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
            """List derived signals; ``name`` and label query parameters filter them."""
            wanted = dict(request.query)

            def match(signal: Signal) -> bool:
                labels = dict(signal.labels)
                return all(
                    signal.name == value if key == "name" else labels.get(key) == value for key, value in wanted.items()
                )

            return self.json(signals_document(worker.signals(wanted.get("entity")), match))

    @app.page("/v1/alerts")
    class Alerts(View):
        async def get(self, request: Request) -> Response:
            """List active alerts with their provenance; ``state`` filters pending/firing."""
            wanted = request.query.get("state")
            entries = [e for e in worker.alerts() if wanted is None or e["alert"]["state"] == wanted]
            return self.json({"alerts": [{**e["alert"], "provenance": e["provenance"]} for e in entries]})

    @app.page("/v1/alerts/stream")
    class AlertStream(View):
        async def get(self, request: Request) -> Any:
            """Stream alert transitions as Server-Sent Events; ``match`` or ``subscription`` filter them."""
            try:
                matchers = _feed_matchers(request.query, notifications)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(_raw(request))
            queue = notifications.open_feed(matchers)
            try:
                await response.write(b": connected\n\n")
                while True:
                    try:
                        transition = await asyncio.wait_for(queue.get(), FEED_KEEPALIVE_SECONDS)
                    except TimeoutError:
                        await response.write(b": keepalive\n\n")
                        continue
                    data = json.dumps(transition, sort_keys=True)
                    event = f"id: {transition['idempotency_key']}\nevent: {transition['status']}\ndata: {data}\n\n"
                    await response.write(event.encode())
            except (ConnectionResetError, asyncio.CancelledError):
                pass
            finally:
                notifications.close_feed(queue)
            return response

    @app.page("/v1/subscriptions")
    class Subscriptions(View):
        async def get(self, request: Request) -> Response:
            """List subscriptions (secrets redacted)."""
            return self.json({"subscriptions": [sub.public() for sub in notifications.subscriptions()]})

        async def post(self, request: Request) -> Response:
            """Create or replace a subscription; errors name the field."""
            try:
                body = await read_limited(_raw(request).content, SUBSCRIPTION_BODY_LIMIT)
                data = json.loads(body)
            except TooLarge as exc:
                return self.json({"error": str(exc)}, status=413)
            except ValueError as exc:
                return self.json({"error": f"not JSON: {exc}"}, status=400)
            if not isinstance(data, dict):
                return self.json({"errors": [{"path": "", "reason": "expected a JSON object"}]}, status=422)
            data.setdefault("id", f"sub-{uuid.uuid4().hex[:12]}")
            try:
                subscription = Subscription.model_validate(data)
            except ValidationError as exc:
                errors = field_errors(exc, frozenset({"webhook", "sse"}))
                return self.json({"errors": [{"path": e.path, "reason": e.reason} for e in errors]}, status=422)
            existed = notifications.get(subscription.id) is not None
            try:
                await notifications.save(subscription)
            except (InfrastructureError, TimeoutError) as exc:
                return self.json({"error": f"subscription not stored: {exc}"}, status=503)
            return self.json(subscription.public(), status=200 if existed else 201)

    @app.page("/v1/subscriptions/{subscription_id}")
    class OneSubscription(View):
        async def get(self, request: Request, subscription_id: str) -> Response:
            """Return one subscription (secret redacted)."""
            found = notifications.get(subscription_id)
            if found is None:
                return self.json({"error": f"no subscription {subscription_id!r}"}, status=404)
            return self.json(found.public())

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
