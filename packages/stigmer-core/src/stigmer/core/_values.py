"""Plain data to and from protobuf ``Value``/``Struct``, with whole numbers as ints.

``jsonable`` makes any value plain JSON data (objects become their ``str``, bytes a size note);
``to_value`` puts it in a ``google.protobuf.Value`` (what ``json_format.ParseDict`` builds, faster).

A ``google.protobuf.Value`` stores every number as a double, so ``2`` comes back as ``2.0``.
``plain_value`` undoes that for integral floats that a double holds exactly (below 2**53);
``from_value`` does it for a message (a ``Value``, a ``Struct``, or any message holding them).
"""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

__all__ = [
    "from_value",
    "json_default",
    "jsonable",
    "plain_value",
    "set_json_value",
    "set_plain_json_value",
    "set_timestamp",
    "stamp_now",
    "to_value",
    "value_of_json",
]

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


def json_default(value: Any) -> Any:
    """``json.dumps``'s ``default``: a pydantic model as its JSON data, bytes as a size note (never
    their content), anything else as its ``str``."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (unknown objects become their ``str``, see :func:`json_default`)."""
    try:
        return json.loads(json.dumps(value, default=json_default))
    except (TypeError, ValueError):  # a circular structure, keys that are not strings or numbers
        return str(value)


def to_value(value: Any) -> struct_pb2.Value:
    """A ``google.protobuf.Value`` holding ``value`` as plain JSON data (see :func:`jsonable`)."""
    return value_of_json(jsonable(value))


def value_of_json(plain: Any) -> struct_pb2.Value:
    """A ``google.protobuf.Value`` holding ``plain``, which is already JSON data (``json.loads``'s)."""
    out = struct_pb2.Value()
    set_json_value(out, plain)
    return out


def set_json_value(out: struct_pb2.Value, plain: Any) -> None:
    """Make the empty ``out`` (a field of a message, say) hold ``plain``, as :func:`value_of_json`."""
    if isinstance(plain, dict):
        struct = out.struct_value
        struct.SetInParent()
        _fill_struct(struct, plain)
    elif isinstance(plain, list):
        values = out.list_value
        values.SetInParent()
        _fill_list(values, plain)
    elif plain is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(plain, bool):
        out.bool_value = plain
    elif isinstance(plain, int | float):
        out.number_value = plain
    else:
        out.string_value = str(plain)


def set_plain_json_value(out: struct_pb2.Value, data: Any) -> bool:
    """Make the empty ``out`` hold ``data`` when it is made of JSON's own types only (dicts with
    string keys, lists, strings, ints, finite floats, booleans, None: the types ``json.loads``
    gives, which read back from their JSON text as they are), exactly as
    ``set_json_value(out, json.loads(json.dumps(data)))`` would, without the round trip. False
    when it holds anything else (``out`` is then partly set: clear it)."""
    return _plain_item(out, data)


def _plain_struct(struct: struct_pb2.Struct, plain: dict[Any, Any]) -> bool:
    fields = struct.fields
    for key, item in plain.items():
        if type(key) is not str or not _plain_item(fields[key], item):
            return False
    return True


def _plain_list(values: struct_pb2.ListValue, plain: list[Any]) -> bool:
    add = values.values.add
    return all(_plain_item(add(), item) for item in plain)


def _plain_item(out: struct_pb2.Value, item: Any) -> bool:
    kind = type(item)
    if kind is str:
        out.string_value = item
    elif kind is int:
        out.number_value = item
    elif kind is float:
        if item - item != 0.0:  # NaN or an infinity: JSON text has no such number
            return False
        out.number_value = item
    elif kind is dict:
        struct = out.struct_value
        struct.SetInParent()
        return _plain_struct(struct, item)
    elif kind is list:
        values = out.list_value
        values.SetInParent()
        return _plain_list(values, item)
    elif kind is bool:
        out.bool_value = item
    elif item is None:
        out.null_value = struct_pb2.NULL_VALUE
    else:
        return False
    return True


def _fill_struct(struct: struct_pb2.Struct, plain: dict[Any, Any]) -> None:
    """``struct.update(plain)``, faster for JSON data: the exact JSON types are set here, anything
    else as ``Struct.update`` sets it (the same message either way)."""
    fields = struct.fields
    for key, item in plain.items():
        _set_item(fields[key], item)


def _fill_list(values: struct_pb2.ListValue, plain: list[Any]) -> None:
    """``values.extend(plain)``, as :func:`_fill_struct`."""
    add = values.values.add
    for item in plain:
        _set_item(add(), item)


def _set_item(out: struct_pb2.Value, item: Any) -> None:
    kind = type(item)
    if kind is str:
        out.string_value = item
    elif kind is int or kind is float:
        out.number_value = item
    elif kind is dict:
        struct = out.struct_value
        struct.Clear()
        _fill_struct(struct, item)
    elif kind is list:
        values = out.list_value
        values.Clear()
        _fill_list(values, item)
    elif kind is bool:
        out.bool_value = item
    elif item is None:
        out.null_value = struct_pb2.NULL_VALUE
    else:  # a tuple, a Struct, a subclass ...: as the protobuf library sets it
        held = struct_pb2.ListValue()
        held.append(item)
        out.CopyFrom(held.values[0])


def set_timestamp(stamp: timestamp_pb2.Timestamp, micros: int) -> timestamp_pb2.Timestamp:
    """Set ``stamp`` (a message's own field, in place) to ``micros`` microseconds since the epoch,
    as ``Timestamp.FromMicroseconds`` does; returns it."""
    seconds, rest = divmod(micros, 1_000_000)
    stamp.seconds = seconds
    stamp.nanos = rest * 1000
    return stamp


def stamp_now(stamp: timestamp_pb2.Timestamp) -> None:
    """Set ``stamp`` (in place) to the current time, to the microsecond."""
    set_timestamp(stamp, time.time_ns() // 1000)
