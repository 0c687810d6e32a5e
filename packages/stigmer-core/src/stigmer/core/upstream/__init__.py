"""Upstream Stigmer's manifests, read here and written back.

Upstream (the Go/TypeScript Stigmer project) declares ``apiVersion: agentic.stigmer.ai/v1`` and
writes its protobuf messages' fields; its workflows are a ``tasks`` list rather than a Serverless
Workflow document. :func:`translate` maps such a document to this project's manifest (with a
one-line notice of what was mapped and dropped) or refuses, with a location, what has no
counterpart; :func:`to_upstream` is the reverse for ``stigmer export --format upstream``.
docs/migrating-from-upstream.md is the user's page for all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stigmer.core.upstream._common import UPSTREAM_API_VERSION, Mapping, UpstreamRefused, snake_keys
from stigmer.core.upstream._resources import map_metadata, map_spec, to_upstream_spec
from stigmer.core.upstream._skillmd import SKILL_VERSION_ANNOTATION, front_matter, read_skill_dir
from stigmer.core.upstream._tolerate import tolerate_document
from stigmer.core.upstream._workflow import (
    DIALECT_ANNOTATION,
    TASK_KINDS,
    UNCONVERTIBLE,
    convert_workflow,
    is_tasks_shape,
    to_upstream_workflow,
)

__all__ = [
    "DIALECT_ANNOTATION",
    "SKILL_TAG_ANNOTATION",
    "SKILL_VERSION_ANNOTATION",
    "TASK_KINDS",
    "UNCONVERTIBLE",
    "UPSTREAM_API_VERSION",
    "UpstreamRefused",
    "front_matter",
    "to_upstream",
    "translate",
]

_MAPPED_KINDS = ("Agent", "McpServer", "Environment", "Skill", "Workflow")
SKILL_TAG_ANNOTATION = "stigmer.ai/skill-tag"


def translate(data: dict[str, Any], native_api: str, base_dir: Path | None) -> tuple[dict[str, Any], str]:
    """``data`` (one manifest document) in this project's shape, and a notice ('' when nothing
    was changed). Raises :class:`UpstreamRefused` with the path of what cannot be mapped."""
    kind = str(data.get("kind"))
    api = data.get("apiVersion", data.get("api_version"))
    m = Mapping()
    if api == UPSTREAM_API_VERSION:
        if kind not in _MAPPED_KINDS:
            raise UpstreamRefused(
                f"upstream kind {kind} is not mapped here (mapped: {', '.join(_MAPPED_KINDS)})", ["kind"]
            )
        out: dict[str, Any] = {"apiVersion": native_api, "kind": kind}
        out["metadata"] = map_metadata(data.get("metadata"), m)
        spec = data.get("spec")
        if kind == "Workflow":
            out["spec"] = spec
        else:
            try:
                out["spec"] = map_spec(kind, spec, m)
            except (TypeError, ValueError, AttributeError) as exc:  # a field of another shape
                raise UpstreamRefused(
                    f"the spec is not the shape upstream's {kind} has ({exc})", ["spec"]
                ) from None
            if kind == "Skill":
                tag = snake_keys(spec).get("tag")
                if tag:
                    out["metadata"].setdefault("annotations", {})[SKILL_TAG_ANNOTATION] = str(tag)
                    m.rename("tag", f"metadata.annotations {SKILL_TAG_ANNOTATION}")
        for key in data:
            if key not in {"apiVersion", "api_version", "kind", "metadata", "spec", "status"}:
                m.drop(key)
        if "status" in data:
            m.drop("status")
        data = out
    elif api != native_api:
        return data, ""
    name = str((data.get("metadata") or {}).get("name") or "")
    if kind == "Workflow":
        data = _workflow(data, name, m)
    elif kind == "Skill":
        data = _skill(data, base_dir, m)
    if not m.mapped and not m.dropped and api == native_api:
        return data, ""
    return data, m.notice(kind, name or "?", upstream=api == UPSTREAM_API_VERSION)


def _workflow(data: dict[str, Any], name: str, m: Mapping) -> dict[str, Any]:
    spec = data.get("spec")
    if is_tasks_shape(spec):
        assert isinstance(spec, dict)
        try:
            spec = convert_workflow(spec, name, m)
        except (TypeError, ValueError, AttributeError) as exc:
            raise UpstreamRefused(
                f"the spec is not the shape of upstream's workflows ({exc})", ["spec"]
            ) from None
    if isinstance(spec, dict):
        spec = tolerate_document(spec, m)
        annotations = (data.get("metadata") or {}).get("annotations") or {}
        dialect = annotations.get(DIALECT_ANNOTATION) if isinstance(annotations, dict) else None
        document = spec.get("document")
        if dialect and isinstance(document, dict):
            meta = document.setdefault("metadata", {})
            if isinstance(meta, dict) and DIALECT_ANNOTATION not in meta:
                meta[DIALECT_ANNOTATION] = dialect
    return {**data, "spec": spec}


def _skill(data: dict[str, Any], base_dir: Path | None, m: Mapping) -> dict[str, Any]:
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return data
    spec = dict(spec)
    found: dict[str, Any] = {}
    if isinstance(spec.get("content"), str):
        found = front_matter(spec["content"])
    elif isinstance(spec.get("path"), str) and base_dir is not None:
        found = read_skill_dir(base_dir / spec["path"])
    if not found:
        return data
    meta = dict(data.get("metadata") or {})
    if found.get("description") and not spec.get("description"):
        spec["description"] = str(found["description"])
        m.rename("SKILL.md description", "spec.description")
    if found.get("version") is not None:
        annotations = dict(meta.get("annotations") or {})
        annotations.setdefault(SKILL_VERSION_ANNOTATION, str(found["version"]))
        meta["annotations"] = annotations
        m.rename("SKILL.md version", f"metadata.annotations {SKILL_VERSION_ANNOTATION}")
    if found.get("name") and not meta.get("name"):
        meta["name"] = str(found["name"])
        m.rename("SKILL.md name", "metadata.name")
    return {**data, "metadata": meta, "spec": spec}


def to_upstream(manifest: dict[str, Any]) -> dict[str, Any]:
    """One of this project's manifests (as ``export`` renders it) in upstream's shape, where a
    mapping exists: Agent, McpServer, Environment and Skill specs are mapped; a Workflow becomes
    upstream's ``tasks`` when every task has an upstream kind, else it is returned as it is."""
    kind = str(manifest.get("kind"))
    tasks: dict[str, Any] | None = None
    if kind == "Workflow":
        tasks = to_upstream_workflow(dict(manifest.get("spec") or {}))
        if tasks is None:
            return manifest
    meta = manifest.get("metadata") or {}
    out_meta: dict[str, Any] = {"name": meta.get("name", "")}
    for key in ("labels", "annotations"):
        if meta.get(key):
            out_meta[key] = meta[key]
    spec = manifest.get("spec") or {}
    return {
        "apiVersion": UPSTREAM_API_VERSION,
        "kind": kind,
        "metadata": out_meta,
        "spec": tasks if tasks is not None else to_upstream_spec(kind, spec),
    }
