"""``stigmer memory list|get|delete``: what agents remember across sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli._client import connect, run_async
from stigmer.cli.output._format import Output, OutputOption, age, echo, emit_json, emit_yaml, print_table

if TYPE_CHECKING:
    from stigmer.proto.v1 import memory_pb2

__all__ = ["memory_app"]

memory_app = typer.Typer(
    add_completion=False, help="List, show and forget what agents remember.", no_args_is_help=True
)

IdArg = Annotated[str, typer.Argument(help="The memory's id (mem_...).")]


def _dict(memory: memory_pb2.Memory) -> dict[str, Any]:
    from stigmer.cli.output._view import timestamp

    spec = memory.spec
    out: dict[str, Any] = {
        "id": memory.metadata.id,
        "agent": spec.agent,
        "subject": spec.subject,
        "fact": spec.fact,
        "createdAt": timestamp(memory.metadata.created_at),
        "author": memory.metadata.author,
        "provenance": {
            "sessionId": spec.provenance.session_id,
            "executionId": spec.provenance.execution_id,
            "toolCallId": spec.provenance.tool_call_id,
        },
    }
    if memory.score:
        out["score"] = memory.score
    return out


def _show(memories: list[memory_pb2.Memory], output: Output) -> None:
    if output is Output.json:
        emit_json([_dict(m) for m in memories])
    elif output is Output.yaml:
        emit_yaml([_dict(m) for m in memories])
    else:
        rows = [
            [m.metadata.id, m.spec.agent, m.spec.subject or "-", age(m.metadata.created_at), m.spec.fact]
            for m in memories
        ]
        print_table(["ID", "AGENT", "SUBJECT", "AGE", "FACT"], rows, empty="no memories")


@memory_app.command("list")
def list_(
    agent: Annotated[str, typer.Option("--agent", "-a", help="Only this agent's memories.")] = "",
    subject: Annotated[str, typer.Option("--subject", help="Only memories about this subject.")] = "",
    search: Annotated[
        str, typer.Option("--search", "-s", help="The memories most relevant to these words, best first.")
    ] = "",
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 0,
    output: OutputOption = Output.table,
) -> None:
    """List memories, newest first (or the most relevant first with --search)."""

    async def go() -> list[memory_pb2.Memory]:
        async with connect() as client:
            return list(await client.memories(agent, subject=subject, query=search, limit=limit))

    _show(run_async(go()), output)


@memory_app.command("get")
def get(memory_id: IdArg, output: OutputOption = Output.table) -> None:
    """Show one memory and where it was learnt."""

    async def go() -> memory_pb2.Memory:
        async with connect() as client:
            return await client.memory(memory_id)

    memory = run_async(go())
    data = _dict(memory)
    if output is Output.json:
        emit_json(data)
    elif output is Output.yaml:
        emit_yaml([data])
    else:
        prov = data["provenance"]
        rows = [
            ["id", data["id"]],
            ["agent", data["agent"]],
            ["subject", data["subject"] or "-"],
            ["fact", data["fact"]],
            ["created", data["createdAt"]],
            ["learnt in", f"session {prov['sessionId'] or '-'}, execution {prov['executionId'] or '-'}"],
        ]
        print_table(["FIELD", "VALUE"], rows)


@memory_app.command("delete")
def delete(memory_ids: Annotated[list[str], typer.Argument(help="Memory ids (mem_...).")]) -> None:
    """Forget memories."""

    async def go() -> list[memory_pb2.Memory]:
        async with connect() as client:
            return [await client.forget(memory_id) for memory_id in memory_ids]

    for gone in run_async(go()):
        echo(f"forgot {gone.metadata.id}: {gone.spec.fact}")
