"""Conformance: the secret store, just-in-time execution context, and that no other RPC leaks a value."""

from __future__ import annotations

import asyncio
import secrets as _random

import pytest
from stigmer.conformance._builders import (
    agent,
    apply,
    environment,
    expect_error,
    mcp_server,
    new_execution,
    set_phase,
    unique,
    unique_secret,
    workflow,
)
from stigmer.conformance._recording import RecordingBackend
from stigmer.core import Backend, FailedPrecondition, InvalidArgument, NotFound
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex
from stigmer.proto.v1 import meta_pb2, secret_pb2

__all__ = ["TestExecutionContext", "TestNoSecretLeaks", "TestSecretStore"]

P = ex.Phase


async def _set(backend: Backend, name: str, value: str, description: str = "") -> None:
    await backend.set_secret(svc.SetSecretRequest(name=name, value=value, description=description))


@pytest.mark.asyncio
class TestSecretStore:
    async def test_set_list_delete(self, backend: Backend) -> None:
        prefix = unique_secret("STORE")
        a, b = f"{prefix}_A", f"{prefix}_B"
        value = "v-" + _random.token_hex(8)
        meta = await backend.set_secret(svc.SetSecretRequest(name=b, value=value, description="for b"))
        assert (meta.name, meta.version, meta.description) == (b, 1, "for b")
        assert value not in str(meta)
        await _set(backend, a, "x" * 1024)
        meta = await backend.set_secret(svc.SetSecretRequest(name=b, value=value + "2"))
        assert meta.version == 2 and meta.updated_at.ToMicroseconds() >= meta.created_at.ToMicroseconds()
        listed = await backend.list_secrets(svc.ListSecretsRequest(prefix=prefix))
        assert [s.name for s in listed.secrets] == [a, b]
        assert value not in str(listed) and value.encode() not in listed.SerializeToString()
        deleted = await backend.delete_secret(svc.DeleteSecretRequest(name=a))
        assert deleted.name == a
        listed = await backend.list_secrets(svc.ListSecretsRequest(prefix=prefix))
        assert [s.name for s in listed.secrets] == [b]
        await expect_error(NotFound, backend.delete_secret(svc.DeleteSecretRequest(name=a)), a)

    async def test_grant_list_revoke(self, backend: Backend) -> None:
        name = unique_secret("GRANTED")
        await _set(backend, name, "v-" + _random.token_hex(8))
        to_alice = secret_pb2.SecretGrant(token_name="alice")
        to_users = secret_pb2.SecretGrant(role="user")
        await backend.grant_secret(svc.GrantSecretRequest(name=name, grant=to_alice))
        meta = await backend.grant_secret(svc.GrantSecretRequest(name=name, grant=to_users))
        assert [(g.token_name, g.role) for g in meta.grants] == [("", "user"), ("alice", "")]
        again = await backend.grant_secret(svc.GrantSecretRequest(name=name, grant=to_alice))
        assert len(again.grants) == 2  # idempotent
        listed = await backend.list_secrets(svc.ListSecretsRequest(prefix=name))
        assert [len(s.grants) for s in listed.secrets] == [2]
        meta = await backend.revoke_secret(svc.RevokeSecretRequest(name=name, grant=to_users))
        assert [(g.token_name, g.role) for g in meta.grants] == [("alice", "")]
        meta = await backend.revoke_secret(svc.RevokeSecretRequest(name=name, grant=to_users))
        assert len(meta.grants) == 1  # idempotent
        await backend.delete_secret(svc.DeleteSecretRequest(name=name))
        await _set(backend, name, "new")
        fresh = await backend.list_secrets(svc.ListSecretsRequest(prefix=name))
        assert [len(s.grants) for s in fresh.secrets] == [0]  # a new secret of the name starts afresh

    async def test_bad_grants_are_refused(self, backend: Backend) -> None:
        name = unique_secret("GRANTBAD")
        await expect_error(
            NotFound,
            backend.grant_secret(
                svc.GrantSecretRequest(name=name, grant=secret_pb2.SecretGrant(token_name="alice"))
            ),
            name,
        )
        await _set(backend, name, "value")
        for bad in (
            secret_pb2.SecretGrant(),
            secret_pb2.SecretGrant(token_name="alice", role="user"),
            secret_pb2.SecretGrant(role="superuser"),
        ):
            await expect_error(
                InvalidArgument, backend.grant_secret(svc.GrantSecretRequest(name=name, grant=bad))
            )

    @pytest.mark.parametrize("name", ["", "1ABC", "A-B", "A B", "é", "A.B", "A$"])
    async def test_names_are_validated(self, backend: Backend, name: str) -> None:
        await expect_error(InvalidArgument, _set(backend, name, "value"))

    @pytest.mark.parametrize("name", ["A", "_X", "gh_token", "GH_TOKEN_2"])
    async def test_valid_names(self, backend: Backend, name: str) -> None:
        full = f"{name}_{_random.token_hex(3)}"
        await _set(backend, full, "value")
        listed = await backend.list_secrets(svc.ListSecretsRequest(prefix=full))
        assert [s.name for s in listed.secrets] == [full]


@pytest.mark.asyncio
class TestExecutionContext:
    async def _setup(self, backend: Backend) -> tuple[str, dict[str, str], str]:
        """An agent with an environment; returns (agent name, secret values, an undeclared secret)."""
        env_secret, agent_secret, undeclared = (unique_secret(x) for x in ("ENV", "AGENT", "OTHER"))
        values = {env_secret: "env-" + _random.token_hex(6), agent_secret: "agent-" + _random.token_hex(6)}
        for k, v in values.items():
            await _set(backend, k, v)
        await _set(backend, undeclared, "nope-" + _random.token_hex(6))
        env, name = unique("env"), unique("agent")
        await apply(backend, environment(env, variables={"REGION": "eu", "LEVEL": "1"}, secrets=[env_secret]))
        await apply(backend, agent(name, environments=[env], secrets=[agent_secret]))
        return name, values, undeclared

    async def test_running_execution_gets_exactly_its_secrets(self, backend: Backend) -> None:
        name, values, undeclared = await self._setup(backend)
        run = await new_execution(
            backend, "Agent", name, env={"LEVEL": "2"}, runtime_secrets={"RUN_ONLY": "rt-1"}
        )
        eid = run.metadata.id
        req = svc.GetExecutionContextRequest(execution_id=eid)
        await expect_error(FailedPrecondition, backend.get_execution_context(req), "PENDING")
        await set_phase(backend, eid, P.PHASE_RUNNING)
        ctx = await backend.get_execution_context(req)
        assert ctx.execution_id == eid
        assert dict(ctx.secrets) == {**values, "RUN_ONLY": "rt-1"}
        assert undeclared not in ctx.secrets
        assert dict(ctx.variables) == {"REGION": "eu", "LEVEL": "2"}
        await set_phase(backend, eid, P.PHASE_WAITING_APPROVAL)
        assert dict((await backend.get_execution_context(req)).secrets) == {**values, "RUN_ONLY": "rt-1"}
        await set_phase(backend, eid, P.PHASE_RUNNING, P.PHASE_SUCCEEDED)
        await expect_error(FailedPrecondition, backend.get_execution_context(req), "SUCCEEDED")
        await expect_error(
            NotFound,
            backend.get_execution_context(svc.GetExecutionContextRequest(execution_id="aex_unknown")),
        )

    async def test_runtime_secrets_are_scoped_to_their_execution(self, backend: Backend) -> None:
        name, _values, _ = await self._setup(backend)
        one = await new_execution(backend, "Agent", name, runtime_secrets={"RUN_ONLY": "first"})
        two = await new_execution(backend, "Agent", name)
        for run in (one, two):
            await set_phase(backend, run.metadata.id, P.PHASE_RUNNING)
        ctx_one = await backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=one.metadata.id)
        )
        ctx_two = await backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=two.metadata.id)
        )
        assert ctx_one.secrets["RUN_ONLY"] == "first"
        assert "RUN_ONLY" not in ctx_two.secrets

    async def test_missing_secret_value_is_named(self, backend: Backend) -> None:
        missing = unique_secret("MISSING")
        wf = unique("wf")
        await apply(backend, workflow(wf, secrets=[missing]))
        run = await new_execution(backend, "Workflow", wf, env={"A": "1"})
        await set_phase(backend, run.metadata.id, P.PHASE_RUNNING)
        req = svc.GetExecutionContextRequest(execution_id=run.metadata.id)
        await expect_error(FailedPrecondition, backend.get_execution_context(req), missing)
        await _set(backend, missing, "now-set")
        ctx = await backend.get_execution_context(req)
        assert dict(ctx.secrets) == {missing: "now-set"} and dict(ctx.variables) == {"A": "1"}

    async def test_cancelled_execution_gets_nothing(self, backend: Backend) -> None:
        name, _values, _ = await self._setup(backend)
        run = await new_execution(backend, "Agent", name)
        await set_phase(backend, run.metadata.id, P.PHASE_RUNNING)
        await backend.cancel_execution(svc.CancelExecutionRequest(id=run.metadata.id))
        req = svc.GetExecutionContextRequest(execution_id=run.metadata.id)
        await expect_error(FailedPrecondition, backend.get_execution_context(req), "CANCELLED")


@pytest.mark.asyncio
class TestNoSecretLeaks:
    async def test_scripted_session_returns_values_only_from_get_execution_context(
        self, backend: Backend
    ) -> None:
        rec = RecordingBackend(backend)
        b: Backend = rec
        stored, runtime, mcp_value = (
            f"plain-{k}-{_random.token_hex(8)}" for k in ("stored", "runtime", "mcp")
        )
        s1, s2 = unique_secret("LEAK"), unique_secret("LEAKMCP")
        await _set(b, s1, stored, "a stored secret")
        await _set(b, s2, mcp_value)
        env, mcp, name = unique("env"), unique("mcp"), unique("agent")
        await apply(b, environment(env, variables={"REGION": "eu"}, secrets=[s1]))
        await apply(b, mcp_server(mcp, secrets=[s2]))
        await apply(b, agent(name, environments=[env], mcp_servers=[mcp]))
        await apply(b, agent(name, environments=[env], mcp_servers=[mcp], instructions="v2"))
        run = await new_execution(b, "Agent", name, runtime_secrets={"RUNTIME_TOKEN": runtime})
        eid = run.metadata.id
        await set_phase(b, eid, P.PHASE_RUNNING)
        ctx = await b.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
        assert set(ctx.secrets.values()) == {stored, runtime, mcp_value}
        await b.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=eid, events=[ex.ExecutionEvent(type="log", text=f"using ${{ $secrets.{s1} }}")]
            )
        )
        ref = meta_pb2.ResourceRef
        await b.get(svc.GetRequest(ref=ref(kind="Agent", name=name)))
        await b.get(svc.GetRequest(ref=ref(kind="Environment", name=env)))
        await b.list(svc.ListRequest(kind="Environment"))
        await b.list(svc.ListRequest(kind="McpServer"))
        await b.list_versions(svc.ListVersionsRequest(ref=ref(kind="Agent", name=name)))
        await b.get_execution(svc.GetExecutionRequest(id=eid))
        await b.list_executions(svc.ListExecutionsRequest(target=ref(kind="Agent", name=name)))
        await b.list_secrets(svc.ListSecretsRequest())
        await b.cancel_execution(svc.CancelExecutionRequest(id=eid, reason="done"))

        async def drain() -> None:
            async for _ in b.watch_execution(svc.WatchExecutionRequest(execution_id=eid)):
                pass

        await asyncio.wait_for(drain(), 10)
        await b.delete_secret(svc.DeleteSecretRequest(name=s2))
        methods = {m for m, _ in rec.responses}
        assert {"set_secret", "apply", "create_execution", "watch_execution", "list_secrets"} <= methods
        for value in (stored, runtime, mcp_value):
            assert rec.leaks(value) == [], "a response other than GetExecutionContext held a secret value"
        assert rec.leaks(stored, allowed=()) == ["get_execution_context"]
