"""An execution's target as of the version the execution pinned at creation: what a runner runs
(the Lite workflow runner, its Temporal load activity) and what the server sends with a Temporal
start, read the same way everywhere."""

from __future__ import annotations

from stigmer.core._backend import Backend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, resource_pb2

__all__ = ["pinned_target"]


async def pinned_target(backend: Backend, execution: execution_pb2.Execution) -> resource_pb2.Resource:
    """The execution's target at ``spec.target_version`` (the latest when none is pinned, or when
    the pinned version is no longer listed)."""
    ref, pinned = execution.spec.target, execution.spec.target_version
    resource = await backend.get(svc.GetRequest(ref=ref))
    current = resource.WhichOneof("kind")
    if pinned and current is not None and getattr(resource, current).metadata.version != pinned:
        history = await backend.list_versions(svc.ListVersionsRequest(ref=ref))
        for entry in history.versions:
            if entry.version == pinned:
                return entry.resource
    return resource
