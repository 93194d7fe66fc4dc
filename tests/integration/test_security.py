"""Security on a real worker and broker: tokens, closed reads, slow clients, webhook targets, leaked secrets.

The local broker is PLAINTEXT only, so SASL and TLS are covered by the unit
tests of the option mapping; here a worker with explicit PLAINTEXT settings
must work as before.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from pydantic import SecretStr

from tests.conftest import SEED, run_cli
from tests.integration.helpers import sample, scrape, wait_for_sample
from tests.integration.kafka_helpers import Raw, produce_raw, read_topic
from tests.integration.receivers import Receiver
from tracker.core.subscriptions import Subscription
from tracker.polling import wait_until

pytestmark = pytest.mark.integration

TOKEN = "tok-writer-0123456789abcdefABCDEF"  # given in clear: TRACKER_API_TOKENS
HASHED_TOKEN = "tok-hashed-fedcba9876543210XYZ"  # given as its digest: TRACKER_API_TOKEN_SHA256
WRONG_TOKEN = "tok-wrong-00000000000000000000"
SECRET = "webhook-secret-that-must-stay-put"
REJECTED_SECRET = "rejected-secret-also-never-shown"
SHORT_SECRET = "tiny-secret"
SEED_BODY = SEED.read_bytes()


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def call(
    method: str, url: str, body: bytes | None = None, token: str | None = None, authorization: str | None = None
) -> tuple[int, dict[str, str], str]:
    """Send a request; return (status, headers, body text), error statuses included."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def webhook_body(url: str, secret: str = SECRET, max_attempts: int = 2) -> bytes:
    channel = {"type": "webhook", "url": url, "secret": secret, "max_attempts": max_attempts}
    return json.dumps({"owner": "security", "channel": channel}).encode()


def raw_exchange(port: int, head: bytes, then_wait: float) -> tuple[bytes, float]:
    """Send raw bytes, keep the connection open, and return (what came back, seconds until it did)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=then_wait) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


def test_writes_need_a_token_and_no_secret_shows_in_logs_responses_or_metrics(
    settings_factory, start_worker, receiver: Receiver
):
    # Arrange: one token in clear, one as a digest; the receiver fails every delivery.
    settings = settings_factory(api_tokens=TOKEN, api_token_sha256=sha256_hex(HASHED_TOKEN), log_level="info")
    worker = start_worker(settings)
    receiver.fail_next(100, status=500)
    seen: list[str] = []  # every body and header a client got back

    def observed(status: int, headers: dict[str, str], text: str) -> tuple[int, dict[str, str], str]:
        seen.extend([text, json.dumps(headers)])
        return status, headers, text

    # Act and assert: the write endpoints without, with a malformed, with a wrong and with a good token.
    status, headers, text = observed(*call("POST", f"{worker.url}/v1/events", SEED_BODY))
    assert (status, json.loads(text)) == (401, {"error": "missing bearer token"})
    assert headers["WWW-Authenticate"] == 'Bearer realm="tracker"'
    status, _, text = observed(*call("POST", f"{worker.url}/v1/events", SEED_BODY, authorization=f"Basic {TOKEN}"))
    assert (status, json.loads(text)) == (401, {"error": "missing bearer token"})
    status, _, text = observed(*call("POST", f"{worker.url}/v1/subscriptions", b"{}", token=WRONG_TOKEN))
    assert (status, json.loads(text)) == (403, {"error": "token not accepted"})
    status, _, _ = observed(*call("DELETE", f"{worker.url}/v1/subscriptions/nope", token=WRONG_TOKEN))
    assert status == 403

    anonymous = run_cli(settings, "subscribe", "--owner", "t")
    assert anonymous.returncode == 1
    assert "missing bearer token" in anonymous.stderr

    # The CLI sends TRACKER_API_TOKEN; the hashed token is accepted like the clear one.
    client = settings.model_copy(update={"api_token": SecretStr(HASHED_TOKEN)})
    created = run_cli(
        client,
        "subscribe",
        "--owner",
        "t",
        "--webhook",
        f"{receiver.url}/hook",
        "--secret",
        SECRET,
        "--max-attempts",
        "2",
    )
    assert created.returncode == 0, created.stderr
    subscription_id = created.stdout.strip()
    listing = run_cli(client, "subscriptions")
    assert listing.returncode == 0, listing.stderr
    seen.extend([created.stdout, created.stderr, listing.stdout, listing.stderr])

    # Validation errors whose requests carry secrets.
    refused = [
        call("POST", f"{worker.url}/v1/subscriptions", webhook_body(f"{receiver.url}/h", SHORT_SECRET), TOKEN),
        call("POST", f"{worker.url}/v1/subscriptions", webhook_body("ftp://example.com/h", REJECTED_SECRET), TOKEN),
        call("POST", f"{worker.url}/v1/subscriptions", webhook_body("http://10.1.2.3/h", REJECTED_SECRET), TOKEN),
        call("POST", f"{worker.url}/v1/subscriptions", f'{{"secret": "{REJECTED_SECRET}"'.encode(), TOKEN),
        call("POST", f"{worker.url}/v1/events", f'{{"type": "{REJECTED_SECRET}"}}'.encode(), TOKEN),
    ]
    assert [status for status, _, _ in refused] == [422, 422, 422, 400, 422]
    for result in refused:
        observed(*result)
    assert json.loads(refused[2][2])["errors"] == [
        {
            "path": "channel.url",
            "reason": "address not allowed: 10.1.2.3 is private (TRACKER_WEBHOOK_ALLOW lists exceptions)",
        }
    ]

    status, _, text = observed(*call("POST", f"{worker.url}/v1/events", SEED_BODY, token=TOKEN))
    assert status == 202, text
    assert json.loads(text)["accepted"] == 10

    # Every delivery fails: two attempts per alert, then the dead-letter topic.
    dead = wait_for_sample(worker.url, sample("tracker_notifications_total", outcome="dead_lettered"), lambda v: v >= 3)
    assert dead == 3
    assert len(receiver.requests) == 6

    # Assert: nothing a reader can get holds a secret.
    for path in (
        "/v1/subscriptions",
        f"/v1/subscriptions/{subscription_id}",
        "/v1/signals",
        "/v1/alerts",
        "/metrics",
        "/healthz",
    ):
        status, _, _ = observed(*call("GET", f"{worker.url}{path}"))
        assert status == 200, path
    dead_letters = read_topic(settings, settings.notifications_dead_letter_topic, at_least=3)
    seen.extend(record.value.decode() for record in dead_letters if record.value is not None)
    log = worker.log.read_text(errors="replace")
    everything = "\n".join([*seen, log])
    for secret in (TOKEN, HASHED_TOKEN, WRONG_TOKEN, SECRET, REJECTED_SECRET, SHORT_SECRET):
        assert secret not in everything, f"{secret!r} leaked"
    assert sha256_hex(HASHED_TOKEN) not in everything


def test_closed_reads_need_the_token_but_metrics_and_health_stay_open(settings_factory, start_worker):
    # Arrange
    settings = settings_factory(api_token_sha256=sha256_hex(TOKEN), read_requires_token=True, stream_max_idle_seconds=2)
    worker = start_worker(settings)

    # Act
    closed = {path: call("GET", f"{worker.url}{path}")[0] for path in ("/v1/signals", "/v1/alerts", "/table/")}
    opened = {path: call("GET", f"{worker.url}{path}", token=TOKEN)[0] for path in ("/v1/signals", "/v1/alerts")}
    probes = {path: call("GET", f"{worker.url}{path}")[0] for path in ("/metrics", "/healthz")}
    with_token = run_cli(settings.model_copy(update={"api_token": SecretStr(TOKEN)}), "subscriptions")
    without_token = run_cli(settings, "subscriptions")
    started = time.monotonic()
    status, _, stream = call("GET", f"{worker.url}/v1/alerts/stream", token=TOKEN)
    stream_seconds = time.monotonic() - started

    # Assert
    assert closed == {"/v1/signals": 401, "/v1/alerts": 401, "/table/": 401}
    assert opened == {"/v1/signals": 200, "/v1/alerts": 200}
    assert probes == {"/metrics": 200, "/healthz": 200}
    assert with_token.returncode == 0, with_token.stderr
    assert without_token.returncode == 2
    assert "missing bearer token" in without_token.stderr
    # An idle stream is closed after stream_max_idle_seconds; EventSource clients reconnect.
    assert status == 200
    assert stream.startswith(": connected")
    assert "closed after stream_max_idle_seconds" in stream
    assert 1.5 <= stream_seconds < 15


def test_a_plaintext_worker_works_and_bounds_slow_clients(settings_factory, start_worker):
    # Arrange: explicit PLAINTEXT settings, short limits, and no token (an open API).
    settings = settings_factory(kafka_security_protocol="PLAINTEXT", request_timeout_seconds=2, stream_max_seconds=2)
    worker = start_worker(settings)

    # Act
    status, _, text = call("POST", f"{worker.url}/v1/events", SEED_BODY)
    slow, slow_seconds = raw_exchange(
        settings.http_port,
        b"POST /v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\nContent-Length: 1000\r\n\r\n{",
        then_wait=30,
    )
    huge, _ = raw_exchange(
        settings.http_port,
        b"POST /v1/subscriptions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000000\r\n\r\n{",
        then_wait=30,
    )
    started = time.monotonic()
    stream_status, _, stream = call("GET", f"{worker.url}/v1/alerts/stream")
    stream_seconds = time.monotonic() - started

    # Assert
    assert status == 202, text
    wait_for_sample(worker.url, sample("market_usage", entity="bytedance", metric="tokens_per_day"))
    assert scrape(worker.url)[sample("market_usage", entity="bytedance", metric="tokens_per_day")] == 5.0e13
    assert slow.startswith(b"HTTP/1.1 408"), slow
    assert 1.5 <= slow_seconds < 15
    assert huge.startswith(b"HTTP/1.1 413"), huge
    assert stream_status == 200
    assert "closed after stream_max_seconds" in stream
    assert 1.5 <= stream_seconds < 15
    # With no token the worker says so at start.
    assert "unauthenticated" in worker.log.read_text(errors="replace")


def test_a_webhook_the_policy_refuses_is_refused_at_creation_and_dead_lettered_at_delivery(
    settings_factory, start_worker, receiver: Receiver
):
    # Arrange: no allow list, so the loopback receiver is out of bounds.
    settings = settings_factory(webhook_allow="")
    worker = start_worker(settings)

    # Act 1: creating it through the API or the CLI is refused with the field and the reason.
    by_api = [
        call("POST", f"{worker.url}/v1/subscriptions", webhook_body(f"{receiver.url}/hook")),
        call("POST", f"{worker.url}/v1/subscriptions", webhook_body(f"http://localhost:{receiver.port}/hook")),
    ]
    by_cli = run_cli(settings, "subscribe", "--owner", "t", "--webhook", f"{receiver.url}/hook", "--secret", SECRET)

    # Assert 1
    assert [status for status, _, _ in by_api] == [422, 422]
    assert [json.loads(text)["errors"][0]["path"] for _, _, text in by_api] == ["channel.url", "channel.url"]
    assert json.loads(by_api[0][2])["errors"][0]["reason"].startswith("address not allowed: 127.0.0.1 is loopback")
    assert "localhost resolves to" in json.loads(by_api[1][2])["errors"][0]["reason"]
    assert by_cli.returncode == 1
    assert "channel.url: address not allowed: 127.0.0.1 is loopback" in by_cli.stderr

    # Act 2: a subscription that was allowed when written (another worker's policy, or DNS that changed since).
    subscription = Subscription.model_validate(
        {
            "id": "written-elsewhere",
            "owner": "t",
            "channel": {"type": "webhook", "url": f"{receiver.url}/hook", "secret": SECRET, "max_attempts": 5},
        }
    )
    produce_raw(
        settings,
        settings.subscriptions_topic,
        [Raw(json.dumps(subscription.stored()).encode(), key=subscription.id.encode())],
    )
    wait_until(
        "the subscription", lambda: call("GET", f"{worker.url}/v1/subscriptions/{subscription.id}")[0] == 200, 30
    )
    status, _, _ = call("POST", f"{worker.url}/v1/events", SEED_BODY)
    assert status == 202

    # Assert 2: each alert is dead-lettered at once, naming the reason; no request reached the receiver.
    records = read_topic(settings, settings.notifications_dead_letter_topic, at_least=3)
    dead = [json.loads(record.value) for record in records if record.value is not None]
    assert len(dead) == 3
    for record in dead:
        assert record["subscription"] == "written-elsewhere"
        assert record["last_status"] is None
        assert record["last_error"] == "address not allowed: 127.0.0.1 is loopback"
    dead_lettered = sample("tracker_notifications_total", outcome="dead_lettered")
    assert wait_for_sample(worker.url, dead_lettered, lambda v: v >= 3) == 3
    assert scrape(worker.url)[sample("tracker_notifications_total", outcome="retried")] == 0
    assert receiver.requests == []


def test_a_redirect_is_a_failed_delivery_and_is_never_followed(receiver: Receiver) -> None:
    import asyncio
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from tracker.security import AddressPolicy
    from tracker.worker.http_client import AiohttpSender

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{receiver.url}/hook")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    redirector = f"http://127.0.0.1:{server.server_address[1]}/hook"

    async def send_both() -> tuple[Any, Any]:
        allowed = AiohttpSender(policy=AddressPolicy.parse("127.0.0.1"))
        closed = AiohttpSender(policy=AddressPolicy())
        try:
            return (
                await allowed(redirector, b"{}", {"Content-Type": "application/json"}),
                await closed(f"http://localhost:{receiver.port}/hook", b"{}", {}),
            )
        finally:
            await allowed.close()
            await closed.close()

    try:
        redirected, by_name = asyncio.run(send_both())
    finally:
        server.shutdown()
        server.server_close()

    assert redirected.status == 302
    assert not redirected.refused
    assert by_name.refused
    assert by_name.error.startswith("address not allowed: localhost resolves to")
    assert receiver.requests == []
