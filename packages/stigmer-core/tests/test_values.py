"""Protobuf Value data back to plain Python: integral numbers are ints again, nothing else changes."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import from_value, plain_value, set_timestamp, stamp_now
from stigmer.core._values import set_json_value, set_plain_json_value
from stigmer.proto.v1 import execution_pb2


def _value(data: Any) -> struct_pb2.Value:
    return json_format.ParseDict(data, struct_pb2.Value())


def test_integral_numbers_come_back_as_ints() -> None:
    data = {"n": 2, "f": 2.5, "nested": [{"k": 3}, 0, -7, True, None, "4"], "big": 2**53}
    out = from_value(_value(data))
    assert out["n"] == 2 and type(out["n"]) is int
    assert out["f"] == 2.5
    assert out["nested"] == [{"k": 3}, 0, -7, True, None, "4"]
    assert [type(v) for v in out["nested"][1:4]] == [int, int, bool]
    assert out["big"] == 2**53 and type(out["big"]) is float  # beyond what a double holds exactly


def test_struct_and_messages_holding_values() -> None:
    struct = struct_pb2.Struct()
    struct.update({"count": 10, "ratio": 0.25})
    assert from_value(struct) == {"count": 10, "ratio": 0.25}
    assert type(from_value(struct)["count"]) is int


def test_plain_value_leaves_other_things_alone() -> None:
    assert plain_value(1.0) == 1 and type(plain_value(1.0)) is int
    assert plain_value(-0.0) == 0 and type(plain_value(-0.0)) is int
    assert math.isinf(plain_value(math.inf)) and math.isnan(plain_value(math.nan))
    assert plain_value(float(2**60)) == float(2**60) and type(plain_value(float(2**60))) is float
    assert plain_value(("a", 1.0)) == ("a", 1.0)  # only dicts and lists are walked
    assert plain_value("2.0") == "2.0"


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**52), 2**52) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(_json)
def test_round_trip_through_a_value_is_exact(data: Any) -> None:
    assert from_value(_value(data)) == data


@pytest.mark.parametrize("micros", [0, 1, 999_999, 1_000_000, 1_796_508_983_416_005, -1, -1_500_001])
def test_set_timestamp_is_from_microseconds_in_place(micros: int) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromMicroseconds(micros)
    event = execution_pb2.ExecutionEvent()
    assert set_timestamp(event.time, micros) is event.time
    assert event.time == expected


def test_stamp_now_reads_the_clock_to_the_microsecond() -> None:
    before = time.time_ns() // 1000
    stamp = timestamp_pb2.Timestamp()
    stamp_now(stamp)
    after = time.time_ns() // 1000
    assert before <= stamp.ToMicroseconds() <= after
    assert stamp.nanos % 1000 == 0


# ------------------------------------------------------------------ set_json_value, set_plain_json_value
_plain_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
_any_data = st.recursive(
    _plain_json | st.tuples(st.integers(), st.text(max_size=3)) | st.builds(object),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4) | st.integers() | st.booleans(), inner, max_size=3)
    ),
    max_leaves=10,
)


def _struct_update_value(plain: Any) -> struct_pb2.Value:
    """What set_json_value built before it set JSON types itself: protobuf's Struct.update."""
    out = struct_pb2.Value()
    if isinstance(plain, dict):
        out.struct_value.SetInParent()
        out.struct_value.update(plain)
    elif isinstance(plain, list):
        out.list_value.SetInParent()
        out.list_value.extend(plain)
    else:
        set_json_value(out, plain)
    return out


@given(_plain_json)
def test_set_json_value_builds_what_struct_update_builds(plain: Any) -> None:
    out = struct_pb2.Value()
    set_json_value(out, plain)
    assert out.SerializeToString(deterministic=True) == _struct_update_value(plain).SerializeToString(
        deterministic=True
    )


def test_set_json_value_sets_tuples_and_messages_as_struct_update_does() -> None:
    nested = struct_pb2.Struct()
    nested.update({"k": 1})
    for plain in ({"t": (1, "a"), "s": nested, "e": {}, "l": []}, [(), {"x": ()}]):
        out = struct_pb2.Value()
        set_json_value(out, plain)
        assert out == _struct_update_value(plain)


@given(_any_data)
def test_set_plain_json_value_builds_what_the_json_round_trip_builds_or_declines(data: Any) -> None:
    text = json.dumps(data, default=str)
    expected = struct_pb2.Value()
    set_json_value(expected, json.loads(text))
    out = struct_pb2.Value()
    if set_plain_json_value(out, data):
        assert out.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    else:  # something JSON does not hold as it is: a tuple, an object, a key that is not a str, NaN
        assert json.loads(text) != data or _holds_nan_or_infinity(data)


def _holds_nan_or_infinity(data: Any) -> bool:
    if isinstance(data, float):
        return not math.isfinite(data)
    if isinstance(data, dict):
        return any(_holds_nan_or_infinity(v) for v in data.values())
    if isinstance(data, list):
        return any(_holds_nan_or_infinity(v) for v in data)
    return False


def test_set_plain_json_value_declines_what_json_changes() -> None:
    for data in ({1: "a"}, {"t": (1, 2)}, [float("nan")], {"x": [float("inf")]}, object(), {"o": object()}):
        assert not set_plain_json_value(struct_pb2.Value(), data)
    for data in ({"a": [1, 2.5, "x", None, True]}, [], {}, "s", 3, -0.0, None):
        assert set_plain_json_value(struct_pb2.Value(), data)
