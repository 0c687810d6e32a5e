"""How values are stored in the tables' columns: time as integer microseconds, data as canonical JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["dumps", "now_us", "set_time", "timestamp"]


def now_us() -> int:
    """Current time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


def timestamp(us: int) -> Timestamp:
    return set_time(Timestamp(), us)


def set_time(ts: Timestamp, us: int) -> Timestamp:
    """Set ``ts`` (a message's own field, e.g. ``event.time``) to ``us`` microseconds; returns it."""
    seconds, micros = divmod(us, 1_000_000)
    ts.seconds = seconds
    ts.nanos = micros * 1000
    return ts


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces), so equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
