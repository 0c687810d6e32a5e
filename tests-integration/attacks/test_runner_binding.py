"""Attacks with a ``runner`` token: harvesting secrets through executions it does not hold.

A runner gets an execution's context (its decrypted secrets) only for an execution the server
offered to runners and that it holds (a lease taken by its first call about it), only while it
runs; it starts child executions only under an execution it holds; and a child never receives
more secrets than its own target's author was granted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from stigmer.core import PermissionDenied
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server import TokenStore

from .conftest import SharedServer, find_leaks, start_shared_server
from .test_secret_grants import EXFIL_WORKFLOW, SECRET, resource

P = execution_pb2


def spec(name: str, parent: str = "") -> P.ExecutionSpec:
    return P.ExecutionSpec(
        target=meta_pb2.ResourceRef(kind="Workflow", name=name), parent_execution_id=parent
    )


async def setup(server: SharedServer) -> None:
    admin = server.admin()
    await admin.set_secret(svc.SetSecretRequest(name="OPENAI_KEY", value=SECRET))
    await admin.apply(resource(EXFIL_WORKFLOW.format(name="report", secret="OPENAI_KEY")))


async def test_a_runner_cannot_start_its_own_execution_to_read_secrets(shared_server: SharedServer) -> None:
    """The reported attack: create with dispatch_by_caller, mark RUNNING, ask for the context."""
    await setup(shared_server)
    runner = shared_server.runner()
    with pytest.raises(PermissionDenied, match="only as the child of an execution it runs"):
        await runner.create_execution(
            svc.CreateExecutionRequest(spec=spec("report"), dispatch_by_caller=True)
        )
    # A user may not ask for dispatch_by_caller either (to leave a run for a runner to claim).
    with pytest.raises(PermissionDenied, match="dispatch_by_caller"):
        await shared_server.user().create_execution(
            svc.CreateExecutionRequest(spec=spec("report"), dispatch_by_caller=True)
        )


async def test_a_runner_cannot_claim_what_the_server_runs_itself(shared_server: SharedServer) -> None:
    await setup(shared_server)
    runner = shared_server.runner()
    created = await shared_server.user().create_execution(svc.CreateExecutionRequest(spec=spec("report")))
    eid = created.metadata.id
    with pytest.raises(PermissionDenied, match="not offered to runner workers"):
        await runner.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=P.PHASE_RUNNING)
        )
    with pytest.raises(PermissionDenied, match="not offered to runner workers"):
        await runner.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    with pytest.raises(PermissionDenied, match="not offered to runner workers"):
        await runner.create_execution(svc.CreateExecutionRequest(spec=spec("report", parent=eid)))
    await asyncio.to_thread(shared_server.process.stop)
    assert find_leaks(SECRET, paths=shared_server.recorded()) == []


async def test_leases_between_runner_workers(tmp_path: Path) -> None:
    """On a server whose executions are run by runner workers: the first runner to call about an
    execution holds it; another runner is refused until the lease goes stale."""
    server = await start_shared_server(tmp_path / "home", "--no-run-executions")
    try:
        await setup(server)
        store = TokenStore(database_url=server.process.database_url)
        other = server.client(store.create("runner", "worker-2").token)
        store.close()
        runner = server.runner()
        eid = (
            await server.user().create_execution(svc.CreateExecutionRequest(spec=spec("report")))
        ).metadata.id
        await runner.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=P.PHASE_RUNNING)
        )
        context = await runner.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
        assert context.secrets["OPENAI_KEY"] == SECRET  # the holder gets what the run needs
        with pytest.raises(PermissionDenied, match="held by another runner"):
            await other.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
        with pytest.raises(PermissionDenied, match="held by another runner"):
            await other.update_execution_status(
                svc.UpdateExecutionStatusRequest(execution_id=eid, phase=P.PHASE_FAILED)
            )
        # The holder starts a child under its execution; the child's own target decides its secrets.
        await server.user().apply(
            resource(
                EXFIL_WORKFLOW.format(name="plain", secret="X")
                .replace("  use: {secrets: [X]}\n", "")
                .replace("$secrets.X", '"x"')
            )
        )
        child = await runner.create_execution(
            svc.CreateExecutionRequest(spec=spec("plain", parent=eid), dispatch_by_caller=True)
        )
        await runner.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=child.metadata.id, phase=P.PHASE_RUNNING)
        )
        child_context = await runner.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=child.metadata.id)
        )
        assert dict(child_context.secrets) == {}
        # A child whose target the user wrote with the admin's secret cannot exist: the apply fails.
        # A runner cannot start children under someone else's execution.
        with pytest.raises(PermissionDenied, match="held by another runner"):
            await other.create_execution(svc.CreateExecutionRequest(spec=spec("plain", parent=eid)))
        # After the run ends the context is gone for everyone.
        await runner.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=P.PHASE_SUCCEEDED)
        )
        with pytest.raises(Exception, match="only available while it is RUNNING"):
            await runner.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    finally:
        await asyncio.to_thread(server.process.stop)
