"""Page tokens and page sizes of the List calls."""

from __future__ import annotations

import base64

from stigmer.core import InvalidArgument

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "decode_token", "encode_token", "page_size"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000


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
