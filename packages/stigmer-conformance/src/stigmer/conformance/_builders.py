"""What the conformance tests share: unique names, resource builders, error assertions."""

from __future__ import annotations

import secrets as _random
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from google.protobuf import struct_pb2
from stigmer.core import Backend, StigmerError
from stigmer.proto.v1 import (
    agent_pb2,
    environment_pb2,
    mcp_server_pb2,
    meta_pb2,
    resource_pb2,
    session_pb2,
    skill_pb2,
    workflow_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)
from stigmer.proto.v1 import (
    execution_pb2 as ex,
)

__all__ = [
    "API",
    "agent",
    "apply",
    "environment",
    "expect_error",
    "mcp_server",
    "new_execution",
    "session",
    "set_phase",
    "skill",
    "unique",
    "unique_secret",
    "workflow",
]

API = "stigmer.ai/v1"
E = TypeVar("E", bound=StigmerError)


def unique(prefix: str = "conf") -> str:
    """A name no other test (or earlier run against a shared store) uses."""
    return f"{prefix}-{_random.token_hex(5)}"


def unique_secret(prefix: str = "CONF") -> str:
    return f"{prefix}_{_random.token_hex(5).upper()}"


def _meta(name: str, labels: dict[str, str] | None) -> meta_pb2.Metadata:
    return meta_pb2.Metadata(name=name, labels=labels or {})


def agent(
    name: str,
    *,
    instructions: str = "You answer briefly.",
    environments: Iterable[str] = (),
    secrets: Iterable[str] = (),
    skills: Iterable[str] = (),
    mcp_servers: Iterable[str] = (),
    labels: dict[str, str] | None = None,
) -> resource_pb2.Resource:
    spec = agent_pb2.AgentSpec(
        instructions=instructions,
        model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini"),
        environments=list(environments),
        secrets=list(secrets),
        skills=[meta_pb2.ResourceRef(name=s) for s in skills],
        mcp_servers=[agent_pb2.McpServerUsage(name=m) for m in mcp_servers],
    )
    return resource_pb2.Resource(
        agent=agent_pb2.Agent(api_version=API, kind="Agent", metadata=_meta(name, labels), spec=spec)
    )


def environment(
    name: str,
    *,
    variables: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    labels: dict[str, str] | None = None,
) -> resource_pb2.Resource:
    spec = environment_pb2.EnvironmentSpec(variables=variables or {}, secrets=list(secrets))
    return resource_pb2.Resource(
        environment=environment_pb2.Environment(
            api_version=API, kind="Environment", metadata=_meta(name, labels), spec=spec
        )
    )


def mcp_server(name: str, *, secrets: Iterable[str] = ()) -> resource_pb2.Resource:
    spec = mcp_server_pb2.McpServerSpec(
        stdio=mcp_server_pb2.StdioTransport(command="mcp-server", args=["stdio"]), secrets=list(secrets)
    )
    return resource_pb2.Resource(
        mcp_server=mcp_server_pb2.McpServer(
            api_version=API, kind="McpServer", metadata=_meta(name, None), spec=spec
        )
    )


def skill(name: str, content: str = "# Skill\nBe kind.") -> resource_pb2.Resource:
    spec = skill_pb2.SkillSpec(description="a skill", content=content)
    return resource_pb2.Resource(
        skill=skill_pb2.Skill(api_version=API, kind="Skill", metadata=_meta(name, None), spec=spec)
    )


def workflow(
    name: str, *, secrets: Iterable[str] = (), labels: dict[str, str] | None = None
) -> resource_pb2.Resource:
    doc: dict[str, Any] = {
        "document": {"dsl": "1.0.0", "namespace": "conformance", "name": name, "version": "1.0.0"},
        "do": [{"greet": {"set": {"greeting": '${ "Hello, " + .name }'}}}],
    }
    names = list(secrets)
    if names:
        doc["use"] = {"secrets": names}
    spec = struct_pb2.Struct()
    spec.update(doc)
    return resource_pb2.Resource(
        workflow=workflow_pb2.Workflow(
            api_version=API, kind="Workflow", metadata=_meta(name, labels), spec=spec
        )
    )


def session(name: str, agent_name: str) -> resource_pb2.Resource:
    spec = session_pb2.SessionSpec(agent=meta_pb2.ResourceRef(kind="Agent", name=agent_name), title=name)
    return resource_pb2.Resource(
        session=session_pb2.Session(api_version=API, kind="Session", metadata=_meta(name, None), spec=spec)
    )


async def apply(
    backend: Backend, resource: resource_pb2.Resource, dry_run: bool = False
) -> svc.ApplyResponse:
    return await backend.apply(svc.ApplyRequest(resource=resource, dry_run=dry_run))


async def expect_error(kind: type[E], call: Awaitable[Any], *words: str) -> E:
    """Await ``call``, assert it raises ``kind`` with a non-trivial message containing ``words``."""
    try:
        result = await call
    except StigmerError as exc:
        assert isinstance(exc, kind), f"expected {kind.__name__}, got {type(exc).__name__}: {exc}"
        message = str(exc)
        assert len(message) >= 10, f"the error message is not useful: {message!r}"
        assert "\n" not in message.strip(), f"the error message is not one line: {message!r}"
        for word in words:
            assert word in message, f"expected {word!r} in the error message {message!r}"
        return exc
    raise AssertionError(f"expected {kind.__name__}, but the call returned {type(result).__name__}")


async def new_execution(
    backend: Backend,
    target_kind: str,
    target_name: str,
    *,
    runtime_secrets: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> ex.Execution:
    spec = ex.ExecutionSpec(
        target=meta_pb2.ResourceRef(kind=target_kind, name=target_name), message="hello", env=env or {}
    )
    return await backend.create_execution(
        svc.CreateExecutionRequest(spec=spec, runtime_secrets=runtime_secrets or {}, labels=labels or {})
    )


async def set_phase(backend: Backend, execution_id: str, *phases: int, **fields: Any) -> ex.Execution:
    """Move an execution through ``phases`` one update at a time; the last update carries ``fields``."""
    result: ex.Execution | None = None
    for i, phase in enumerate(phases):
        extra = fields if i == len(phases) - 1 else {}
        result = await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=execution_id, phase=phase, **extra)  # type: ignore[arg-type]
        )
    assert result is not None
    return result
