"""DSL durations: ISO 8601 strings (``PT1.5S``, ``P1DT2H``) and inline ``{seconds: 1}`` objects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ._errors import ErrorKind, WorkflowError

__all__ = ["parse_duration"]

_ISO: Final = re.compile(
    r"^P(?!$)(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
_ISO_UNITS: Final = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
_INLINE_UNITS: Final = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


def parse_duration(value: Any) -> float:
    """Seconds in a duration (already-evaluated expressions only)."""
    if isinstance(value, bool):
        raise _bad(value)
    if isinstance(value, int | float):
        if value < 0:
            raise _bad(value)
        return float(value)
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if not match:
            raise _bad(value)
        return float(
            sum(float(part) * unit for part, unit in zip(match.groups(), _ISO_UNITS, strict=True) if part)
        )
    if isinstance(value, Mapping) and value and set(value) <= set(_INLINE_UNITS):
        total = 0.0
        for key, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise _bad(value)
            total += float(amount) * _INLINE_UNITS[key]
        return total
    raise _bad(value)


def _bad(value: Any) -> WorkflowError:
    return WorkflowError.of(
        ErrorKind.CONFIGURATION,
        f"{value!r} is not a duration: use ISO 8601 (PT30S) or an object like {{seconds: 30}}",
    )
