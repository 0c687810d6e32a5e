"""Secret owners and grants, authors and runner leases, checked by the store for a server's callers.

Calls run as a principal with ``acting_as`` (what ``stigmer server`` does per call); without one
(Lite mode) nothing is checked, which the conformance suite covers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from stigmer.backend.local import LocalBackend
from stigmer.core import PermissionDenied, Principal, acting_as, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2, resource_pb2, secret_pb2

ADMIN = Principal("tok_a", "root", "admin")
ALICE = Principal("tok_b", "alice", "user")
BOB = Principal("tok_c", "bob", "user")
RUNNER = Principal("tok_d", "worker", "runner")
RUNNER2 = Principal("tok_e", "worker-2", "runner")

WORKFLOW = """
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  document: {{dsl: 1.0.0, namespace: t, name: {name}, version: 1.0.0}}
  {use}
  do:
    - a: {{set: {{x: 1}}}}
"""


def workflow(name: str, *secrets: str) -> svc.ApplyRequest:
    use = f"use: {{secrets: [{', '.join(secrets)}]}}" if secrets else ""
    [loaded] = parse_manifest(WORKFLOW.format(name=name, use=use), "t.yaml")
    assert isinstance(loaded.resource, resource_pb2.Resource)
    return svc.ApplyRequest(resource=loaded.resource)


def run_of(name: str, parent: str = "", by_caller: bool = False) -> svc.CreateExecutionRequest:
    return svc.CreateExecutionRequest(
        spec=ex.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Workflow", name=name), parent_execution_id=parent
        ),
        dispatch_by_caller=by_caller,
    )


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    with acting_as(ADMIN):
        await backend.set_secret(svc.SetSecretRequest(name="KEY", value="admin-value-123"))
    yield backend
    await backend.close()


async def test_declaring_a_secret_needs_a_grant_and_authors_are_recorded(store: LocalBackend) -> None:
    with (
        acting_as(ALICE),
        pytest.raises(PermissionDenied, match="KEY, which is not granted to token 'alice'"),
    ):
        await store.apply(workflow("wf", "KEY"))
    with acting_as(ADMIN):
        await store.grant_secret(
            svc.GrantSecretRequest(name="KEY", grant=secret_pb2.SecretGrant(token_name="alice"))
        )
    with acting_as(ALICE):
        applied = await store.apply(workflow("wf", "KEY"))
        assert applied.resource.workflow.metadata.author == "alice"
        run = await store.create_execution(run_of("wf"))
        assert list(run.spec.secret_refs) == ["KEY"]
    # Bob may run alice's definition (its author holds the grant), not rewrite it to use the secret.
    with acting_as(BOB):
        await store.create_execution(run_of("wf"))
        with pytest.raises(PermissionDenied):
            await store.apply(workflow("wf", "KEY", "OTHER"))
    with acting_as(ADMIN):
        await store.revoke_secret(
            svc.RevokeSecretRequest(name="KEY", grant=secret_pb2.SecretGrant(token_name="alice"))
        )
    with acting_as(BOB), pytest.raises(PermissionDenied, match="its author 'alice'"):
        await store.create_execution(run_of("wf"))
    # Lite mode (no principal) checks nothing and records no author.
    applied = await store.apply(workflow("lite", "KEY"))
    assert applied.resource.workflow.metadata.author == ""
    # A version without an author is checked against whoever starts the run.
    with acting_as(ALICE), pytest.raises(PermissionDenied, match="token 'alice'"):
        await store.create_execution(run_of("lite"))


async def test_secrets_not_yet_stored_may_be_declared_but_are_checked_at_run_time(
    store: LocalBackend,
) -> None:
    with acting_as(ALICE):
        await store.apply(workflow("later", "LATER"))
    with acting_as(ADMIN):
        await store.set_secret(svc.SetSecretRequest(name="LATER", value="set-after-apply"))
    with acting_as(ALICE), pytest.raises(PermissionDenied, match="LATER"):
        await store.create_execution(run_of("later"))


async def test_owners(store: LocalBackend) -> None:
    with acting_as(ALICE):
        meta = await store.set_secret(svc.SetSecretRequest(name="MINE", value="alice-value-1"))
        assert meta.owner == "alice"
        await store.grant_secret(
            svc.GrantSecretRequest(name="MINE", grant=secret_pb2.SecretGrant(role="user"))
        )
    with acting_as(BOB):
        await store.apply(workflow("bobs", "MINE"))  # granted to every user
        with pytest.raises(PermissionDenied, match="belongs to token 'alice'"):
            await store.set_secret(svc.SetSecretRequest(name="MINE", value="bob"))
        with pytest.raises(PermissionDenied, match="belongs to token 'alice'"):
            await store.revoke_secret(
                svc.RevokeSecretRequest(name="MINE", grant=secret_pb2.SecretGrant(role="user"))
            )
        with pytest.raises(PermissionDenied, match="belongs to the admins"):
            await store.delete_secret(svc.DeleteSecretRequest(name="KEY"))
    with acting_as(ADMIN):
        listed = await store.list_secrets(svc.ListSecretsRequest())
    assert [(m.name, m.owner, [g.role for g in m.grants]) for m in listed.secrets] == [
        ("KEY", "", []),
        ("MINE", "alice", ["user"]),
    ]


async def test_runner_leases(store: LocalBackend, tmp_path: Path) -> None:
    with acting_as(ADMIN):
        await store.apply(workflow("wf", "KEY"))
    eid = (await store.create_execution(run_of("wf"))).metadata.id  # offered to runners (the default)
    with acting_as(RUNNER):
        with pytest.raises(PermissionDenied, match="only as the child"):
            await store.create_execution(run_of("wf", by_caller=True))
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=ex.PHASE_RUNNING)
        )
        ctx = await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
        assert dict(ctx.secrets) == {"KEY": "admin-value-123"}
    with acting_as(RUNNER2), pytest.raises(PermissionDenied, match="held by another runner"):
        await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    # A lease without word from its holder for LEASE_SECONDS goes stale; then another runner takes it.
    raw = sqlite3.connect(tmp_path / "stigmer.db")
    raw.execute("UPDATE execution_leases SET renewed_at = 0 WHERE execution_id = ?", (eid,))
    raw.commit()
    raw.close()
    with acting_as(RUNNER2):
        await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    with acting_as(RUNNER), pytest.raises(PermissionDenied, match="held by another runner"):
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=ex.PHASE_FAILED)
        )


async def test_a_run_token_reaches_only_its_tree(store: LocalBackend) -> None:
    store.offer_to_runners = False  # the server runs executions itself
    with acting_as(ADMIN):
        await store.apply(workflow("wf"))
    root = (await store.create_execution(run_of("wf"))).metadata.id
    other = (await store.create_execution(run_of("wf"))).metadata.id
    scoped = Principal("run_x", "run", "runner", execution_id=root)
    with acting_as(RUNNER), pytest.raises(PermissionDenied, match="not offered to runner workers"):
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=root, phase=ex.PHASE_RUNNING)
        )
    with acting_as(scoped):
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=root, phase=ex.PHASE_RUNNING)
        )
        child = (await store.create_execution(run_of("wf", parent=root))).metadata.id
        await store.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=child, phase=ex.PHASE_RUNNING)
        )
        await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=child))
        with pytest.raises(PermissionDenied, match="reaches only its own execution"):
            await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=other))
        with pytest.raises(PermissionDenied, match="reaches only its own execution"):
            await store.create_execution(run_of("wf", parent=other))
        started = (await store.create_execution(run_of("wf", parent=root, by_caller=True))).metadata.id
    # A child the run starts itself is still never offered to runner tokens.
    with acting_as(RUNNER), pytest.raises(PermissionDenied, match="not offered to runner workers"):
        await store.get_execution_context(svc.GetExecutionContextRequest(execution_id=started))
