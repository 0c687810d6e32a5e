"""Protobuf ``Value``/``Struct`` data back to plain Python, with whole numbers as ints.

A ``google.protobuf.Value`` stores every number as a double, so ``2`` comes back as ``2.0``.
``plain_value`` undoes that for integral floats that a double holds exactly (below 2**53);
``from_value`` does it for a message (a ``Value``, a ``Struct``, or any message holding them).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["from_value", "plain_value"]

_EXACT = 2**53


def plain_value(value: Any) -> Any:
    """JSON data with integral floats turned back into ints (``2.0`` -> ``2``), recursively.

    ``bool`` stays ``bool``, non-integral floats, NaN, infinities and floats of 2**53 or more
    stay floats; anything that is not a float, dict or list is returned as it is.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_value(v) for v in value]
    return value


def from_value(message: Message) -> Any:
    """A protobuf message (``Value``, ``Struct``, ...) as plain data, with integral numbers as ints."""
    return plain_value(json_format.MessageToDict(message))
