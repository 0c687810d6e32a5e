"""Built-in tools of an agent (``tools:`` of its spec): ``files``, ``shell``, ``fetch``, ``todos``.

``_build`` turns the spec's entries into pydantic-ai toolsets with the same allow-list and approval
rules as MCP servers; each tool set lives in its own module.
"""

from ._build import BUILTIN_TOOLS, BuiltinTools, ToolEnvironment, build_builtin_toolsets, tool_problems
from ._todos import TODO_STATUSES, TodoState

__all__ = [
    "BUILTIN_TOOLS",
    "TODO_STATUSES",
    "BuiltinTools",
    "TodoState",
    "ToolEnvironment",
    "build_builtin_toolsets",
    "tool_problems",
]
