"""Small conversions shared by the store modules: clocks, timestamps, JSON, page tokens, names."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from stigmer.core import InvalidArgument

__all__ = [
    "SECRET_NAME",
    "check_secret_name",
    "decode_token",
    "dumps",
    "encode_token",
    "now_us",
    "page_size",
    "q",
    "timestamp",
]

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def q(text: str, limit: int = 100) -> str:
    """User text quoted for a one-line error message: 'name', or a repr when it has control characters."""
    short = text if len(text) <= limit else text[:limit] + "..."
    return f"'{short}'" if short.isprintable() and "'" not in short else repr(short)


def now_us() -> int:
    """Current time in integer microseconds since the epoch."""
    return time.time_ns() // 1000


def timestamp(us: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(us)
    return ts


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces), so equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def encode_token(prefix: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{position}".encode()).decode("ascii").rstrip("=")


def decode_token(token: str, prefix: str) -> int:
    """Position encoded in a page token made by ``encode_token``; a bad token is InvalidArgument."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        kind, _, number = text.partition(":")
        if kind == prefix and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument(
        "invalid page_token: pass the next_page_token of the previous response unchanged", ["page_token"]
    )


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(f"page_size must be 0 or more, got {requested}", ["page_size"])
    return min(requested or DEFAULT_PAGE, MAX_PAGE)


def check_secret_name(name: str, field: str = "name") -> str:
    if not SECRET_NAME.fullmatch(name or "") or len(name) > 253:
        raise InvalidArgument(
            f"invalid secret name {name[:80]!r}: use up to 253 letters, digits and underscores, not starting "
            "with a digit (for example GH_TOKEN)",
            [field],
        )
    return name
