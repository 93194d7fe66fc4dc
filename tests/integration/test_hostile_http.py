"""Hostile HTTP against a real worker (issue 14): compressed bodies, many tiny records, long and doubled headers.

Each test sends what a probe sent and checks what a user observes: the status,
how soon it came, how large the answer was, how much CPU the worker spent and
what its log holds. Time bounds are generous and only where the finding was
about time.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr

from tests.conftest import SEED, RunningWorker
from tests.integration.kafka_helpers import end_offsets
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TOKEN = "tok-hostile-0123456789abcdefXYZ"
WRONG_TOKEN = "tok-wrong-00000000000000000000"
SEED_BODY = SEED.read_bytes()
MIB = 1024 * 1024


def gzip_bomb(mebibytes: int) -> bytes:
    """Return a gzip body of about ``mebibytes`` KiB that inflates to ``mebibytes`` MiB of zeros.

    After a full flush deflate forgets its history, so every further MiB of zeros
    compresses to the same bytes: one segment is repeated instead of compressing
    16 GiB. The trailer (CRC, size) is the one of three MiB; nothing reads that far.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    head = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (mebibytes - 1) + compressor.flush()


def peak_rss_bytes(pid: int) -> int:
    """Return the highest resident set size a process has had (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process has used (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Exchange:
    """What a raw HTTP exchange observed."""

    status: int | None = None
    head: bytes = b""
    body: bytes = b""
    seconds_to_status: float | None = None
    sent: int = 0
    send_error: str | None = None

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


def exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 60) -> Exchange:
    """Send a request's head, then its body from a thread while reading the answer as it comes."""
    seen = Exchange()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head)

        def send_body() -> None:
            view = memoryview(body)
            try:
                while seen.sent < len(body):
                    seen.sent += connection.send(view[seen.sent : seen.sent + 256 * 1024])
            except OSError as exc:  # the worker closed the connection: what a refusal should do
                seen.send_error = type(exc).__name__

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer = b""
        try:
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if seen.seconds_to_status is None:
                    seen.seconds_to_status = time.monotonic() - started
                head_end = answer.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = _content_length(answer[:head_end])
                    if length is not None and len(answer) >= head_end + 4 + length:
                        break
        except OSError:
            pass
        sender.join(timeout=timeout)
    seen.head, _, seen.body = answer.partition(b"\r\n\r\n")
    if seen.head.startswith(b"HTTP/1."):
        seen.status = int(seen.head[9:12])
    return seen


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return None


def request_head(method: str, path: str, headers: dict[str, str] | list[tuple[str, str]], length: int = 0) -> bytes:
    """Return the head of an HTTP/1.1 request (a list of pairs may repeat a header)."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if length:
        pairs.append(("Content-Length", str(length)))
    lines = [f"{method} {path} HTTP/1.1", "Host: tracker", *(f"{name}: {value}" for name, value in pairs)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class HealthProbe:
    """Latencies of /healthz, polled from a thread while something else happens."""

    url: str
    latencies: list[float] = field(default_factory=list)
    failures: int = 0

    @contextmanager
    def polling(self, every: float = 0.05) -> Iterator[HealthProbe]:
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    connection = http.client.HTTPConnection(self.url.removeprefix("http://"), timeout=30)
                    connection.request("GET", "/healthz")
                    connection.getresponse().read()
                    connection.close()
                    self.latencies.append(time.monotonic() - started)
                except OSError:
                    self.failures += 1
                stop.wait(every)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(timeout=60)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=0.0)


def post_timed(worker: RunningWorker, body: bytes, token: str = TOKEN) -> tuple[int, bytes, float]:
    """POST a body to /v1/events with http.client; return (status, raw answer, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.settings.http_port, timeout=120)
    started = time.monotonic()
    try:
        connection.request("POST", "/v1/events", body=body, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read(), time.monotonic() - started
    finally:
        connection.close()


@pytest.fixture
def guarded_worker(
    settings_factory: Callable[..., Settings], worker_factory: Callable[[Settings], RunningWorker]
) -> Iterator[RunningWorker]:
    """A worker with tokens for writes and open reads, as the probes of issue 14 ran it."""
    worker = worker_factory(settings_factory(api_tokens=SecretStr(TOKEN), log_level="info"))
    yield worker
    print(f"--- {worker.log} (exit {worker.process.poll()})\n{worker.log.read_text(errors='replace')[-4000:]}")


def test_an_unauthenticated_gzip_bomb_is_refused_before_it_is_read_or_inflated(guarded_worker: RunningWorker):
    # Arrange: 16 MiB of gzip that inflates to 16 GiB (issue 14 finding 3: the 401 after 9.84 s, 10 s of CPU).
    worker = guarded_worker
    bomb = gzip_bomb(16 * 1024)
    head = request_head("POST", "/v1/events", {"Content-Encoding": "gzip"}, len(bomb))
    cpu_before = cpu_seconds(worker.process.pid)
    results: list[Exchange] = []

    # Act: four at once, /healthz polled meanwhile.
    with HealthProbe(worker.url).polling() as health:
        threads = [
            threading.Thread(target=lambda: results.append(exchange(worker.settings.http_port, head, bomb)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        time.sleep(1.0)  # whatever the worker still does with the bodies, it does now
    cpu_spent = cpu_seconds(worker.process.pid) - cpu_before

    # Assert
    print(
        f"gzip bomb x4: statuses {[r.status for r in results]}, to status {[r.seconds_to_status for r in results]} s,"
        f" sent {[r.sent for r in results]} of {len(bomb)} bytes, worker CPU {cpu_spent:.2f} s,"
        f" /healthz worst {health.worst:.3f} s over {len(health.latencies)}"
    )
    assert [r.status for r in results] == [401] * 4
    assert all(json.loads(r.body) == {"error": "missing bearer token"} for r in results)
    assert all(b"connection: close" in r.head.lower() for r in results)
    assert max(r.seconds_to_status or 99.0 for r in results) < 2.0
    assert cpu_spent < 3.0
    assert health.worst < 1.0


def test_a_compressed_or_falsely_compressed_body_is_415_with_a_reason_and_no_traceback(guarded_worker: RunningWorker):
    # Arrange: with the token, a real gzip body and a plain body that claims gzip (finding 6: a 500).
    worker = guarded_worker
    port = worker.settings.http_port
    gzipped = zlib.compress(SEED_BODY, wbits=16 + zlib.MAX_WBITS)
    authorized = {"Authorization": f"Bearer {TOKEN}", "Content-Encoding": "gzip"}

    # Act
    real = exchange(port, request_head("POST", "/v1/events", authorized, len(gzipped)), gzipped)
    false = exchange(port, request_head("POST", "/v1/events", authorized, len(SEED_BODY)), SEED_BODY)
    router = exchange(port, request_head("GET", "/router/nonexist/", {}))

    # Assert
    expected = {"error": "request bodies must not be compressed: send Content-Encoding identity (or none)"}
    assert (real.status, real.json()) == (415, expected)
    assert (false.status, false.json()) == (415, expected)
    assert router.status == 404
    assert sum(end_offsets(worker.settings, worker.settings.events_topic).values()) == 0
    log = worker.log.read_text(errors="replace")
    assert "Traceback" not in log
    assert "internal error" not in log


def test_many_tiny_records_are_refused_at_the_cap_quickly_with_a_small_answer(guarded_worker: RunningWorker):
    # Arrange: the bodies of finding 4 (1 MiB and 2 MiB of [1,1,...], 12 MB of strings).
    worker = guarded_worker
    bodies = {
        "1 MiB of [1,1,...]": b"[" + b"1," * (MIB // 2 - 1) + b"1]",
        "2 MiB of [1,1,...]": b"[" + b"1," * (MIB - 1) + b"1]",
        '12 MB of ["a",...]': b"[" + b'"a",' * 3_000_000 + b'"a"]',
    }
    answers: dict[str, tuple[int, bytes, float]] = {}
    peak_before = peak_rss_bytes(worker.process.pid)

    # Act
    with HealthProbe(worker.url).polling() as health:
        for name, body in bodies.items():
            answers[name] = post_timed(worker, body)

    # Assert
    peak_growth = peak_rss_bytes(worker.process.pid) - peak_before
    for name, (status, raw, seconds) in answers.items():
        print(f"{name}: {status} after {seconds:.2f} s, {len(raw)} bytes")
    print(f"/healthz worst {health.worst:.3f} s over {len(health.latencies)}; peak RSS +{peak_growth / MIB:.0f} MiB")
    assert peak_growth < 100 * MIB  # +430 MB for the 1 MiB body, 1.08 GB for the 2 MiB one before
    cap = worker.settings.max_records_per_request
    for status, raw, seconds in answers.values():
        assert status == 413
        assert json.loads(raw) == {
            "error": f"more than {cap} records in one request (TRACKER_MAX_RECORDS_PER_REQUEST): send fewer at a time"
        }
        assert seconds < 5.0
    assert health.worst < 1.0


def test_a_body_at_the_cap_of_invalid_records_lists_the_first_rejections_and_counts_them_all(
    guarded_worker: RunningWorker,
):
    # Arrange: as many records as one request may carry, none of them valid.
    worker = guarded_worker
    cap = worker.settings.max_records_per_request
    body = b"[" + b",".join([b"1"] * cap) + b"]"

    # Act
    with HealthProbe(worker.url).polling() as health:
        status, raw, seconds = post_timed(worker, body)

    # Assert
    document = json.loads(raw)
    print(
        f"{cap} invalid records: {status} after {seconds:.2f} s, {len(raw)} bytes; /healthz worst {health.worst:.3f} s"
    )
    assert status == 422
    assert (document["accepted"], document["rejected"], document["failed"]) == (0, cap, 0)
    assert [result["line"] for result in document["results"]] == list(range(1, 101))
    assert document["results"][0] == {
        "line": 1,
        "status": "rejected",
        "errors": [{"path": "", "reason": "expected a JSON object, got a number"}],
    }
    assert document["omitted"] == cap - 100
    assert len(raw) < 64 * 1024
    assert health.worst < 1.0


def test_a_token_in_an_overlong_header_never_reaches_the_log(guarded_worker: RunningWorker):
    # Arrange: a valid token followed by 9,000 characters (finding 7: the 400's text, token included, logged at ERROR).
    worker = guarded_worker
    head = request_head("GET", "/v1/signals", {"Authorization": f"Bearer {TOKEN}{'x' * 9000}"})

    # Act
    answer = exchange(worker.settings.http_port, head)
    time.sleep(0.5)  # the worker writes its log line after answering

    # Assert
    log = worker.log.read_text(errors="replace")
    print(
        f"overlong header: {answer.head[:40]!r}; log: {[line for line in log.splitlines() if 'request from' in line]}"
    )
    assert answer.status == 400
    assert TOKEN not in log
    assert "request from 127.0.0.1: LineTooLong" in log
    assert "Logging error" not in log
    assert max(len(line) for line in log.splitlines()) < 2000


@pytest.mark.parametrize("order", ["valid first", "valid last"])
def test_two_authorization_headers_are_refused_with_400(guarded_worker: RunningWorker, order: str):
    # Arrange: a proxy that reads the last header and a worker that reads the first would disagree (finding 9).
    worker = guarded_worker
    tokens = [TOKEN, WRONG_TOKEN] if order == "valid first" else [WRONG_TOKEN, TOKEN]
    headers = [("Authorization", f"Bearer {token}") for token in tokens]

    # Act
    answer = exchange(worker.settings.http_port, request_head("POST", "/v1/events", headers, len(SEED_BODY)), SEED_BODY)

    # Assert
    assert answer.status == 400
    assert answer.json() == {"error": "more than one Authorization header"}
    assert sum(end_offsets(worker.settings, worker.settings.events_topic).values()) == 0
