"""The one table of resource kinds: every fact about a kind that more than one place needs.

A kind's name, its accepted spellings on the command line and in the SDK, the id prefix of its
resources, the protobuf message and the ``stigmer.v1.Resource`` field that carry it, its rank when
applied (what others refer to first), the runner that executes it, and whether ``export`` writes
it. Nothing else lists kinds. This module imports no protobuf (messages load on first use), so the
CLI can resolve kind names at start.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.protobuf.message import Message

__all__ = [
    "APPLY_ORDER",
    "EXECUTION",
    "KIND_TABLE",
    "RUNNABLE_KINDS",
    "Kind",
    "applicable_kinds",
    "kind_info",
    "kind_spellings",
    "lookup_kind",
]

EXECUTION = "Execution"  # pseudo-kind on the command line: AgentExecution and WorkflowExecution together


@dataclass(frozen=True)
class Kind:
    """What the project knows about one resource kind."""

    name: str  # "McpServer"
    aliases: tuple[str, ...]  # lower-case spellings accepted; the first is the canonical CLI name
    id_prefix: str  # "mcp" -> ids "mcp_<ulid>"
    message: str  # "module:Class" of the protobuf message
    field: str  # field inside stigmer.v1.Resource; "" for executions
    apply_rank: int | None = None  # None: cannot be applied (executions)
    runner: str = ""  # the ``stigmer.runners`` plugin that runs it (or runs its executions)
    exported: bool = False  # written by ``stigmer export`` / the SDK's export
    execution_kind: str = ""  # the kind of the executions a runnable kind starts

    @property
    def cli_name(self) -> str:
        """The lower-case name in CLI output and messages (``McpServer`` -> ``mcpserver``)."""
        return self.aliases[0]

    @property
    def applicable(self) -> bool:
        return self.apply_rank is not None

    @property
    def is_execution(self) -> bool:
        return not self.field

    def message_class(self) -> type[Message]:
        """The generated protobuf message class of this kind (imported on first use)."""
        module, _, name = self.message.partition(":")
        cls: type[Message] = getattr(importlib.import_module(module), name)
        return cls


_PB = "stigmer.proto.v1."
KIND_TABLE: tuple[Kind, ...] = (
    Kind("Skill", ("skill", "skills", "sk"), "skl", _PB + "skill_pb2:Skill", "skill", 0, exported=True),
    Kind(
        "McpServer",
        ("mcpserver", "mcpservers", "mcp", "mcp-server", "mcp-servers", "mcp_server"),
        "mcp",
        _PB + "mcp_server_pb2:McpServer",
        "mcp_server",
        0,
        exported=True,
    ),
    Kind(
        "Environment",
        ("environment", "environments", "env", "envs"),
        "env",
        _PB + "environment_pb2:Environment",
        "environment",
        0,
        exported=True,
    ),
    Kind(
        "Agent",
        ("agent", "agents", "ag"),
        "agt",
        _PB + "agent_pb2:Agent",
        "agent",
        1,
        runner="agent",
        exported=True,
        execution_kind="AgentExecution",
    ),
    Kind(
        "Workflow",
        ("workflow", "workflows", "wf"),
        "wfl",
        _PB + "workflow_pb2:Workflow",
        "workflow",
        2,
        runner="workflow",
        exported=True,
        execution_kind="WorkflowExecution",
    ),
    Kind("Session", ("session", "sessions", "ses"), "ses", _PB + "session_pb2:Session", "session", 3),
    Kind(
        "Schedule",
        ("schedule", "schedules", "sch"),
        "sch",
        _PB + "schedule_pb2:Schedule",
        "schedule",
        3,
        exported=True,
    ),
    Kind(
        "Trigger",
        ("trigger", "triggers", "trg"),
        "trg",
        _PB + "trigger_pb2:Trigger",
        "trigger",
        3,
        exported=True,
    ),
    Kind(
        "AgentExecution",
        ("agentexecution", "agentexecutions", "aex"),
        "aex",
        _PB + "execution_pb2:Execution",
        "",
        runner="agent",
    ),
    Kind(
        "WorkflowExecution",
        ("workflowexecution", "workflowexecutions", "wex"),
        "wex",
        _PB + "execution_pb2:Execution",
        "",
        runner="workflow",
    ),
)
_BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KIND_TABLE}
_EXECUTION_ALIASES = ("execution", "executions", "ex", "exec")
_LOOKUP: dict[str, str] = {alias: kind.name for kind in KIND_TABLE for alias in kind.aliases}
_LOOKUP.update({kind.name.lower(): kind.name for kind in KIND_TABLE})
_LOOKUP.update({alias: EXECUTION for alias in _EXECUTION_ALIASES})

# kind -> rank, for what can be applied (the order ``apply`` writes in)
APPLY_ORDER: dict[str, int] = {k.name: k.apply_rank for k in KIND_TABLE if k.apply_rank is not None}
# kinds ``stigmer run NAME`` may start, in the order a name is looked up
RUNNABLE_KINDS: tuple[str, ...] = ("Workflow", "Agent")


def kind_info(name: str) -> Kind:
    """The table row of the kind ``name`` (exact, e.g. ``McpServer``); ``KeyError`` when unknown."""
    return _BY_NAME[name]


def lookup_kind(text: str) -> str | None:
    """The kind a user's spelling names (``agents``, ``MCP``, ``mcp_server`` -> ``McpServer``).

    Returns ``EXECUTION`` for the execution pseudo-kind and ``None`` when nothing matches.
    """
    return _LOOKUP.get(text.strip().lower())


def kind_spellings(kinds: Iterable[str]) -> list[str]:
    """Every accepted spelling of ``kinds`` (for suggestions)."""
    out: list[str] = []
    for name in kinds:
        out.extend(_EXECUTION_ALIASES if name == EXECUTION else _BY_NAME[name].aliases)
    return out


def applicable_kinds() -> list[Kind]:
    """The kinds ``apply`` accepts, in apply order."""
    return sorted((k for k in KIND_TABLE if k.applicable), key=lambda k: k.apply_rank or 0)
