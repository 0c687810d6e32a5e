"""How values are stored in the tables' columns: time as integer microseconds, data as canonical JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from stigmer.core import set_timestamp

__all__ = ["dumps", "now_us", "timestamp"]


def now_us() -> int:
    """Current time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


def timestamp(us: int) -> Timestamp:
    return set_timestamp(Timestamp(), us)


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces), so equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
