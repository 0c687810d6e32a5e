"""Scrub secret values out of strings and nested data before they are stored, logged or printed."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Redactor", "default_redactor"]

MASK = "***"
_MIN_LEN = 3  # shorter values would mask ordinary text; they are still never logged by reference


class Redactor:
    """A set of secret values; ``scrub`` replaces every occurrence of any of them with ``***``."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.register(*values)

    def register(self, *values: str) -> None:
        """Add values to mask. Empty and very short values are ignored."""
        with self._lock:
            added = {v for v in values if isinstance(v, str) and len(v) >= _MIN_LEN} - self._values
            if not added:
                return
            self._values |= added
            # Longest first so a value containing another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def scrub(self, value: Any) -> Any:
        """Return ``value`` with every registered secret masked; dicts, lists and tuples are walked."""
        pattern = self._pattern
        if pattern is None:
            return value
        return _scrub(value, pattern)


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    if isinstance(value, tuple):
        return tuple(_scrub(v, pattern) for v in value)
    return value


_default = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor that runners register resolved secrets with."""
    return _default
