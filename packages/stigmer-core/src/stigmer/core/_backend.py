"""The ``Backend`` protocol: one async method per ``stigmer.v1.BackendService`` RPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from stigmer.proto.v1 import (
    artifact_pb2,
    execution_pb2,
    memory_pb2,
    resource_pb2,
    secret_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)

__all__ = ["Backend", "Runner"]


@runtime_checkable
class Backend(Protocol):
    """What every Stigmer backend implements (the local store, the cloud client, third parties).

    Every method takes and returns the generated messages of ``stigmer.v1`` and raises only
    ``stigmer.core.StigmerError`` subtypes. A test walks the service descriptor so this
    protocol and the contract cannot drift.
    """

    async def apply(self, request: svc.ApplyRequest) -> svc.ApplyResponse:
        """Create or update a resource by kind + slug (idempotent)."""
        ...

    async def get(self, request: svc.GetRequest) -> resource_pb2.Resource:
        """Read one resource by id or by kind and name."""
        ...

    async def list(self, request: svc.ListRequest) -> svc.ListResponse:
        """List resources of one kind, one page at a time."""
        ...

    async def delete(self, request: svc.DeleteRequest) -> resource_pb2.Resource:
        """Delete one resource; returns it as it was."""
        ...

    async def list_versions(self, request: svc.ListVersionsRequest) -> svc.ListVersionsResponse:
        """A resource's stored versions, newest first."""
        ...

    async def create_execution(self, request: svc.CreateExecutionRequest) -> execution_pb2.Execution:
        """Create an execution in phase PENDING."""
        ...

    async def get_execution(self, request: svc.GetExecutionRequest) -> execution_pb2.Execution:
        """Read one execution."""
        ...

    async def list_executions(self, request: svc.ListExecutionsRequest) -> svc.ListExecutionsResponse:
        """List executions, newest first."""
        ...

    async def update_execution_status(
        self, request: svc.UpdateExecutionStatusRequest
    ) -> execution_pb2.Execution:
        """Append events and update status; idempotent by event sequence number."""
        ...

    def watch_execution(
        self, request: svc.WatchExecutionRequest
    ) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        """Stream events after a sequence number until the execution reaches a terminal phase."""
        ...

    async def cancel_execution(self, request: svc.CancelExecutionRequest) -> execution_pb2.Execution:
        """Cancel an execution that has not finished."""
        ...

    async def submit_approval(self, request: svc.SubmitApprovalRequest) -> execution_pb2.Execution:
        """Approve or reject the pending action of an execution."""
        ...

    async def get_execution_context(self, request: svc.GetExecutionContextRequest) -> svc.ExecutionContext:
        """Decrypted variables and secrets of a running execution (runners only)."""
        ...

    async def set_secret(self, request: svc.SetSecretRequest) -> secret_pb2.SecretMetadata:
        """Encrypt and store a secret value."""
        ...

    async def delete_secret(self, request: svc.DeleteSecretRequest) -> secret_pb2.SecretMetadata:
        """Delete a secret."""
        ...

    async def list_secrets(self, request: svc.ListSecretsRequest) -> svc.ListSecretsResponse:
        """Secret names and metadata, never values."""
        ...

    async def grant_secret(self, request: svc.GrantSecretRequest) -> secret_pb2.SecretMetadata:
        """Let a token name or a role author definitions that use a secret (owner or admin only)."""
        ...

    async def revoke_secret(self, request: svc.RevokeSecretRequest) -> secret_pb2.SecretMetadata:
        """Take back a grant of a secret (owner or admin only)."""
        ...

    async def put_artifact(self, request: svc.PutArtifactRequest) -> artifact_pb2.ArtifactMetadata:
        """Store a content-addressed blob."""
        ...

    async def get_artifact(self, request: svc.GetArtifactRequest) -> svc.GetArtifactResponse:
        """Read a content-addressed blob."""
        ...

    async def create_memory(self, request: svc.CreateMemoryRequest) -> memory_pb2.Memory:
        """Store a fact an agent learnt (a runner: only for its execution's agent)."""
        ...

    async def list_memories(self, request: svc.ListMemoriesRequest) -> svc.ListMemoriesResponse:
        """An agent's memories, newest first, or the most relevant to ``query`` first."""
        ...

    async def get_memory(self, request: svc.GetMemoryRequest) -> memory_pb2.Memory:
        """One memory by id."""
        ...

    async def delete_memory(self, request: svc.DeleteMemoryRequest) -> memory_pb2.Memory:
        """Forget a memory."""
        ...

    async def publish_event(self, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
        """Deliver a CloudEvent to the waiting executions whose workflows ``listen`` for one like
        it, and create a run (not started: the caller dispatches it) of every workflow whose
        ``schedule.on`` matches it."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class Runner(Protocol):
    """What the ``stigmer.runners`` plugins (``agent``, ``workflow``) implement.

    ``execute`` drives one execution to a terminal phase (or to WAITING_APPROVAL) through the
    given backend, reporting progress with ``update_execution_status``, and returns the
    execution as it stands at the end.
    """

    async def execute(self, backend: Backend, execution_id: str) -> execution_pb2.Execution:
        """Run (or resume) the execution with this id."""
        ...

    async def prepare(self) -> None:
        """Load ahead what a first ``execute`` needs (imports, compiled schemas) without touching
        any backend, so a process started before its work arrives runs it at once."""
        ...
