"""Read what a user reads: /metrics samples and /v1 JSON from a running worker."""

from __future__ import annotations

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tracker.polling import wait_until

Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(url: str) -> dict[Sample, float]:
    """Return every sample of a /metrics page keyed by (name, labels)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(name: str, **labels: str) -> Sample:
    """Return the key of one sample."""
    return (name, frozenset(labels.items()))


def wait_for_sample(url: str, key: Sample, predicate: object = None, timeout: float = 60) -> float:
    """Wait until a sample exists (and satisfies ``predicate``); return its value."""

    def check() -> float | None:
        value = scrape(url).get(key)
        if value is None:
            return None
        if predicate is not None and not predicate(value):  # type: ignore[operator]
            return None
        return value if value != 0 else 1e-300 if predicate is None else value

    wait_until(f"{key} on {url}/metrics", check, timeout=timeout)
    return scrape(url)[key]


def post(url: str, body: bytes, content_type: str = "application/x-ndjson") -> tuple[int, dict[str, object]]:
    """POST a body and return (status, decoded JSON)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
