"""Generate JSON Schemas for every manifest kind and the manifest reference, from the protos.

Both are derived from `proto/stigmer/v1/*.proto` (fields, types and comments):
- `packages/stigmer-core/src/stigmer/core/schemas/<Kind>.schema.json` (shipped with stigmer-core,
  used by `stigmer apply --dry-run`) and the same files in `docs/schemas/` for editors;
- `docs/reference/manifests.md`.

Usage: ``python scripts/gen_schemas.py [--check]``; exits 1 when a checked-in file was stale
(and, without ``--check``, rewrites it).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
CORE_SCHEMAS = ROOT / "packages" / "stigmer-core" / "src" / "stigmer" / "core" / "schemas"
DOC_SCHEMAS = ROOT / "docs" / "schemas"
REFERENCE = ROOT / "docs" / "reference" / "manifests.md"
SCHEMA_BASE = "https://stigmer.ai/schemas/v1"
DEFINITION_KINDS = [
    "Agent",
    "Skill",
    "McpServer",
    "Environment",
    "Workflow",
    "Session",
    "Schedule",
    "Trigger",
]
API_VERSION = "stigmer.ai/v1"
# Messages a list may give by name alone (core's manifest loader expands them).
NAME_SHORTHAND = {".stigmer.v1.AgentTool"}

T = descriptor_pb2.FieldDescriptorProto
SCALARS: dict[int, dict[str, Any]] = {
    T.TYPE_STRING: {"type": "string"},
    T.TYPE_BOOL: {"type": "boolean"},
    T.TYPE_INT32: {"type": "integer"},
    T.TYPE_INT64: {"type": ["integer", "string"], "pattern": "^-?[0-9]+$"},
    T.TYPE_UINT32: {"type": "integer", "minimum": 0},
    T.TYPE_UINT64: {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
    T.TYPE_DOUBLE: {"type": "number"},
    T.TYPE_FLOAT: {"type": "number"},
    T.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array"},
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
}


def _descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc  # type: ignore[import-untyped]

    include = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        protos = sorted(
            str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "stigmer" / "v1").glob("*.proto")
        )
        code = protoc.main(
            [
                "protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                "--include_source_info",
                f"--descriptor_set_out={out}",
                *protos,
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


class Model:
    """Messages and enums of stigmer.v1 by full name, with their comments."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.comments: dict[str, str] = {}
        for f in fds.file:
            if f.package != "stigmer.v1":
                continue
            locs = {tuple(loc.path): loc.leading_comments.strip() for loc in f.source_code_info.location}
            for i, m in enumerate(f.message_type):
                self._add_message(m, f".stigmer.v1.{m.name}", (4, i), locs)
            for i, e in enumerate(f.enum_type):
                name = f".stigmer.v1.{e.name}"
                self.enums[name] = e
                self.comments[name] = locs.get((5, i), "")
                for k, v in enumerate(e.value):
                    self.comments[f"{name}.{v.name}"] = locs.get((5, i, 2, k), "")

    def _add_message(
        self,
        m: descriptor_pb2.DescriptorProto,
        name: str,
        path: tuple[int, ...],
        locs: dict[tuple[int, ...], str],
    ) -> None:
        self.messages[name] = m
        self.comments[name] = locs.get(path, "")
        for j, field in enumerate(m.field):
            self.comments[f"{name}.{field.name}"] = locs.get((*path, 2, j), "")
        for j, nested in enumerate(m.nested_type):
            self._add_message(nested, f"{name}.{nested.name}", (*path, 3, j), locs)

    def comment(self, key: str) -> str:
        return " ".join(self.comments.get(key, "").split())


def _is_map(model: Model, field: descriptor_pb2.FieldDescriptorProto) -> bool:
    if field.type != T.TYPE_MESSAGE:
        return False
    entry = model.messages.get(field.type_name)
    return bool(entry and entry.options.map_entry)


def _single_schema(
    model: Model, field: descriptor_pb2.FieldDescriptorProto, defs: dict[str, Any]
) -> dict[str, Any]:
    if field.type == T.TYPE_MESSAGE:
        if field.type_name in WELL_KNOWN:
            return dict(WELL_KNOWN[field.type_name])
        ref = field.type_name.removeprefix(".stigmer.v1.")
        if ref not in defs:
            defs[ref] = {}  # placeholder against recursion
            defs[ref] = _message_schema(model, field.type_name, defs)
        if field.type_name in NAME_SHORTHAND:  # given by name alone, or as a mapping
            return {"anyOf": [{"type": "string"}, {"$ref": f"#/$defs/{ref}"}]}
        return {"$ref": f"#/$defs/{ref}"}
    if field.type == T.TYPE_ENUM:
        enum = model.enums[field.type_name]
        return {"type": "string", "enum": [v.name for v in enum.value]}
    return dict(SCALARS[field.type])


def _field_schema(
    model: Model, owner: str, field: descriptor_pb2.FieldDescriptorProto, defs: dict[str, Any]
) -> dict[str, Any]:
    if _is_map(model, field):
        entry = model.messages[field.type_name]
        value = next(f for f in entry.field if f.name == "value")
        schema: dict[str, Any] = {
            "type": "object",
            "additionalProperties": _single_schema(model, value, defs),
        }
    elif field.label == T.LABEL_REPEATED:
        schema = {"type": "array", "items": _single_schema(model, field, defs)}
    else:
        schema = _single_schema(model, field, defs)
    text = model.comment(f"{owner}.{field.name}")
    return {"description": text, **schema} if text else schema


def _message_schema(model: Model, name: str, defs: dict[str, Any]) -> dict[str, Any]:
    msg = model.messages[name]
    props: dict[str, Any] = {}
    for field in msg.field:
        schema = _field_schema(model, name, field, defs)
        props[field.json_name] = schema
        if field.name != field.json_name:
            props[field.name] = {"$comment": f"snake_case form of {field.json_name}", **schema}
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    text = model.comment(name)
    if text:
        out = {"description": text, **out}
    oneofs: dict[int, list[str]] = {}
    for field in msg.field:
        if field.HasField("oneof_index"):
            oneofs.setdefault(field.oneof_index, []).append(field.json_name)
    if oneofs:
        out["allOf"] = [
            {"not": {"required": [a, b]}}
            for names in oneofs.values()
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        ]
    return out


def kind_schema(model: Model, kind: str) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    body = _message_schema(model, f".stigmer.v1.{kind}", defs)
    props = body["properties"]
    props["apiVersion"] = {**props["apiVersion"], "const": API_VERSION}
    props.pop("api_version", None)
    props["kind"] = {**props["kind"], "const": kind}
    props.pop("status", None)  # system-owned: accepted on input but never needed in a manifest
    body["properties"] = props
    body["additionalProperties"] = {"$comment": "status and snake_case keys are accepted by the loader"}
    body["required"] = ["apiVersion", "kind", "metadata"]
    defs["Metadata"] = {**defs["Metadata"], "required": ["name"]}
    defs["Metadata"]["properties"]["name"] = {**defs["Metadata"]["properties"]["name"], "minLength": 1}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{kind}.schema.json",
        "title": f"Stigmer {kind} manifest",
        **body,
        "$defs": dict(sorted(defs.items())),
    }


def _type_text(model: Model, field: descriptor_pb2.FieldDescriptorProto) -> str:
    if _is_map(model, field):
        entry = model.messages[field.type_name]
        value = next(f for f in entry.field if f.name == "value")
        return f"map of string → {_type_text(model, value)}"
    if field.type == T.TYPE_MESSAGE:
        base = (
            {
                ".google.protobuf.Struct": "mapping (any data)",
                ".google.protobuf.Value": "any value",
                ".google.protobuf.Timestamp": "timestamp (RFC 3339)",
            }.get(field.type_name)
            or f"[{field.type_name.removeprefix('.stigmer.v1.')}](#{field.type_name.removeprefix('.stigmer.v1.').lower()})"
        )
    elif field.type == T.TYPE_ENUM:
        base = "one of " + ", ".join(f"`{v.name}`" for v in model.enums[field.type_name].value)
    else:
        base = {T.TYPE_STRING: "string", T.TYPE_BOOL: "boolean", T.TYPE_DOUBLE: "number"}.get(
            field.type, "integer"
        )
    return f"list of {base}" if field.label == T.LABEL_REPEATED else base


def reference(model: Model) -> str:
    lines = [
        "# Manifest reference",
        "",
        "<!-- Generated by scripts/gen_schemas.py from proto/stigmer/v1 (run `uv run nox -s proto`). Do not edit. -->",
        "",
        "Every resource has the same envelope: `apiVersion: stigmer.ai/v1`, `kind`, `metadata` and `spec`",
        "(`status` is written by the system). Keys are camelCase; snake_case is accepted on input.",
        "JSON Schemas for editors are in [`docs/schemas/`](../schemas/); add",
        "`# yaml-language-server: $schema=<path or URL of the kind's schema>` at the top of a manifest.",
        "",
    ]
    seen: set[str] = set()
    order: list[str] = []

    def visit(name: str) -> None:
        if name in seen or name not in model.messages or model.messages[name].options.map_entry:
            return
        seen.add(name)
        order.append(name)
        for field in model.messages[name].field:
            if field.type == T.TYPE_MESSAGE and not _is_map(model, field):
                visit(field.type_name)
            elif _is_map(model, field):
                entry = model.messages[field.type_name]
                for f in entry.field:
                    if f.type == T.TYPE_MESSAGE:
                        visit(f.type_name)

    for kind in [*DEFINITION_KINDS, "Execution"]:
        visit(f".stigmer.v1.{kind}")
    for name in order:
        short = name.removeprefix(".stigmer.v1.")
        lines += [
            f"## {short}",
            "",
            model.comment(name),
            "",
            "| field | type | description |",
            "|---|---|---|",
        ]
        for field in model.messages[name].field:
            desc = model.comment(f"{name}.{field.name}").replace("|", "\\|")
            lines.append(f"| `{field.json_name}` | {_type_text(model, field)} | {desc} |")
        lines.append("")
    enums = sorted({f.type_name for n in order for f in model.messages[n].field if f.type == T.TYPE_ENUM})
    for enum_name in enums:
        short = enum_name.removeprefix(".stigmer.v1.")
        lines += [f"## {short}", "", model.comment(enum_name), "", "| value | meaning |", "|---|---|"]
        for v in model.enums[enum_name].value:
            lines.append(f"| `{v.name}` | {model.comment(f'{enum_name}.{v.name}')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def outputs() -> dict[Path, str]:
    model = Model(_descriptor_set())
    files: dict[Path, str] = {}
    for kind in DEFINITION_KINDS:
        text = json.dumps(kind_schema(model, kind), indent=2, ensure_ascii=False) + "\n"
        files[CORE_SCHEMAS / f"{kind}.schema.json"] = text
        files[DOC_SCHEMAS / f"{kind}.schema.json"] = text
    files[REFERENCE] = reference(model)
    return files


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in outputs().items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        print(
            "stale generated files"
            + ("" if check else " (regenerated; commit them)")
            + ": "
            + ", ".join(stale)
        )
        return 1
    print("schemas and manifest reference are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
