"""Kind names on the command line: singular, plural and short forms, with suggestions."""

from __future__ import annotations

from collections.abc import Iterable

from stigmer.cli._errors import CliError

__all__ = [
    "EXECUTION",
    "cli_name",
    "resolve_kind",
    "suggest",
]

EXECUTION = "Execution"  # pseudo-kind: AgentExecution and WorkflowExecution together

# kind -> accepted spellings (lower case); the first one is the canonical CLI name
_ALIASES: dict[str, tuple[str, ...]] = {
    "Agent": ("agent", "agents", "ag"),
    "Workflow": ("workflow", "workflows", "wf"),
    "Skill": ("skill", "skills", "sk"),
    "McpServer": ("mcpserver", "mcpservers", "mcp", "mcp-server", "mcp-servers"),
    "Environment": ("environment", "environments", "env", "envs"),
    "Session": ("session", "sessions", "ses"),
    EXECUTION: ("execution", "executions", "ex", "exec"),
    "AgentExecution": ("agentexecution", "agentexecutions", "aex"),
    "WorkflowExecution": ("workflowexecution", "workflowexecutions", "wex"),
}
_LOOKUP: dict[str, str] = {alias: kind for kind, aliases in _ALIASES.items() for alias in aliases}
_LOOKUP.update({kind.lower(): kind for kind in _ALIASES})


def suggest(word: str, options: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest option, or an empty string (core's ``did_you_mean``)."""
    from stigmer.core import did_you_mean  # imported on error paths only, to keep `--help` light

    return did_you_mean(word, options)


def resolve_kind(text: str, *, allow_executions: bool = True) -> str:
    """The kind named by ``text`` (``agents`` -> ``Agent``); unknown kinds suggest the closest one."""
    from stigmer.core import APPLY_ORDER  # applicable kinds; imported here to keep `--help` light

    kind = _LOOKUP.get(text.strip().lower())
    if kind is None or (not allow_executions and kind not in APPLY_ORDER):
        allowed = [k for k in _ALIASES if allow_executions or k in APPLY_ORDER]
        hint = suggest(text.strip().lower(), [alias for k in allowed for alias in _ALIASES[k]])
        names = ", ".join(_ALIASES[k][0] for k in allowed if k in APPLY_ORDER or k == EXECUTION)
        raise CliError(f"unknown kind '{text}'{hint} (kinds: {names})")
    return kind


def cli_name(kind: str) -> str:
    """The lower-case name a kind has in CLI output (``McpServer`` -> ``mcpserver``)."""
    aliases = _ALIASES.get(kind)
    return aliases[0] if aliases else kind.lower()
