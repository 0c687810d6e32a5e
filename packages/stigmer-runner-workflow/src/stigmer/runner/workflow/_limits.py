"""The limit error: an RFC 7807 problem naming the limit, the value, and the setting that raises it.

The limits themselves are :class:`stigmer.core.Limits` (settings of the process that runs the
execution). A limit error ends the execution: ``try``/``catch`` does not catch it and it is not
retried.
"""

from __future__ import annotations

from typing import Final

from stigmer.core import LIMIT_SETTINGS, Limits, check_event_limits

from ._errors import WorkflowError

__all__ = ["LIMIT_ERROR_TYPE", "LimitExceeded", "Limits", "check_event", "limit_error", "limit_exceeded"]

#: The ``type`` of every limit error.
LIMIT_ERROR_TYPE: Final = "https://stigmer.ai/errors/limit"

_TITLES: Final = {
    "tasks": "Task limit exceeded",
    "events": "Event limit exceeded",
    "output_bytes": "Output size limit exceeded",
    "event_bytes": "Event size limit exceeded",
    "jq_seconds": "jq time limit exceeded",
    "jq_memory_bytes": "jq memory limit exceeded",
}


class LimitExceeded(WorkflowError):
    """An execution went over one of its :class:`Limits`; ``limit`` is the field's name."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(type=LIMIT_ERROR_TYPE, status=429, title=_TITLES[limit], detail=detail, limit=limit)


def limit_exceeded(limit: str, what: str) -> LimitExceeded:
    """The error for ``limit`` (a :class:`Limits` field): ``what`` says what went over, and the
    detail ends with how to raise it."""
    variable, key = LIMIT_SETTINGS[limit]
    return LimitExceeded(
        limit,
        f"{what}; the runner's operator can raise it with {variable} or limits.{key} in config.yaml",
    )


def limit_error(limit: str, what: str, subject: str) -> WorkflowError:
    """The error for ``limit`` at the task ``subject`` (its path becomes ``instance``), as core's
    :class:`~stigmer.core.EventWriter` and :func:`~stigmer.core.check_event_limits` raise it."""
    return limit_exceeded(limit, what).with_instance(subject or "/")


def check_event(limits: Limits, count: int, size: int, subject: str) -> None:
    """Raise the limit error when recording an event would make ``count`` events, or when its data
    is ``size`` bytes (as JSON), over the limits; ``subject`` (the task path) becomes ``instance``."""
    check_event_limits(limits, count, size, subject, limit_error)
