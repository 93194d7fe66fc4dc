"""The committed JSON Schemas are exactly what the models export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker.core.events import EVENT_MODELS
from tracker.schema import render_schemas, stale_schemas

pytestmark = pytest.mark.unit

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "events" / "schema"


def test_committed_schemas_are_up_to_date() -> None:
    stale = stale_schemas(SCHEMA_DIR)

    assert stale == [], f"run `tracker schema`: {stale} differ from the models"


def test_every_event_type_has_a_schema_that_forbids_unknown_fields() -> None:
    schemas = {name: json.loads(text) for name, text in render_schemas().items()}

    assert set(schemas) == {f"{kind}.json" for kind in EVENT_MODELS}
    for schema in schemas.values():
        assert schema["additionalProperties"] is False


def test_a_changed_schema_file_is_reported_stale(tmp_path: Path) -> None:
    for name, text in render_schemas().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "usage.reported.json").write_text("{}")

    assert stale_schemas(tmp_path) == ["usage.reported.json"]
