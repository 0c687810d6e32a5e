"""Turning what users pass to ``apply`` (builders, messages, manifest dicts, paths, Python files)
into resources, in the CLI's dependency order."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from stigmer.core import (
    InvalidArgument,
    LoadedResource,
    kind_of,
    parse_manifest,
    resource_from_message,
    slugify,
)
from stigmer.sdk._builder import ResourceBuilder
from stigmer.sdk._kinds import APPLY_ORDER

__all__ = ["ResourceLike", "collect", "order_resources", "to_loaded"]

ResourceLike = ResourceBuilder[Any] | Message | Mapping[str, Any] | str | Path


def to_loaded(item: Any) -> list[LoadedResource]:
    """One item passed to ``apply`` as loaded resources."""
    from stigmer.core import load_manifests

    if isinstance(item, ResourceBuilder):
        msg = item.to_message()
        return [LoadedResource(resource_from_message(msg), item.kind, item.name, item.source, 1)]
    if isinstance(item, Message):
        inner: Any = item
        kind = kind_of(inner)
        if kind not in APPLY_ORDER:
            raise InvalidArgument(f"a {kind} cannot be applied; start runs with run()")
        from stigmer.core import unwrap

        name = unwrap(inner).metadata.name  # type: ignore[attr-defined]
        return [LoadedResource(resource_from_message(inner), kind, name, "<message>", 1)]
    if isinstance(item, Mapping):
        return parse_manifest(json.dumps(dict(item)), "<dict>")
    if isinstance(item, str | Path):
        path = Path(item)
        if path.suffix == ".py":
            from stigmer.sdk._pyfile import load_python_manifests

            return load_python_manifests(path)
        return load_manifests([path])
    raise TypeError(
        f"cannot apply {type(item).__name__}: give builders (Agent, Workflow ...), resource messages, "
        "manifest dicts, or paths to manifest files, directories or Python files"
    )


def collect(items: Iterable[Any]) -> list[LoadedResource]:
    """Flatten items (lists and tuples are expanded) into loaded resources."""
    out: list[LoadedResource] = []
    for item in items:
        if isinstance(item, list | tuple):
            out.extend(collect(item))
        else:
            out.extend(to_loaded(item))
    return out


def order_resources(loaded: list[LoadedResource]) -> list[LoadedResource]:
    """Skills, MCP servers and environments, then agents, then workflows; duplicates refused."""
    seen: dict[tuple[str, str], LoadedResource] = {}
    for item in loaded:
        if item.kind not in APPLY_ORDER:
            raise InvalidArgument(f"{item.source}:{item.line}: a {item.kind} cannot be applied")
        key = (item.kind, slugify(item.name))
        if key in seen:
            first = seen[key]
            raise InvalidArgument(
                f"{item.kind}/{item.name} is declared twice ({first.source}:{first.line} and "
                f"{item.source}:{item.line}); keep one"
            )
        seen[key] = item
    return sorted(loaded, key=lambda r: APPLY_ORDER[r.kind])
