"""``CloudBackend``: the ``stigmer.core.Backend`` protocol over grpc.aio.

grpc is imported on the first call, not on import, so a CLI that never talks to a server does
not pay for it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from stigmer.backend.cloud._endpoint import Endpoint, channel_target, parse_endpoint
from stigmer.backend.cloud._retry import backoff_delay, is_retryable, never_sent, service_config
from stigmer.core import InvalidArgument, Settings, StigmerError, Unavailable, error_from_grpc_code
from stigmer.proto.v1 import artifact_pb2, execution_pb2, memory_pb2, resource_pb2, secret_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = ["CloudBackend"]

_FIELD_PATHS_TRAILER = "stigmer-field-paths-bin"
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    # Keepalive: notice a dead connection (e.g. behind a NAT) within ~40 s, even when idle.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a server restart.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


class CloudBackend:
    """A client of ``stigmer.v1.BackendService`` (``stigmer server`` or Stigmer Cloud).

    ``endpoint`` is ``grpc://host:port`` or ``grpcs://host:port``; several servers (sharing one
    database) as a list, ``grpc://a:7234,grpc://b:7234``, or as a DNS name with a record per
    server, ``dns:///name:7234`` (``grpcs+dns://name:7234`` with TLS): calls are then balanced over
    the servers that answer (gRPC's ``round_robin``), and idempotent calls that meet an unavailable
    server are retried on another (gRPC's retry policy, see ``service_config``). Without a ``token``, a client of
    a loopback server reads ``$STIGMER_HOME/tokens/admin`` (written by the server), so the local
    CLI needs no login — only when ``tokens/admin.endpoint`` says the server listens at this very
    endpoint, so no other process on another loopback port ever receives the admin token. ``tls_ca`` is a PEM bundle to trust instead of the system roots (default:
    ``$STIGMER_TLS_CA`` when set).
    Every call has a deadline of ``timeout`` seconds; idempotent calls are retried on UNAVAILABLE
    with exponential backoff (``retries`` times); ``watch_execution`` reconnects after a broken
    stream and resumes after the last event it delivered.
    """

    def __init__(
        self,
        endpoint: str,
        token: str | None = None,
        *,
        home: Path | None = None,
        tls_ca: Path | None = None,
        timeout: float = 30.0,
        retries: int = 5,
    ) -> None:
        self.endpoint: Endpoint = parse_endpoint(endpoint)
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be positive, got {timeout}", ["timeout"])
        if tls_ca is not None and not self.endpoint.tls:
            raise InvalidArgument(
                f"a CA bundle was given but {self.endpoint} is plaintext; use grpcs://", ["tls_ca"]
            )
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self._token = token
        self._token_from_file = False
        self._home = Path(home) if home is not None else None
        if tls_ca is None and self.endpoint.tls and os.environ.get("STIGMER_TLS_CA"):
            tls_ca = Path(os.environ["STIGMER_TLS_CA"])
        self._tls_ca = Path(tls_ca) if tls_ca is not None else None
        self._grpc: Any = None
        self._channel: Any = None
        self._stub: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"CloudBackend({str(self.endpoint)!r})"

    # -- channel --------------------------------------------------------------------------------

    def _admin_token_file(self) -> Path:
        home = self._home if self._home is not None else Settings.load().home
        return home / "tokens" / "admin"

    def _resolve_token(self) -> str | None:
        if self._token is not None:
            return self._token
        if not self.endpoint.is_loopback:
            return None
        token_file = self._admin_token_file()
        try:
            # The server records the address it wrote the token for: never send it elsewhere.
            written_for = token_file.with_name("admin.endpoint").read_text(encoding="utf-8").strip()
            if not self.endpoint.served_by(written_for):
                return None
            text = token_file.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        self._token_from_file = True
        return text or None

    def _refresh_token(self) -> None:
        token = self._resolve_token()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()

    def _ensure(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._stub is not None and self._loop is loop:
            return self._stub
        import grpc
        from stigmer.proto.v1 import backend_service_pb2_grpc

        self._grpc = grpc
        # A channel belongs to the event loop it was made on; a new loop gets a new channel.
        self._refresh_token()
        target, options = self.endpoint.target, _CHANNEL_OPTIONS
        if self.endpoint.several:
            target = channel_target(self.endpoint)
            options = (*options, ("grpc.service_config", service_config()), ("grpc.enable_retries", 1))
            if self.endpoint.more and self.endpoint.tls:
                # Each server's certificate is checked against the first server's name (a list's
                # target holds addresses): give every server a certificate for that name.
                options = (
                    *options,
                    ("grpc.ssl_target_name_override", self.endpoint.host),
                    ("grpc.default_authority", self.endpoint.host),
                )
        if self.endpoint.tls:
            try:
                ca = self._tls_ca.read_bytes() if self._tls_ca is not None else None
            except OSError as exc:
                raise InvalidArgument(
                    f"cannot read CA bundle {self._tls_ca}: {exc.strerror}", ["tls_ca"]
                ) from None
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        self._channel = channel
        self._stub = backend_service_pb2_grpc.BackendServiceStub(channel)
        self._loop = loop
        return self._stub

    async def close(self) -> None:
        """Close the channel; the next call opens a new one."""
        channel, loop = self._channel, self._loop
        self._channel = self._stub = self._loop = None
        if channel is not None and loop is asyncio.get_running_loop():
            await channel.close()

    # -- errors ---------------------------------------------------------------------------------

    def _error(self, err: Any) -> StigmerError:
        code = err.code().name
        details = err.details() or ""
        if code == "UNAVAILABLE":
            where = "any Stigmer server of" if self.endpoint.several else "the Stigmer server at"
            message = (
                f"cannot reach {where} {self.endpoint} ({details}); "
                "check that `stigmer server` is running there and the endpoint is right"
            )
        elif code == "RESOURCE_EXHAUSTED" and "larger than max" in details:
            return InvalidArgument(
                f"the message is larger than the {_MAX_MESSAGE_BYTES // (1024 * 1024)} MiB limit of a "
                f"Stigmer call ({details}); store big content as several artifacts"
            )
        elif code == "DEADLINE_EXCEEDED":
            message = f"the Stigmer server at {self.endpoint} did not answer within {self.timeout:g} s"
        else:
            message = details or f"the server answered {code}"
        exc = error_from_grpc_code(code, message)
        if isinstance(exc, InvalidArgument):
            exc.field_paths = _field_paths(err)
        return exc

    # -- calls ----------------------------------------------------------------------------------

    async def _unary(self, name: str, request: Any) -> Any:
        stub = self._ensure()
        method = getattr(stub, name)
        grpc = self._grpc
        retry = is_retryable(name, request)
        attempt = 0
        reread_token = self._token_from_file
        while True:
            try:
                return await method(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if (
                    code == grpc.StatusCode.UNAVAILABLE
                    and (retry or never_sent(err))
                    and attempt < self.retries
                ):
                    await asyncio.sleep(backoff_delay(attempt))
                    attempt += 1
                    continue
                if code == grpc.StatusCode.UNAUTHENTICATED and reread_token:
                    # The server may have written a new admin token since we read the file.
                    reread_token = False
                    self._refresh_token()
                    continue
                raise self._error(err) from None

    async def apply(self, request: svc.ApplyRequest) -> svc.ApplyResponse:
        result: svc.ApplyResponse = await self._unary("Apply", request)
        return result

    async def get(self, request: svc.GetRequest) -> resource_pb2.Resource:
        result: resource_pb2.Resource = await self._unary("Get", request)
        return result

    async def list(self, request: svc.ListRequest) -> svc.ListResponse:
        result: svc.ListResponse = await self._unary("List", request)
        return result

    async def delete(self, request: svc.DeleteRequest) -> resource_pb2.Resource:
        result: resource_pb2.Resource = await self._unary("Delete", request)
        return result

    async def list_versions(self, request: svc.ListVersionsRequest) -> svc.ListVersionsResponse:
        result: svc.ListVersionsResponse = await self._unary("ListVersions", request)
        return result

    async def create_execution(self, request: svc.CreateExecutionRequest) -> execution_pb2.Execution:
        result: execution_pb2.Execution = await self._unary("CreateExecution", request)
        return result

    async def get_execution(self, request: svc.GetExecutionRequest) -> execution_pb2.Execution:
        result: execution_pb2.Execution = await self._unary("GetExecution", request)
        return result

    async def list_executions(self, request: svc.ListExecutionsRequest) -> svc.ListExecutionsResponse:
        result: svc.ListExecutionsResponse = await self._unary("ListExecutions", request)
        return result

    async def update_execution_status(
        self, request: svc.UpdateExecutionStatusRequest
    ) -> execution_pb2.Execution:
        result: execution_pb2.Execution = await self._unary("UpdateExecutionStatus", request)
        return result

    async def cancel_execution(self, request: svc.CancelExecutionRequest) -> execution_pb2.Execution:
        result: execution_pb2.Execution = await self._unary("CancelExecution", request)
        return result

    async def submit_approval(self, request: svc.SubmitApprovalRequest) -> execution_pb2.Execution:
        result: execution_pb2.Execution = await self._unary("SubmitApproval", request)
        return result

    async def get_execution_context(self, request: svc.GetExecutionContextRequest) -> svc.ExecutionContext:
        result: svc.ExecutionContext = await self._unary("GetExecutionContext", request)
        return result

    async def set_secret(self, request: svc.SetSecretRequest) -> secret_pb2.SecretMetadata:
        result: secret_pb2.SecretMetadata = await self._unary("SetSecret", request)
        return result

    async def delete_secret(self, request: svc.DeleteSecretRequest) -> secret_pb2.SecretMetadata:
        result: secret_pb2.SecretMetadata = await self._unary("DeleteSecret", request)
        return result

    async def list_secrets(self, request: svc.ListSecretsRequest) -> svc.ListSecretsResponse:
        result: svc.ListSecretsResponse = await self._unary("ListSecrets", request)
        return result

    async def grant_secret(self, request: svc.GrantSecretRequest) -> secret_pb2.SecretMetadata:
        result: secret_pb2.SecretMetadata = await self._unary("GrantSecret", request)
        return result

    async def revoke_secret(self, request: svc.RevokeSecretRequest) -> secret_pb2.SecretMetadata:
        result: secret_pb2.SecretMetadata = await self._unary("RevokeSecret", request)
        return result

    async def put_artifact(self, request: svc.PutArtifactRequest) -> artifact_pb2.ArtifactMetadata:
        result: artifact_pb2.ArtifactMetadata = await self._unary("PutArtifact", request)
        return result

    async def get_artifact(self, request: svc.GetArtifactRequest) -> svc.GetArtifactResponse:
        result: svc.GetArtifactResponse = await self._unary("GetArtifact", request)
        return result

    async def create_memory(self, request: svc.CreateMemoryRequest) -> memory_pb2.Memory:
        result: memory_pb2.Memory = await self._unary("CreateMemory", request)
        return result

    async def list_memories(self, request: svc.ListMemoriesRequest) -> svc.ListMemoriesResponse:
        result: svc.ListMemoriesResponse = await self._unary("ListMemories", request)
        return result

    async def get_memory(self, request: svc.GetMemoryRequest) -> memory_pb2.Memory:
        result: memory_pb2.Memory = await self._unary("GetMemory", request)
        return result

    async def delete_memory(self, request: svc.DeleteMemoryRequest) -> memory_pb2.Memory:
        result: memory_pb2.Memory = await self._unary("DeleteMemory", request)
        return result

    async def publish_event(self, request: svc.PublishEventRequest) -> svc.PublishEventResponse:
        result: svc.PublishEventResponse = await self._unary("PublishEvent", request)
        return result

    async def watch_execution(
        self, request: svc.WatchExecutionRequest
    ) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        """Stream events after ``request.after_sequence`` until the execution ends.

        A broken stream (server restart, network drop) is reopened after the last sequence number
        delivered, so no event is lost or repeated; reconnecting gives up after ``timeout`` seconds
        without a working stream.
        """
        last = request.after_sequence
        attempt = 0
        failing_since: float | None = None
        reread_token = True
        while True:
            stub = self._ensure()
            grpc = self._grpc
            call = stub.WatchExecution(
                svc.WatchExecutionRequest(
                    execution_id=request.execution_id,
                    after_sequence=last,
                    final_execution=request.final_execution,
                ),
                metadata=self._metadata,
            )
            try:
                async for event in call:
                    attempt, failing_since = 0, None
                    if event.sequence:
                        if event.sequence <= last:
                            continue
                        last = event.sequence
                    yield event
                return
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and self._token_from_file and reread_token:
                    reread_token = False
                    self._refresh_token()
                    continue
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(err) from None
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > self.timeout:
                    raise Unavailable(
                        f"lost the watch of {request.execution_id} at sequence {last}: cannot reach the "
                        f"Stigmer server at {self.endpoint} for {self.timeout:g} s ({err.details()}); "
                        f"run the watch again to resume"
                    ) from None
                await asyncio.sleep(backoff_delay(attempt))
                attempt += 1
            finally:
                call.cancel()


def _field_paths(err: Any) -> tuple[str, ...]:
    try:
        for key, value in err.trailing_metadata() or ():
            if key == _FIELD_PATHS_TRAILER:
                raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
                paths = json.loads(raw.decode("utf-8"))
                if isinstance(paths, list):
                    return tuple(str(p) for p in paths)
    except (ValueError, TypeError):
        return ()
    return ()
