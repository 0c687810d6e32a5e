"""Checking names users give, and quoting user text in one-line error messages."""

from __future__ import annotations

import re

from stigmer.core import InvalidArgument

__all__ = ["SECRET_NAME", "check_secret_name", "q"]

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def q(text: str, limit: int = 100) -> str:
    """User text quoted for a one-line error message: 'name', or a repr when it has control characters."""
    short = text if len(text) <= limit else text[:limit] + "..."
    return f"'{short}'" if short.isprintable() and "'" not in short else repr(short)


def check_secret_name(name: str, field: str = "name") -> str:
    if not SECRET_NAME.fullmatch(name or "") or len(name) > 253:
        raise InvalidArgument(
            f"invalid secret name {name[:80]!r}: use up to 253 letters, digits and underscores, not starting "
            "with a digit (for example GH_TOKEN)",
            [field],
        )
    return name
