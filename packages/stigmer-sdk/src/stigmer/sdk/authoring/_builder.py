"""The base of every resource builder: a manifest dict, and the message a YAML manifest would give."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast

from google.protobuf.message import Message

__all__ = ["M", "ResourceBuilder", "compact"]

M = TypeVar("M", bound=Message)


def compact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None (an omitted field, exactly as in a manifest)."""
    return {k: v for k, v in data.items() if v is not None}


class ResourceBuilder(Generic[M]):
    """A resource defined in code. ``to_message()`` is what parsing the equivalent YAML gives.

    Subclasses set ``kind`` and implement ``spec()``; ``M`` is their message (``stigmer.v1.Agent`` ...).
    A builder class also names its kind in ``get``/``list``/``delete``, typing the result.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} needs a non-empty name")
        self.name = name
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})

    def spec(self) -> dict[str, Any]:
        """The ``spec`` of the manifest (camelCase keys)."""
        raise NotImplementedError

    def to_manifest(self) -> dict[str, Any]:
        """The manifest as plain data: ``apiVersion``, ``kind``, ``metadata``, ``spec``."""
        from stigmer.core import API_VERSION

        metadata: dict[str, Any] = {"name": self.name}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {"apiVersion": API_VERSION, "kind": self.kind, "metadata": metadata, "spec": self.spec()}

    def to_message(self) -> M:
        """The kind message (``stigmer.v1.Agent``, ...), validated like a manifest file."""
        from stigmer.core import parse_manifest, unwrap

        [loaded] = parse_manifest(json.dumps(self.to_manifest()), self.source)
        return cast(M, unwrap(loaded.resource))

    def to_yaml(self) -> str:
        """The manifest as YAML, as ``stigmer export`` writes it."""
        from stigmer.core import dump_manifests

        return dump_manifests([self.to_message()], include_status=False)

    @property
    def source(self) -> str:
        """Where the builder came from, for error messages."""
        return f"<{self.kind} {self.name}>"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceBuilder):
            return NotImplemented
        return self.to_manifest() == other.to_manifest()

    __hash__ = object.__hash__
