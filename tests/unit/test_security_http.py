"""The HTTP guard, the guarded webhook transport and the notifier's refusals, without a socket."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from tracker.core.subscriptions import Subscription
from tracker.errors import WebhookTargetRefused
from tracker.security import AddressPolicy, TokenSet
from tracker.worker.delivery import Attempt, Notifier
from tracker.worker.http_client import AiohttpSender, GuardedResolver
from tracker.worker.http_guard import SMALL_BODY_LIMIT, HttpGuard
from tracker.worker.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

TOKEN = "tok-writer-0123456789abcdef"
WRONG = "tok-wrong-0000000000000000"
EVENTS_LIMIT = 4096


def guard(tokens: str | None = TOKEN, read_requires_token: bool = False, timeout: float = 5.0) -> HttpGuard:
    return HttpGuard(
        tokens=TokenSet.from_config(SecretStr(tokens) if tokens else None, None),
        read_requires_token=read_requires_token,
        timeout=timeout,
        events_body_limit=EVENTS_LIMIT,
    )


class Handler:
    """A route handler that records its calls and answers 200, or runs ``behaviour``."""

    def __init__(self, behaviour: Any = None) -> None:
        self.calls = 0
        self.behaviour = behaviour

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.behaviour is not None:
            await self.behaviour(request)
        return web.json_response({"ok": True})


class StalledBody:
    """A request body whose client stopped sending half-way."""

    def is_eof(self) -> bool:
        return False

    async def read(self, n: int = -1) -> bytes:
        await asyncio.sleep(3600)
        return b""


def body_of(response: web.StreamResponse) -> dict[str, Any]:
    assert isinstance(response, web.Response) and response.body is not None
    return dict(json.loads(bytes(response.body)))  # type: ignore[arg-type]


async def call(gate: HttpGuard, method: str, path: str, handler: Handler, **kwargs: Any) -> web.StreamResponse:
    request = make_mocked_request(method, path, **kwargs)
    return await gate.middleware(request, handler)


# --- tokens ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/events"), ("POST", "/v1/subscriptions"), ("DELETE", "/v1/subscriptions/a")]
)
async def test_a_write_without_a_token_is_401_with_a_challenge(method: str, path: str) -> None:
    handler = Handler()

    response = await call(guard(), method, path, handler)

    assert response.status == 401
    assert body_of(response) == {"error": "missing bearer token"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tracker"'
    assert handler.calls == 0


async def test_a_write_with_a_wrong_token_is_403_and_the_token_is_not_echoed() -> None:
    handler = Handler()

    response = await call(guard(), "POST", "/v1/events", handler, headers={"Authorization": f"Bearer {WRONG}"})

    assert response.status == 403
    assert body_of(response) == {"error": "token not accepted"}
    assert WRONG not in str(response.headers)
    assert handler.calls == 0


async def test_a_write_with_the_token_reaches_the_handler() -> None:
    handler = Handler()

    response = await call(guard(), "POST", "/v1/events", handler, headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status == 200
    assert handler.calls == 1


async def test_without_configured_tokens_everything_is_open() -> None:
    handler = Handler()

    response = await call(guard(tokens=None), "POST", "/v1/subscriptions", handler)

    assert response.status == 200


@pytest.mark.parametrize(
    "path",
    ["/v1/signals", "/v1/alerts", "/v1/alerts/stream", "/v1/subscriptions", "/table/", "/", "/page/page.js"],
)
async def test_reads_are_open_by_default_and_closed_by_the_setting(path: str) -> None:
    handler = Handler()

    opened = await call(guard(), "GET", path, handler)
    closed = await call(guard(read_requires_token=True), "GET", path, handler)
    allowed = await call(
        guard(read_requires_token=True), "GET", path, handler, headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert (opened.status, closed.status, allowed.status) == (200, 401, 200)


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_metrics_and_health_stay_open_even_when_reads_are_closed(path: str) -> None:
    handler = Handler()

    response = await call(guard(read_requires_token=True), "GET", path, handler)

    assert response.status == 200


# --- body size and time ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "length", "status"),
    [
        ("/v1/events", EVENTS_LIMIT, 200),
        ("/v1/events", EVENTS_LIMIT + 1, 413),
        ("/v1/subscriptions", SMALL_BODY_LIMIT, 200),
        ("/v1/subscriptions", SMALL_BODY_LIMIT + 1, 413),
        ("/v1/signals", SMALL_BODY_LIMIT + 1, 413),
    ],
)
async def test_a_declared_body_over_the_route_limit_is_413_before_the_handler(
    path: str, length: int, status: int
) -> None:
    handler = Handler()
    headers = {"Content-Length": str(length), "Authorization": f"Bearer {TOKEN}"}

    response = await call(guard(), "POST" if path != "/v1/signals" else "GET", path, handler, headers=headers)

    assert response.status == status
    assert handler.calls == (1 if status == 200 else 0)


async def test_a_body_that_stops_arriving_is_408() -> None:
    async def read_body(request: web.Request) -> None:
        await request.content.read()

    response = await call(
        guard(tokens=None, timeout=0.05), "POST", "/v1/events", Handler(read_body), payload=StalledBody()
    )

    assert response.status == 408
    assert body_of(response) == {"error": "request body not received within 0.05 s"}


async def test_a_handler_slower_than_the_limit_is_503() -> None:
    async def stall(request: web.Request) -> None:
        await asyncio.sleep(3600)

    response = await call(guard(tokens=None, timeout=0.05), "GET", "/v1/signals", Handler(stall))

    assert response.status == 503
    assert body_of(response) == {"error": "request not completed within 0.05 s"}


async def test_the_alert_stream_is_exempt_from_the_request_time_limit() -> None:
    async def outlive_the_limit(request: web.Request) -> None:
        await asyncio.sleep(0.2)

    response = await call(guard(tokens=None, timeout=0.05), "GET", "/v1/alerts/stream", Handler(outlive_the_limit))

    assert response.status == 200


async def test_an_unexpected_error_is_a_bare_500_and_its_message_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(request: web.Request) -> None:
        raise ValueError(f"bad input carrying {TOKEN}")

    with caplog.at_level(logging.ERROR):
        response = await call(guard(tokens=None), "GET", "/v1/alerts", Handler(explode))

    assert response.status == 500
    assert body_of(response) == {"error": "internal error"}
    assert "ValueError" in caplog.text
    assert TOKEN not in caplog.text


async def test_http_exceptions_pass_through_untouched() -> None:
    async def not_found(request: web.Request) -> None:
        raise web.HTTPNotFound()

    with pytest.raises(web.HTTPNotFound):
        await call(guard(tokens=None), "GET", "/nowhere", Handler(not_found))


# --- the webhook transport ------------------------------------------------------------------------------------


async def test_a_refused_literal_address_is_never_contacted() -> None:
    sender = AiohttpSender(policy=AddressPolicy())

    outcome = await sender("http://169.254.169.254/latest/meta-data", b"{}", {})

    assert outcome == Attempt(
        None, error="address not allowed: 169.254.169.254 is a cloud metadata address", refused=True
    )
    await sender.close()


class TableResolver(AbstractResolver):
    """Answer every lookup with fixed addresses."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": address, "port": port, "family": family, "proto": 0, "flags": 0}
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_connection_resolver_refuses_a_name_that_now_points_inside() -> None:
    resolver = GuardedResolver(AddressPolicy(), TableResolver(["93.184.215.14", "10.0.0.7"]))

    with pytest.raises(WebhookTargetRefused) as raised:
        await resolver.resolve("hooks.example.com", 443)

    assert str(raised.value) == "hooks.example.com resolves to 10.0.0.7, which is private"


async def test_the_connection_resolver_passes_public_and_allow_listed_answers() -> None:
    public = GuardedResolver(AddressPolicy(), TableResolver(["93.184.215.14"]))
    listed = GuardedResolver(AddressPolicy.parse("10.0.0.0/8"), TableResolver(["10.0.0.7"]))

    assert [r["host"] for r in await public.resolve("hooks.example.com", 443)] == ["93.184.215.14"]
    assert [r["host"] for r in await listed.resolve("hooks.corp", 443)] == ["10.0.0.7"]


async def test_a_refused_delivery_is_dead_lettered_at_once_with_the_reason() -> None:
    sub = Subscription.model_validate(
        {
            "id": "desk",
            "owner": "t",
            "channel": {"type": "webhook", "url": "http://10.0.0.7/hook", "secret": "s" * 16, "max_attempts": 5},
        }
    )
    dead_letters: list[dict[str, Any]] = []
    attempts: list[str] = []

    async def refusing_sender(url: str, body: bytes, headers: dict[str, str]) -> Attempt:
        attempts.append(url)
        return Attempt(None, error="address not allowed: 10.0.0.7 is private", refused=True)

    async def dead_letter(record: dict[str, Any]) -> None:
        dead_letters.append(record)

    async def mark(key: str) -> None:
        raise AssertionError("nothing is delivered")

    registry = CollectorRegistry()
    notifier = Notifier(
        subscriptions=lambda: [sub],
        delivered=lambda key: False,
        mark_delivered=mark,
        dead_letter=dead_letter,
        sender=refusing_sender,
        outcomes=PipelineMetrics.create(registry).notifications,
        external_url="http://127.0.0.1:6066",
    )
    transition = {
        "status": "firing",
        "idempotency_key": "fp:firing:1",
        "alert": {
            "rule": "r",
            "labels": {"alertname": "r"},
            "annotations": {},
            "since": "2025-12",
            "fingerprint": "fp",
            "value": 1.0,
        },
        "provenance": {},
        "evaluated_at": 0.0,
    }

    result = await notifier.deliver(sub, transition)

    assert result == "dead_lettered"
    assert attempts == ["http://10.0.0.7/hook"]
    assert [(d["last_status"], d["last_error"]) for d in dead_letters] == [
        (None, "address not allowed: 10.0.0.7 is private")
    ]
    assert registry.get_sample_value("tracker_notifications_total", {"outcome": "retried"}) == 0
    await notifier.close()
