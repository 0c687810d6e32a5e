"""``stigmer apply -f app.py``: run a Python file in a fresh namespace and take the resources it
defines (a module-level ``resources`` list, else every module-level builder, in definition order)."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from stigmer.core import InvalidArgument, LoadedResource
from stigmer.sdk.authoring._builder import ResourceBuilder

__all__ = ["load_python_manifests", "resources_of"]

RUN_NAME = "__stigmer_apply__"


def resources_of(namespace: dict[str, Any], source: str) -> list[Any]:
    """The resources a module namespace declares."""
    if "resources" in namespace:
        declared = namespace["resources"]
        if not isinstance(declared, list | tuple):
            raise InvalidArgument(f"{source}: 'resources' must be a list of resources")
        return list(declared)
    found: list[Any] = []
    seen: set[int] = set()
    for name, value in namespace.items():
        if name.startswith("_") or id(value) in seen:
            continue
        if isinstance(value, ResourceBuilder) or (isinstance(value, Message) and _is_resource(value)):
            seen.add(id(value))
            found.append(value)
    return found


def _is_resource(value: Message) -> bool:
    from stigmer.core import kind_of

    try:
        kind_of(value)
    except (TypeError, ValueError, InvalidArgument):
        return False
    return True


def load_python_manifests(path: str | Path) -> list[LoadedResource]:
    """Execute ``path`` (``__name__`` is ``"__stigmer_apply__"``, so a ``__main__`` block does not
    run) and return the resources it defines; relative skill paths are relative to the file."""
    from stigmer.sdk._collect import collect

    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"{file}: no such file")
    try:
        namespace = runpy.run_path(str(file), run_name=RUN_NAME)
    except InvalidArgument:
        raise
    except Exception as exc:
        raise InvalidArgument(f"{file}: running it failed: {type(exc).__name__}: {exc}") from exc
    items = resources_of(namespace, str(file))
    if not items:
        raise InvalidArgument(
            f"{file}: defines no resources (create Agent/Workflow/... objects at module level, "
            "or a 'resources' list)"
        )
    loaded = collect(items)
    # Resources whose source is not a file take the Python file as theirs (relative paths, errors).
    return [
        item
        if Path(item.source).is_file()
        else LoadedResource(item.resource, item.kind, item.name, str(file), item.line)
        for item in loaded
    ]
