"""Which RPCs may be retried, and how long to wait between attempts."""

from __future__ import annotations

import random

__all__ = ["IDEMPOTENT", "backoff_delay"]

# Retried on UNAVAILABLE: reads, plus writes whose repetition has the same effect.
# - Apply is an upsert by kind + slug: a repeat finds the resource unchanged.
# - PutArtifact is content-addressed: a repeat stores the same blob under the same key.
# - UpdateExecutionStatus is idempotent by event sequence number: a repeat is ignored.
# Never retried, because a lost reply would make a repeat do something twice or answer
# differently: CreateExecution (a second run), Delete / DeleteSecret (NotFound the second time),
# CancelExecution and SubmitApproval (FailedPrecondition the second time), SetSecret (a write of a
# secret value, sent once so the caller decides whether to send it again).
IDEMPOTENT: frozenset[str] = frozenset(
    {
        "Apply",
        "Get",
        "List",
        "ListVersions",
        "GetExecution",
        "ListExecutions",
        "UpdateExecutionStatus",
        "GetExecutionContext",
        "ListSecrets",
        "PutArtifact",
        "GetArtifact",
    }
)

_BASE = 0.1
_CAP = 2.0


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.1 s, 0.2 s, 0.4 s, ... capped at 2 s."""
    ceiling = min(_CAP, _BASE * (2**attempt))
    return float(ceiling / 2 + random.random() * ceiling / 2)
