"""Hostile and broken input, end to end: HTTP, the CLI and the topic, against one worker for the whole corpus.

The corpus is ``tests/hostile`` (hand-written files, generated mutations,
10 MB bodies) plus records hypothesis draws at test time. Every body must be
refused by POST /v1/events with 400, 413 or 422 naming the field of each
record, never with a 5xx, and the worker must answer /healthz after each.
``tracker publish -`` must exit 1 and name the field on stderr. The same
bytes written straight to the events topic must land on the dead-letter
topic with a reason while the valid events around them fold. Then the
edge cases of retraction and ids, with the outcomes events/README.md defines.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from tests.conftest import ROOT, RunningWorker, child_env, free_port
from tests.hostile.corpus import TOPIC_RECORD_LIMIT, Case, big, corpus, hostile_records
from tests.integration.fault_helpers import fold_progress, health_or_none
from tests.integration.helpers import post, sample, scrape, wait_for_sample
from tests.integration.kafka_helpers import Raw, end_offsets, produce_raw, read_topic
from tracker.core.decode import decode_event
from tracker.core.events import content_digest
from tracker.kafka.partitioning import partition_for
from tracker.polling import wait_until
from tracker.settings import Settings
from tracker.worker.launch import log_tail, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.faults]

REFUSALS = {400, 413, 422}
HYPOTHESIS_EXAMPLES = 60


@pytest.fixture(scope="module")
def corpus_worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    """One worker, on topics of its own, for every hostile input of this module."""
    unique = uuid.uuid4().hex[:10]
    data_dir = tmp_path_factory.mktemp("hostile")
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"test-{unique}-",
        app_id=f"tracker-{unique}",
        http_port=free_port(),
        data_dir=data_dir,
    )
    worker = start_worker(settings, data_dir / "worker.log")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
        print(f"--- {worker.log} (exit {worker.process.poll()})\n{log_tail(worker.log)}")


def send(url: str, body: bytes) -> tuple[int | None, Any]:
    """POST a body to /v1/events; return (status, decoded JSON or text), or (None, error) without an answer."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/x-ndjson"})
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        # The server may refuse a body it will not read before the client finished sending it.
        try:
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            return None, repr(exc)
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw[:500].decode(errors="replace")


def refusal_problems(case: Case, status: int | None, document: Any) -> list[str]:
    """Return how an HTTP answer to ``case`` breaks the contract (empty when it does not)."""
    if status is None or status >= 500 or status not in REFUSALS:
        return [f"status {status}: {str(document)[:300]}"]
    problems = []
    if status != case.status:
        problems.append(f"status {status}, expected {case.status}")
    if not isinstance(document, dict):
        return [*problems, f"not a JSON object: {str(document)[:200]}"]
    if status in (400, 413):
        if not isinstance(document.get("error"), str) or not document["error"]:
            problems.append(f"no error message: {document}")
        return problems
    if document.get("accepted") != 0 or document.get("failed") != 0:
        problems.append(f"accepted {document.get('accepted')}, failed {document.get('failed')}")
    named = {(result["line"], error["path"]) for result in document["results"] for error in result.get("errors", [])}
    for result in document["results"]:
        if result["status"] != "rejected" or not result.get("errors"):
            problems.append(f"record {result.get('line')} is {result['status']} with no error")
        elif not all(isinstance(e.get("reason"), str) and e["reason"] for e in result["errors"]):
            problems.append(f"record {result['line']} has an error without a reason: {result['errors']}")
    omitted = document.get("omitted", 0)
    if document.get("rejected") != len(document["results"]) + omitted:
        problems.append(f"rejected {document.get('rejected')}, listed {len(document['results'])}, omitted {omitted}")
    listed = {result["line"] for result in document["results"]}
    for line, path in case.paths:
        if line not in listed and omitted:
            continue  # past the first 100 rejections an answer counts them without listing them
        if (line, path) not in named:
            problems.append(f"record {line} does not name {path!r}; named {sorted(named)[:6]}")
    return problems


def publish_stdin(settings: Settings, body: bytes) -> tuple[int, str, str]:
    """Run `tracker publish -` with ``body`` on stdin, bytes as they are; return (exit code, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "tracker", "publish", "-"],
        input=body,
        env=child_env(settings),
        capture_output=True,
        timeout=180,
        cwd=ROOT,
    )
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def cli_problems(case: Case, code: int, stderr: str, first_line: int = 1) -> list[str]:
    """Return how the CLI's answer to ``case`` (starting at ``first_line`` of its input) breaks the contract."""
    problems = [] if code == 1 else [f"exit {code}"]
    lines = stderr.splitlines()
    if "Traceback" in stderr:
        problems.append(f"traceback: {stderr[-500:]}")
    if not case.paths and not any(line.startswith("-: ") for line in lines):
        problems.append(f"no '-: <reason>' line: {stderr[-300:]}")
    for line, path in case.paths:
        prefix = f"line {first_line + line - 1}: " + (f"{path}: " if path else "")
        if not any(text.startswith(prefix) for text in lines):
            problems.append(f"no stderr line starting {prefix!r}")
    return problems


def report(failures: dict[str, list[str]], total: int) -> str:
    shown = "\n".join(f"  {name}: {'; '.join(problems)}" for name, problems in list(failures.items())[:40])
    return f"{len(failures)} of {total} hostile inputs were not refused as promised:\n{shown}"


def test_post_refuses_every_hostile_body_with_a_4xx_that_names_the_field(corpus_worker):
    cases = corpus() + big()
    failures: dict[str, list[str]] = {}

    for case in cases:
        status, document = send(corpus_worker.url, case.body)
        problems = refusal_problems(case, status, document)
        if health_or_none(corpus_worker.url) is None:
            problems.append("/healthz did not answer afterwards")
        if problems:
            failures[f"{case.origin}/{case.name}"] = problems

    assert len(cases) >= 200
    assert corpus_worker.process.poll() is None, "the worker died"
    assert not failures, report(failures, len(cases))
    settings = corpus_worker.settings
    assert sum(end_offsets(settings, settings.events_topic).values()) == 0, "a hostile record was published"


def test_publish_refuses_every_hostile_input_with_exit_1_and_the_field_on_stderr(corpus_worker):
    settings = corpus_worker.settings
    cases = corpus() + big()
    # A single object that does not parse is refused as a body; among JSON Lines it is one bad line.
    single = [case for case in cases if case.one_record and case.paths]
    whole = [case for case in cases if not (case.one_record and case.paths)]
    failures: dict[str, list[str]] = {}

    # Single-record cases as one JSON Lines input: line n of stderr's report is case n.
    code, stdout, stderr = publish_stdin(settings, b"".join(case.body.rstrip(b"\r\n") + b"\n" for case in single))
    for index, case in enumerate(single, start=1):
        problems = cli_problems(case, code, stderr, first_line=index)
        if problems:
            failures[f"{case.origin}/{case.name}"] = problems
    # The rest one by one: several records, arrays, bytes that are not UTF-8, 10 MB bodies.
    for case in whole:
        code, _, stderr = publish_stdin(settings, case.body)
        problems = cli_problems(case, code, stderr)
        if problems:
            failures[f"{case.origin}/{case.name}"] = problems

    assert not failures, report(failures, len(cases))
    assert f"published 0, rejected {len(single)}, failed 0" in stdout, stdout[-300:]
    assert sum(end_offsets(settings, settings.events_topic).values()) == 0, "a hostile record was published"


def test_hypothesis_drawn_hostile_records_are_refused_over_http_and_by_the_cli(corpus_worker):
    drawn: list[Case] = []
    failures: dict[str, list[str]] = {}

    @hypothesis_settings(
        max_examples=HYPOTHESIS_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(hostile_records())
    def refused(drawn_record: tuple[dict[str, Any], str]) -> None:
        record, path = drawn_record
        body = json.dumps(record, ensure_ascii=False).encode() + b"\n"
        case = Case(f"hypothesis-{len(drawn)}", body, 422, ((1, path),), "hypothesis")
        drawn.append(case)
        status, document = send(corpus_worker.url, body)
        problems = refusal_problems(case, status, document)
        if health_or_none(corpus_worker.url) is None:
            problems.append("/healthz did not answer afterwards")
        if problems:
            failures[f"{case.name} {body[:300]!r}"] = problems

    refused()
    code, _, stderr = publish_stdin(corpus_worker.settings, b"".join(case.body for case in drawn))
    for index, case in enumerate(drawn, start=1):
        problems = cli_problems(case, code, stderr, first_line=index)
        if problems:
            failures[f"cli {case.name} {case.body[:300]!r}"] = problems

    assert len(drawn) >= HYPOTHESIS_EXAMPLES // 2
    assert not failures, report(failures, len(drawn))


def usage(entity: str, figure: float, event_id: str, occurred_on: str = "2025-06") -> dict[str, Any]:
    return {
        "type": "usage.reported",
        "id": event_id,
        "entity": entity,
        "metric": "mau",
        "value": {"value": figure, "unit": "users"},
        "occurred_on": occurred_on,
        "source": {"name": "desk"},
    }


def mau(entity: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return sample("market_usage", entity=entity, metric="mau")


def counted(url: str, name: str, **labels: str) -> float:
    return scrape(url).get(sample(name, **labels), 0.0)


def test_the_same_bytes_on_the_topic_are_dead_lettered_and_the_valid_events_around_them_fold(corpus_worker):
    settings = corpus_worker.settings
    url = corpus_worker.url
    cases = [case for case in corpus() if len(case.body) <= TOPIC_RECORD_LIMIT]
    folded_before = counted(url, "tracker_events_total", type="usage.reported")
    rejected_before = counted(url, "tracker_events_rejected_total", reason="invalid_json") + counted(
        url, "tracker_events_rejected_total", reason="invalid_event"
    )
    records = []
    for index, case in enumerate(cases):
        entity = f"dlq-valid-{index:03d}"
        home = partition_for(entity, settings.partitions)
        valid = json.dumps(usage(entity, float(index + 1), f"dlq-valid-{index:03d}")).encode()
        # On one partition, in this order: a valid event, the hostile bytes, the next valid event...
        records += [Raw(valid, entity.encode(), home), Raw(case.body, None, home)]

    placed = produce_raw(settings, settings.events_topic, records)

    hostile_at = {placed[2 * index + 1]: case for index, case in enumerate(cases)}

    def caught_up() -> bool:
        ends, committed = fold_progress(settings)
        return ends == committed

    wait_until("the worker to fold past every record", caught_up, 120, 0.5)
    try:
        letters = read_topic(settings, settings.dead_letter_topic, at_least=len(cases), timeout=15)
    except AssertionError:  # fewer letters than hostile records: the comparison below names the missing ones
        letters = read_topic(settings, settings.dead_letter_topic)
    by_position = {}
    for letter in letters:
        content = json.loads(letter.value)
        by_position[(content["partition"], content["offset"])] = content
    failures: dict[str, list[str]] = {}
    for position, case in hostile_at.items():
        letter = by_position.get(position)
        problems = []
        if letter is None:
            problems.append(f"no dead letter for {position}")
        else:
            if letter["topic"] != settings.events_topic:
                problems.append(f"topic {letter['topic']}")
            if letter["reason"] not in ("invalid_json", "invalid_event"):
                problems.append(f"reason {letter['reason']!r}")
            if not letter["errors"] or not all("path" in e and e["reason"] for e in letter["errors"]):
                problems.append(f"errors {letter['errors']}")
            paths = {error["path"] for error in letter["errors"]}
            if case.one_record and case.paths and case.paths[0][1] not in paths:
                problems.append(f"does not name {case.paths[0][1]!r}: {sorted(paths)}")
        if problems:
            failures[f"{case.origin}/{case.name}"] = problems
    wait_for_sample(url, mau(f"dlq-valid-{len(cases) - 1:03d}"), timeout=120)
    samples = scrape(url)
    unfolded = [index for index in range(len(cases)) if samples.get(mau(f"dlq-valid-{index:03d}")) != float(index + 1)]
    rejected_after = (
        samples[sample("tracker_events_rejected_total", reason="invalid_json")]
        + samples[sample("tracker_events_rejected_total", reason="invalid_event")]
    )

    assert len(cases) >= 200
    assert not unfolded, f"{len(unfolded)} valid events around the hostile ones did not fold: {unfolded[:10]}"
    assert corpus_worker.process.poll() is None and health_or_none(url) is not None
    assert not failures, report(failures, len(cases))
    assert samples[sample("tracker_events_total", type="usage.reported")] - folded_before == len(cases)
    assert rejected_after - rejected_before == len(cases)
    assert len(letters) == len(cases)


def test_retractions_and_ids_at_their_edges_have_the_outcomes_the_catalog_defines(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    url = f"{worker.url}/v1/events"

    def publish(*events: dict[str, Any]) -> None:
        status, document = post(url, "\n".join(json.dumps(event) for event in events).encode())
        assert status == 202 and document["accepted"] == len(events), document

    def retraction(event_id: str, target: str) -> dict[str, Any]:
        return {
            "type": "event.retracted",
            "id": event_id,
            "target_id": target,
            "reason": "edge case",
            "occurred_on": "2025-12",
            "source": {"name": "desk"},
        }

    def folded(kind: str, at_least: float) -> None:
        wait_for_sample(worker.url, sample("tracker_events_total", type=kind), lambda v: v >= at_least, timeout=30)

    # A retraction of an id nobody published is kept; the fact arrives dead, and lives again under a new id.
    publish(retraction("edge-r-ghost", "edge-ghost-fact"))
    folded("event.retracted", settings.partitions)
    publish(usage("edge-ghost", 100.0, "edge-ghost-fact"))
    folded("usage.reported", 1)
    assert mau("edge-ghost") not in scrape(worker.url)
    publish(usage("edge-ghost", 100.0, "edge-ghost-fact-again"))
    assert wait_for_sample(worker.url, mau("edge-ghost")) == 100.0

    # A retraction of a retraction changes nothing: the first retraction stays in force.
    publish(usage("edge-rr", 7.0, "edge-rr-fact"))
    assert wait_for_sample(worker.url, mau("edge-rr")) == 7.0
    publish(retraction("edge-rr-r1", "edge-rr-fact"))
    wait_until("the fact to be retracted", lambda: mau("edge-rr") not in scrape(worker.url), 30)
    publish(retraction("edge-rr-r2", "edge-rr-r1"))
    folded("event.retracted", 3 * settings.partitions)
    publish(retraction("edge-rr-r1-twice", "edge-rr-fact"))
    folded("event.retracted", 4 * settings.partitions)
    samples = scrape(worker.url)
    assert mau("edge-rr") not in samples
    assert samples[sample("tracker_events_total", type="usage.reported")] == 3

    # One id, two contents: the smaller digest wins whatever the order, and the conflict is counted.
    def winner(entity: str, event_id: str) -> float:
        contents = {figure: decode_event(json.dumps(usage(entity, figure, event_id)).encode()) for figure in (1.0, 2.0)}
        return min(contents, key=lambda figure: content_digest(contents[figure]))

    publish(usage("edge-same", 1.0, "edge-same-id"))
    folded("usage.reported", 4)
    publish(usage("edge-same", 2.0, "edge-same-id"))
    publish(usage("edge-same-2", 2.0, "edge-same-id-2"))
    folded("usage.reported", 6)
    publish(usage("edge-same-2", 1.0, "edge-same-id-2"))
    folded("usage.reported", 7)
    # The kept content once more: a duplicate, not a conflict.
    publish(usage("edge-same", winner("edge-same", "edge-same-id"), "edge-same-id"))
    folded("usage.reported", 8)
    samples = scrape(worker.url)

    assert samples[mau("edge-same")] == winner("edge-same", "edge-same-id")
    assert samples[mau("edge-same-2")] == winner("edge-same-2", "edge-same-id-2")
    assert samples[sample("tracker_events_rejected_total", reason="id_conflict")] == 2
    assert samples[sample("tracker_events_duplicate_total")] == 1
