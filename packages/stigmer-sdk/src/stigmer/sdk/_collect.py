"""Turning what users pass to ``apply`` (builders, messages, manifest dicts, paths, Python files)
into resources (``order_resources`` then puts them in apply order)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from stigmer.core import (
    APPLY_ORDER,
    InvalidArgument,
    LoadedResource,
    kind_of,
    parse_manifest,
    resource_from_message,
)
from stigmer.sdk.authoring._builder import ResourceBuilder

__all__ = ["ResourceLike", "collect", "to_loaded"]

ResourceLike = ResourceBuilder[Any] | Message | Mapping[str, Any] | str | Path | LoadedResource


def to_loaded(item: Any) -> list[LoadedResource]:
    """One item passed to ``apply`` as loaded resources."""
    from stigmer.core import load_manifests

    if isinstance(item, LoadedResource):
        return [item]
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
