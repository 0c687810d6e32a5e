"""Which RPCs may be retried, and how long to wait between attempts."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["IDEMPOTENT", "backoff_delay", "is_retryable", "never_sent", "service_config"]

# Retried on UNAVAILABLE: reads, plus writes whose repetition has the same effect.
# - Apply is an upsert by kind + slug: a repeat finds the resource unchanged.
# - PutArtifact is content-addressed: a repeat stores the same blob under the same key.
# - UpdateExecutionStatus is idempotent by event sequence number: a repeat is ignored. Only when
#   every event carries its sequence number, though: events left at 0 get the next free number,
#   so a repeat would append them twice (see is_retryable).
# Never retried, because a lost reply would make a repeat do something twice or answer
# differently: CreateExecution (a second run), Delete / DeleteSecret (NotFound the second time),
# CancelExecution and SubmitApproval (FailedPrecondition the second time), SetSecret (a write of a
# secret value, sent once so the caller decides whether to send it again), CreateMemory (a second
# memory) and DeleteMemory (NotFound the second time).
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
        "GrantSecret",  # a grant (or revocation) repeated finds it already in place (or gone)
        "RevokeSecret",
        "PutArtifact",
        "GetArtifact",
        "ListMemories",
        "GetMemory",
    }
)


_SERVICE = "stigmer.v1.BackendService"


def service_config(max_attempts: int = 5) -> str:
    """The gRPC service config of a channel to several servers: ``round_robin`` over every server
    that answers, and gRPC's own retry policy for UNAVAILABLE on the calls that are always
    idempotent (a repeat lands on another server). ``UpdateExecutionStatus`` is idempotent only
    when every event carries its sequence number, so it is retried by the client itself
    (:func:`is_retryable`), as are calls that never reached a server (:func:`never_sent`)."""
    import json

    names = [{"service": _SERVICE, "method": m} for m in sorted(IDEMPOTENT - {"UpdateExecutionStatus"})]
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": names,
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return json.dumps(config, separators=(",", ":"))


def is_retryable(method: str, request: Any) -> bool:
    """Whether a call of ``method`` with ``request`` may be sent again after UNAVAILABLE."""
    if method not in IDEMPOTENT:
        return False
    if method == "UpdateExecutionStatus":
        return all(event.sequence > 0 for event in request.events)
    return True


def never_sent(err: Any) -> bool:
    """True when an UNAVAILABLE call failed before reaching any server (no connection could be
    made, e.g. while a restarted server comes back): repeating it is safe for every method."""
    details = (err.details() or "").lower()
    return "failed to connect to all addresses" in details


_BASE = 0.1
_CAP = 2.0


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 0.1 s, 0.2 s, 0.4 s, ... capped at 2 s."""
    ceiling = min(_CAP, _BASE * (2**attempt))
    return float(ceiling / 2 + random.random() * ceiling / 2)
