"""A report in three forms: an aligned table for people, CSV of the raw values, the API's JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FORMATS", "Format", "Report", "no_match", "render", "table_text"]

Format = Literal["table", "json", "csv"]
FORMATS: tuple[Format, ...] = ("table", "json", "csv")


@dataclass(frozen=True)
class Report:
    """What a report command shows, ready for any format.

    ``rows`` are the cells people read (``23 B USD``); ``raw`` the same rows with
    plain values for CSV (``23000000000.0``, ``USD`` in its own column); ``document``
    is what the API answered, printed as is for ``--format json``.
    """

    headers: tuple[str, ...]
    rows: Sequence[Sequence[str]]
    raw_headers: tuple[str, ...]
    raw: Sequence[Sequence[Any]]
    empty: str
    document: Any
    #: Columns aligned right in the table (numbers).
    right: frozenset[str] = field(default_factory=frozenset)


def table_text(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[str] = frozenset()) -> str:
    """Return rows under a header row, each column as wide as its widest cell."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (tuple(headers), *rows):
        cells = [
            f"{cell:>{width}}" if header in right else f"{cell:<{width}}"
            for header, cell, width in zip(headers, row, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return out.getvalue().rstrip("\n")


def render(report: Report, form: Format) -> str:
    """Return the report as a table (or its ``empty`` sentence), CSV with a header row, or JSON."""
    if form == "json":
        return json.dumps(report.document, indent=2, ensure_ascii=False)
    if form == "csv":
        return _csv_text(report.raw_headers, report.raw)
    if not report.rows:
        return report.empty
    return table_text(report.headers, report.rows, report.right)


def no_match(what: str, filters: Mapping[str, object]) -> str:
    """Return the sentence an empty answer prints: ``no facts match entity=x as of 2025-11-01``."""
    given = {key: value for key, value in filters.items() if value not in (None, "", [], ())}
    as_of = given.pop("as_of", None)
    words = [f"no {what}"]
    if given:
        words.append("match " + " ".join(f"{key}={value}" for key, value in given.items()))
    if as_of is not None:
        words.append(f"as of {as_of}")
    return " ".join(words)
