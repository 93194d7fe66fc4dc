"""Export the event contract as JSON Schema files, one per event type."""

from __future__ import annotations

import json
from pathlib import Path

from tracker.core.events import EVENT_MODELS

__all__ = ["render_schemas", "stale_schemas", "write_schemas"]


def render_schemas() -> dict[str, str]:
    """Return file name -> JSON Schema text for every event type."""
    out = {}
    for kind, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ai-infra-tracker.invalid/schema/v2/{kind}.json"
        out[f"{kind}.json"] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale_schemas(directory: Path) -> list[str]:
    """Return the schema files in ``directory`` that differ from the models."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale
