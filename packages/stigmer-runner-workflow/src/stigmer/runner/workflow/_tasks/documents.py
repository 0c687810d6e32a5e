"""Documents a task fetches (OpenAPI, AsyncAPI descriptions), read as data."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_document"]


def parse_document(content: bytes) -> Any:
    """A fetched document as data: JSON (it starts with ``{``) or YAML. ``ValueError`` (not UTF-8,
    not JSON, not YAML) says why not."""
    text = content.decode("utf-8")
    if text.lstrip().startswith("{"):
        return json.loads(text)
    import io

    from ruamel.yaml import YAML  # only when a run fetches a YAML document
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(text))
    except YAMLError as exc:
        raise ValueError(str(exc)) from None
