"""The spec's ``tools:`` entries as pydantic-ai toolsets, keyed ``builtin:<name>``.

The rules are the MCP servers' (``..mcp``): ``allow`` lists the functions the agent may call (all
when empty), ``requireApproval`` those that pause the run for a human; ``shell``'s ``run_command``
needs approval unless ``autoApprove`` is set. A sub-agent (which cannot pause) gets none of the
functions that need approval. ``files`` with ``readOnly`` offers only reading, listing and grep.
``shell`` needs the execution's ``run`` capability: without it the build fails before anything
starts (:class:`~stigmer.core.CapabilityDenied`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.core import CapabilityDenied, InvalidArgument
from stigmer.proto.v1 import agent_pb2

from ..workspace import Workspace
from ._fetch import FetchOptions, fetch_functions
from ._files import READ_ONLY, file_functions
from ._shell import ShellOptions, shell_functions
from ._todos import TodoState, todo_functions

if TYPE_CHECKING:
    from pydantic_ai.toolsets import AbstractToolset

__all__ = ["BUILTIN_TOOLS", "BuiltinTools", "ToolEnvironment", "build_builtin_toolsets", "tool_problems"]

BUILTIN_TOOLS = ("files", "shell", "fetch", "todos")
#: Functions that may change the workspace (after them, a full-stack worker saves it).
MUTATING = frozenset({"write_file", "edit_file", "run_command"})


@dataclass
class ToolEnvironment:
    """What the built-in tools of one execution work with."""

    workspace: Workspace | None
    todos: TodoState
    allow_run: bool = False
    allow_private_network: bool = False
    environ: Mapping[str, str] = field(default_factory=dict)


@dataclass
class BuiltinTools:
    toolsets: dict[str, AbstractToolset[Any]] = field(default_factory=dict)  # "builtin:<name>" -> toolset
    approval: dict[str, str] = field(default_factory=dict)  # function -> "" (no MCP server)


def tool_problems(tools: Sequence[agent_pb2.AgentTool]) -> list[tuple[str, str]]:
    """What is wrong with an agent's ``tools:`` entries: (JSON pointer under the spec, message)."""
    from difflib import get_close_matches

    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.name not in BUILTIN_TOOLS:
            close = get_close_matches(tool.name, BUILTIN_TOOLS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(
                (
                    f"/tools/{index}/name",
                    f"unknown built-in tool {tool.name!r}{hint}; built-in tools: {', '.join(BUILTIN_TOOLS)}",
                )
            )
            continue
        if tool.name in seen:
            problems.append((f"/tools/{index}", f"the {tool.name} tool is listed twice"))
        seen.add(tool.name)
        unknown = sorted((set(tool.allow) | set(tool.require_approval)) - set(_all_names(tool.name)))
        if unknown:
            problems.append(
                (
                    f"/tools/{index}",
                    f"the {tool.name} tool has no function {', '.join(unknown)}; it has "
                    f"{', '.join(_all_names(tool.name))}",
                )
            )
    return problems


def _functions(tool: agent_pb2.AgentTool, env: ToolEnvironment, where: str) -> dict[str, Callable[..., Any]]:
    name = tool.name
    if name in ("files", "shell") and env.workspace is None:  # pragma: no cover - the runner always gives one
        raise InvalidArgument(f"{where}: the {name} tool needs a workspace", [where])
    if name == "files":
        assert env.workspace is not None
        functions = file_functions(env.workspace)
        if tool.read_only:
            functions = {k: v for k, v in functions.items() if k in READ_ONLY}
        return functions
    if name == "shell":
        if not env.allow_run:
            raise CapabilityDenied("the shell tool (commands on the runner's machine)")
        assert env.workspace is not None
        options = ShellOptions.of(tool.timeout_seconds, tool.max_output_bytes, tool.network, env.environ)
        return shell_functions(env.workspace, options)
    if name == "fetch":
        options_f = FetchOptions.of(tool.timeout_seconds, tool.max_output_bytes, env.allow_private_network)
        return fetch_functions(options_f)
    if name == "todos":
        return todo_functions(env.todos)
    raise AssertionError(f"unchecked tool {name}")  # pragma: no cover - tool_problems refuses it


def build_builtin_toolsets(
    tools: Sequence[agent_pb2.AgentTool],
    env: ToolEnvironment,
    *,
    approvals: bool = True,
    field_path: str = "spec.tools",
) -> BuiltinTools:
    """One toolset per entry of ``tools``; which functions need approval."""
    result = BuiltinTools()
    if not tools:
        return result
    from pydantic_ai.toolsets import FunctionToolset

    problems = tool_problems(tools)
    if problems:
        pointer, message = problems[0]
        where = f"{field_path}[{pointer.split('/')[2]}]"
        raise InvalidArgument(f"{where}: {message}", [where])
    for index, tool in enumerate(tools):
        where = f"{field_path}[{index}]"
        key = f"builtin:{tool.name}"
        functions = _functions(tool, env, where)
        if tool.allow:
            functions = {k: v for k, v in functions.items() if k in set(tool.allow)}
        needs = set(tool.require_approval)
        if tool.name == "shell" and not tool.auto_approve:
            needs.add("run_command")
        needs &= set(functions)
        if not approvals:
            functions = {k: v for k, v in functions.items() if k not in needs}
            needs = set()
        toolset: FunctionToolset[Any] = FunctionToolset(id=key)
        for function_name, function in functions.items():
            toolset.add_function(function, name=function_name, requires_approval=function_name in needs)
        result.toolsets[key] = toolset
        result.approval.update({function_name: "" for function_name in needs})
    return result


def _all_names(name: str) -> tuple[str, ...]:
    return {
        "files": ("read_file", "write_file", "edit_file", "list_files", "grep"),
        "shell": ("run_command",),
        "fetch": ("fetch_url",),
        "todos": ("write_todos", "read_todos"),
    }.get(name, ())
