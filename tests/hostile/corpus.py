"""The hostile-input corpus: hand-written files, generated mutations, 10 MB bodies, hypothesis strategies.

Every case is a request body that ``POST /v1/events`` must refuse with a 4xx
status and ``tracker publish`` with a non-zero exit, naming the field:

- ``files/`` holds the hand-written cases, one body per file, byte for byte;
  ``expected.tsv`` says for each the status and the field paths that must be
  named (``N:path`` for record N; an empty path is the record itself; ``-``
  means the body is refused as a whole, 400 or 413).
- ``generated()`` crosses a valid event of each type with a table of defects
  (missing and unknown fields, wrong types, unicode tricks in slugs, bad
  quantities and dates, oversized strings).
- ``big()`` builds the bodies too large to keep in the repository (10 MB and
  over the 16 MiB default limit) at test time.
- ``hostile_records()`` is a hypothesis strategy of invalid records, each with
  the field path its refusal must name.

``python -m tests.hostile.corpus DIR`` writes every case of the first three
kinds to ``DIR`` to look at.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

__all__ = ["BASES", "Case", "big", "corpus", "generated", "hand_written", "hostile_records"]

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
EXPECTED = HERE / "expected.tsv"
#: The worker's default TRACKER_MAX_BODY_BYTES (16 MiB).
DEFAULT_BODY_LIMIT = 16 * 1024 * 1024
#: Kafka refuses records over ~1 MB by default (message.max.bytes); bigger cases cannot reach the topic.
TOPIC_RECORD_LIMIT = 900_000

Json = dict[str, Any]

BASES: dict[str, Json] = {
    "usage.reported": {
        "type": "usage.reported",
        "entity": "acme",
        "metric": "mau",
        "value": {"value": 1000000, "unit": "users"},
        "occurred_on": "2025-10",
        "source": {"name": "desk"},
    },
    "investment.announced": {
        "type": "investment.announced",
        "entity": "acme",
        "amount": {"value": 1e9, "unit": "USD"},
        "period": 2026,
        "occurred_on": "2025",
        "source": {"name": "desk"},
    },
    "chip_delivery.reported": {
        "type": "chip_delivery.reported",
        "entity": "acme",
        "vendor": "nvidia",
        "product": "nvidia_h200",
        "units": {"value": 1000, "unit": "units"},
        "stage": "ordered",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    },
    "export_rule.changed": {
        "type": "export_rule.changed",
        "authority": "us_government",
        "product": "nvidia_h200",
        "destination": "CN",
        "direction": "loosened",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    },
    "event.retracted": {
        "type": "event.retracted",
        "target_id": "hostile-usage",
        "reason": "figure misread",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    },
}
REQUIRED = {kind: [field for field in base if field != "type"] for kind, base in BASES.items()}
SLUGS = {
    "usage.reported": ["entity"],
    "investment.announced": ["entity", "category"],
    "chip_delivery.reported": ["entity", "buyer", "vendor", "product"],
    "export_rule.changed": ["authority", "product", "entity"],
    "event.retracted": ["entity"],
}
QUANTITIES = {
    "usage.reported": {"value": "units"},
    "investment.announced": {"amount": "USD"},
    "chip_delivery.reported": {"units": "units", "unit_price": "USD"},
}
DATES = {kind: ["occurred_on"] for kind in BASES} | {
    "export_rule.changed": ["occurred_on", "effective_on"],
    "chip_delivery.reported": ["occurred_on", "expected_on"],
}
#: Look-alike slugs: each breaks ``^[a-z0-9][a-z0-9_-]*$`` while reading like a valid one.
SLUG_TRICKS: dict[str, Callable[[str], str]] = {
    "cyrillic-a": lambda slug: "\u0430" + slug[1:],
    "zero-width-space": lambda slug: slug[:1] + "\u200b" + slug[1:],
    "rtl-mark": lambda slug: "\u200f" + slug,
    "fullwidth-digit": lambda slug: slug + "-\uff11",
    "fullwidth-latin": lambda slug: "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in slug),
    "combining-accent": lambda slug: slug + "\u0301",
    "no-break-space": lambda slug: slug[:1] + "\u00a0" + slug[1:],
    "trailing-newline": lambda slug: slug + "\n",
}
QUANTITY_DEFECTS: dict[str, tuple[Callable[[str], Json], str]] = {
    "negative": (lambda unit: {"value": -1.0, "unit": unit}, ".value"),
    "absurd": (lambda unit: {"value": 1e19, "unit": unit}, ".value"),
    "low-above-high": (lambda unit: {"low": 9.0, "high": 3.0, "unit": unit}, ""),
    "point-and-range": (lambda unit: {"value": 5.0, "low": 1.0, "unit": unit}, ""),
    "no-figure": (lambda unit: {"unit": unit}, ""),
    "bad-unit": (lambda unit: {"value": 5.0, "unit": "u$d"}, ".unit"),
    "string-figure": (lambda unit: {"value": "5", "unit": unit}, ".value"),
    "string-approx": (lambda unit: {"value": 5.0, "unit": unit, "approx": "about"}, ".approx"),
}
DATE_DEFECTS: dict[str, object] = {
    "month-13": "2025-13",
    "february-30": "2025-02-30",
    "year-1899": "1899",
    "year-2201": "2201",
    "short-month": "2025-1",
    "timestamp": "2025-12-01T00:00:00Z",
    "number": 2025,
}
LONG_STRINGS = {"source.name": 201, "source.quote": 1001, "entity_name": 201, "id": 129}


@dataclass(frozen=True)
class Case:
    """One hostile body and what its refusal must say."""

    name: str
    body: bytes
    #: The status POST /v1/events must answer: 400 (unreadable), 413 (too large) or 422 (every record refused).
    status: int
    #: (record number, field path) pairs the refusal must name; empty when the body is refused whole.
    paths: tuple[tuple[int, str], ...]
    origin: str

    @property
    def one_record(self) -> bool:
        """Return whether the body is a single JSON-object line: combinable into JSON Lines, one Kafka record."""
        stripped = self.body.strip()
        if not stripped.startswith(b"{") or b"\n" in stripped or len(self.body) > TOPIC_RECORD_LIMIT:
            return False
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True


def _paths(text: str) -> tuple[tuple[int, str], ...]:
    if text == "-":
        return ()
    found = []
    for item in text.split(";"):
        line, sep, path = item.partition(":")
        found.append((int(line), path) if sep and line.isdigit() else (1, item))
    return tuple(found)


def hand_written() -> list[Case]:
    """Return the cases of files/, with the expectations of expected.tsv."""
    cases = []
    listed = set()
    for row in EXPECTED.read_text(encoding="utf-8").splitlines():
        if not row or row.startswith("#"):
            continue
        name, status, paths, _ = row.split("\t")
        listed.add(name)
        cases.append(Case(name, (FILES / name).read_bytes(), int(status), _paths(paths), "file"))
    stray = {path.name for path in FILES.iterdir()} - listed
    if stray:
        raise ValueError(f"files without a line in {EXPECTED.name}: {sorted(stray)}")
    return cases


def _record(data: Json) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def _set(event: Json, path: str, value: object) -> Json:
    data = json.loads(json.dumps(event))
    *parents, leaf = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[leaf] = value
    return data


def generated() -> list[Case]:
    """Return the mutations of a valid event of each type, each with the path its refusal must name."""
    cases = []

    def add(name: str, event: Json, path: str) -> None:
        cases.append(Case(name, _record(event), 422, ((1, path),), "generated"))

    for kind, base in BASES.items():
        short = kind.split(".")[0]
        for field in REQUIRED[kind]:
            add(f"{short}-missing-{field}", {k: v for k, v in base.items() if k != field}, field)
            wrong: object = 7 if isinstance(base[field], str) else "7"
            add(f"{short}-{field}-wrong-type", _set(base, field, wrong), field)
        add(f"{short}-unknown-field", {**base, "x_hostile": 1}, "x_hostile")
        add(f"{short}-unknown-source-field", _set(base, "source.x_hostile", 1), "source.x_hostile")
        for field in SLUGS[kind]:
            for trick, spoil in SLUG_TRICKS.items():
                add(f"{short}-{field}-{trick}", _set(base, field, spoil(str(base.get(field, "acme")))), field)
        for field, unit in QUANTITIES.get(kind, {}).items():
            add(f"{short}-{field}-unknown-field", _set(base, field, {"value": 1.0, "unit": unit, "x": 1}), f"{field}.x")
            for defect, (quantity, suffix) in QUANTITY_DEFECTS.items():
                add(f"{short}-{field}-{defect}", _set(base, field, quantity(unit)), field + suffix)
        for field in DATES[kind]:
            for defect, value in DATE_DEFECTS.items():
                add(f"{short}-{field}-{defect}", _set(base, field, value), field)
        for path, length in LONG_STRINGS.items():
            add(f"{short}-{path}-too-long", _set(base, path, "x" * length), path)
    return cases


def big() -> list[Case]:
    """Return the bodies too big to keep in the repository: 10 MB ones, and one over the 16 MiB limit."""
    ten = 10 * 1024 * 1024
    usage = BASES["usage.reported"]
    quote = _record(_set(usage, "source.quote", "q" * ten))
    line = _record({**usage, "entity_name": "n" * 10_000})
    lines = line * (ten // len(line))
    over = _record(_set(usage, "source.quote", "q" * (DEFAULT_BODY_LIMIT + 1024)))
    return [
        Case("10mb-quote", quote, 422, ((1, "source.quote"),), "big"),
        Case("10mb-of-lines", lines, 422, tuple((n, "entity_name") for n in (1, ten // len(line))), "big"),
        Case("10mb-of-brackets", b"[" * ten, 400, (), "big"),
        # Over the worker's limit: 413 over HTTP; the CLI reads files of any size and names the field.
        Case("over-16mib", over, 413, ((1, "source.quote"),), "big"),
    ]


def corpus() -> list[Case]:
    """Return every stored and generated case (not the big ones, not hypothesis's)."""
    return hand_written() + generated()


# -- hypothesis ------------------------------------------------------------------------------------

_SLUG_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-")
_bad_char = st.characters(codec="utf-8").filter(lambda c: c not in _SLUG_OK)
#: JSON numbers: no NaN or infinity (json.dumps would write them as NaN and Infinity, which are not JSON).
_finite = st.floats(allow_nan=False, allow_infinity=False)
_json_scalars = st.one_of(st.integers(), _finite, st.booleans(), st.text())


@st.composite
def _bad_slug(draw: st.DrawFn) -> str:
    head = draw(st.text(alphabet=sorted(_SLUG_OK), max_size=10))
    tail = draw(st.text(alphabet=sorted(_SLUG_OK), max_size=10))
    return head + draw(_bad_char) + tail


@st.composite
def _bad_date(draw: st.DrawFn) -> str:
    year = draw(st.integers(1900, 2200))
    return draw(
        st.one_of(
            st.integers(0, 1899).map(lambda y: f"{y:04d}"),
            st.integers(2201, 9999).map(lambda y: f"{y:04d}"),
            st.integers(13, 99).map(lambda m: f"{year}-{m:02d}"),
            st.just(f"{year}-00"),
            st.integers(1, 12).flatmap(lambda m: st.integers(32, 99).map(lambda d: f"{year}-{m:02d}-{d:02d}")),
            st.text(max_size=12).filter(lambda t: not t.isascii() or not t.replace("-", "").isdigit()),
        )
    )


@st.composite
def hostile_records(draw: st.DrawFn) -> tuple[Json, str]:
    """Draw an invalid record and the field path its refusal must name."""
    kind = draw(st.sampled_from(sorted(BASES)))
    base = BASES[kind]
    defect = draw(st.sampled_from(["missing", "unknown", "wrong-type", "slug", "date", "quantity", "long"]))
    if defect == "missing":
        field = draw(st.sampled_from(REQUIRED[kind]))
        return {k: v for k, v in base.items() if k != field}, field
    if defect == "unknown":
        name = draw(st.from_regex(r"\Ax_[a-z]{1,12}\Z"))
        return {**base, name: draw(_json_scalars)}, name
    if defect == "wrong-type":
        # Finite floats only: an Infinity makes the body not JSON at all, refused without a
        # field (files/infinity-literal.json covers that case).
        field = draw(st.sampled_from(REQUIRED[kind]))
        value = base[field]
        if isinstance(value, str):
            wrong = draw(st.one_of(st.integers(), _finite, st.booleans(), st.lists(st.text())))
        elif isinstance(value, dict):
            wrong = draw(st.one_of(st.integers(), st.text(), st.lists(st.integers())))
        else:
            wrong = draw(st.one_of(st.text(), _finite.filter(lambda f: not f.is_integer())))
        return _set(base, field, wrong), field
    if defect == "slug":
        field = draw(st.sampled_from(SLUGS[kind]))
        return _set(base, field, draw(_bad_slug())), field
    if defect == "date":
        field = draw(st.sampled_from(DATES[kind]))
        return _set(base, field, draw(_bad_date())), field
    if defect == "quantity" and kind in QUANTITIES:
        field, unit = draw(st.sampled_from(sorted(QUANTITIES[kind].items())))
        figure = draw(
            st.one_of(
                st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
                st.floats(min_value=1.000001e18, allow_nan=False, allow_infinity=False),
            )
        )
        return _set(base, field, {"value": figure, "unit": unit}), f"{field}.value"
    path, length = draw(st.sampled_from(sorted(LONG_STRINGS.items())))
    return _set(base, path, "x" * draw(st.integers(length, length + 500))), path


def main(argv: list[str]) -> int:
    """Write every stored, generated and big case to a directory."""
    if len(argv) != 1:
        print("usage: python -m tests.hostile.corpus DIR", file=sys.stderr)
        return 64
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    cases = corpus() + big()
    for case in cases:
        (out / f"{case.origin}-{case.name}").write_bytes(case.body)
    print(f"{len(cases)} cases written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
