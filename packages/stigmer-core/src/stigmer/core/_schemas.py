"""JSON Schemas of the manifest kinds (generated from the protos by scripts/gen_schemas.py)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from stigmer.core._kinds import KIND_TABLE
from stigmer.core._yaml import ManifestError

__all__ = ["SCHEMA_KINDS", "manifest_schema", "output_schema_problem", "validate_manifest"]

SCHEMA_KINDS = tuple(kind.name for kind in KIND_TABLE if kind.applicable)


@functools.cache
def manifest_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a manifest of ``kind``."""
    if kind not in SCHEMA_KINDS:
        raise ManifestError(f"no schema for kind '{kind}' (schemas exist for: {', '.join(SCHEMA_KINDS)})")
    text = resources.files("stigmer.core").joinpath("schemas", f"{kind}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_manifest(data: Any, source: str = "", line: int | None = None) -> None:
    """Check a manifest dict against its kind's JSON Schema; raises ManifestError naming the field."""
    import jsonschema

    if not isinstance(data, dict) or data.get("kind") not in SCHEMA_KINDS:
        kind = data.get("kind") if isinstance(data, dict) else None
        raise ManifestError(f"no schema for kind {kind!r}", source, line)
    validator = jsonschema.Draft202012Validator(manifest_schema(data["kind"]))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    raise ManifestError(f"does not match the {data['kind']} schema: {error.message}", source, line, path)


def output_schema_problem(schema: Any) -> str:
    """What is wrong with an agent's ``outputSchema`` (a JSON Schema, draft 2020-12); "" if nothing."""
    if not isinstance(schema, dict):
        return "outputSchema must be a JSON Schema object (for example {type: object, properties: ...})"
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"outputSchema is not a valid JSON Schema{' at ' + where if where else ''}: {exc.message}"
    if "$ref" in json.dumps(schema) and "$defs" in schema:
        return "outputSchema: $ref and $defs are not supported; write the schema inline"
    return ""
