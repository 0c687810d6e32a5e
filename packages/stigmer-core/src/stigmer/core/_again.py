"""Running an execution's target again: the request of a re-run or a retry, made in one place for
the SDK (``rerun``/``retry``, the CLI's ``execution rerun|retry``) and the server's web console.
The store checks it (same target and version; a retry only of a FAILED or CANCELLED run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2

__all__ = ["again_request"]


def again_request(
    old: execution_pb2.Execution,
    link: Literal["rerun_of", "resumed_from"],
    secrets: Mapping[str, str] | None = None,
) -> svc.CreateExecutionRequest:
    """A new execution of ``old``'s target version with its input, message, env and labels,
    linked to it by ``link`` (``rerun_of``: from the start; ``resumed_from``: from its checkpoint).
    Run-time secrets are not copied (the store deletes them when a run ends): give ``secrets``."""
    spec = execution_pb2.ExecutionSpec()
    spec.CopyFrom(old.spec)
    spec.ClearField("secret_refs")
    spec.resumed_from = spec.rerun_of = ""
    setattr(spec, link, old.metadata.id)
    return svc.CreateExecutionRequest(
        spec=spec, runtime_secrets=dict(secrets or {}), labels=old.metadata.labels
    )
