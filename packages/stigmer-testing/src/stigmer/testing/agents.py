"""Agent executions on a Backend in tests: manifests of an agent on a :class:`ScriptedLLM` and of
the test MCP server, applying them, starting executions, reading and summarising event logs; the
plain Agent and Environment resources (protos) of tests that only store and dispatch them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format
from stigmer.core import Backend, parse_manifest
from stigmer.proto.v1 import agent_pb2, environment_pb2, execution_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

from ._llm import ScriptedLLM
from ._mcp import MCP_SERVER

__all__ = [
    "KEY",
    "MCP_SERVER",
    "agent_resource",
    "apply",
    "data",
    "environment_resource",
    "events",
    "openai_agent",
    "pid_alive",
    "sequences_ok",
    "start",
    "stdio_server",
    "summary",
]

#: A master key for a LocalBackend in tests.
KEY = b"k" * 32


def stdio_server(name: str, env: dict[str, str] | None = None, secrets: list[str] | None = None) -> str:
    """An McpServer manifest running the test server over stdio."""
    lines = [
        "apiVersion: stigmer.ai/v1",
        "kind: McpServer",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  stdio:",
        f"    command: {sys.executable!r}",
        f"    args: [{MCP_SERVER!r}]",
    ]
    if env:
        lines.append("    env:")
        lines.extend(f"      {k}: {v!r}" for k, v in env.items())
    if secrets:
        lines.append(f"  secrets: [{', '.join(secrets)}]")
    return "\n".join(lines) + "\n"


def openai_agent(
    llm: ScriptedLLM, name: str = "bot", extra: str = "", instructions: str = "Be brief."
) -> str:
    return (
        "apiVersion: stigmer.ai/v1\nkind: Agent\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n"
        f"  instructions: {instructions!r}\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
        + extra
    )


def agent_resource(
    name: str = "bot", *, environments: Sequence[str] = (), instructions: str = "hi"
) -> resource_pb2.Resource:
    """An Agent resource on an ``openai`` model named ``m`` (for tests that store and dispatch it,
    never run it)."""
    return resource_pb2.Resource(
        agent=agent_pb2.Agent(
            api_version="stigmer.ai/v1",
            kind="Agent",
            metadata=meta_pb2.Metadata(name=name),
            spec=agent_pb2.AgentSpec(
                instructions=instructions,
                model=agent_pb2.ModelConfig(provider="openai", name="m"),
                environments=list(environments),
            ),
        )
    )


def environment_resource(
    name: str = "prod", *, secrets: Sequence[str] = (), variables: Mapping[str, str] | None = None
) -> resource_pb2.Resource:
    """An Environment resource naming ``secrets`` and holding ``variables``."""
    return resource_pb2.Resource(
        environment=environment_pb2.Environment(
            api_version="stigmer.ai/v1",
            kind="Environment",
            metadata=meta_pb2.Metadata(name=name),
            spec=environment_pb2.EnvironmentSpec(secrets=list(secrets), variables=dict(variables or {})),
        )
    )


async def apply(backend: Backend, text: str) -> list[Any]:
    """Apply every resource of a manifest; the stored resources."""
    out = []
    for loaded in parse_manifest(text, "test.yaml"):
        assert isinstance(loaded.resource, resource_pb2.Resource), f"{loaded.kind} is not applied"
        response = await backend.apply(svc.ApplyRequest(resource=loaded.resource))
        out.append(response.resource)
    return out


async def start(
    backend: Backend,
    agent: str,
    message: str,
    *,
    session_id: str = "",
    runtime_secrets: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> str:
    spec = execution_pb2.ExecutionSpec(
        target=meta_pb2.ResourceRef(kind="Agent", name=agent), message=message, session_id=session_id
    )
    spec.env.update(env or {})
    created = await backend.create_execution(
        svc.CreateExecutionRequest(spec=spec, runtime_secrets=runtime_secrets or {})
    )
    return created.metadata.id


async def events(backend: Backend, execution_id: str) -> list[execution_pb2.ExecutionEvent]:
    """Every event of an execution so far (without waiting for it to finish)."""
    current = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
    last = current.status.last_sequence
    out: list[execution_pb2.ExecutionEvent] = []
    if last == 0:
        return out
    stream = backend.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))
    try:
        async for event in stream:
            out.append(event)
            if event.sequence >= last:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return out


def data(event: execution_pb2.ExecutionEvent) -> Any:
    return json_format.MessageToDict(event.data) if event.HasField("data") else None


def summary(log: list[execution_pb2.ExecutionEvent]) -> list[tuple[str, ...]]:
    """(type, detail) per event; consecutive text.delta events are merged (their split is timing)."""
    out: list[tuple[str, ...]] = []
    for event in log:
        if event.type == "phase":
            out.append(("phase", execution_pb2.Phase.Name(event.phase).removeprefix("PHASE_")))
        elif event.type == "text.delta":
            if out and out[-1][0] == "text.delta":
                out[-1] = ("text.delta", out[-1][1] + event.text)
            else:
                out.append(("text.delta", event.text))
        elif event.type in ("tool.call", "tool.result", "approval.requested", "approval.resolved"):
            out.append((event.type, str(data(event).get("tool", ""))))
        elif event.type in ("agent.started", "agent.completed"):
            out.append((event.type, str(data(event).get("agent", ""))))
        elif event.type in ("message.user", "message.assistant"):
            out.append((event.type, event.text))
        else:
            out.append((event.type,))
    return out


def sequences_ok(log: list[execution_pb2.ExecutionEvent]) -> bool:
    return [e.sequence for e in log] == list(range(1, len(log) + 1))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
