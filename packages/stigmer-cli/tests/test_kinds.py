"""Kind arguments: singular, plural and short forms (core's table, through the SDK); unknown kinds
suggest the closest one."""

from __future__ import annotations

import pytest
from stigmer.cli._errors import CliError
from stigmer.cli.commands._params import kind_argument as resolve_kind
from stigmer.cli.output._view import cli_name
from stigmer.core import EXECUTION
from stigmer.sdk._targets import did_you_mean as suggest


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("agent", "Agent"),
        ("agents", "Agent"),
        ("ag", "Agent"),
        ("Agent", "Agent"),
        ("workflow", "Workflow"),
        ("workflows", "Workflow"),
        ("wf", "Workflow"),
        ("skill", "Skill"),
        ("skills", "Skill"),
        ("mcpserver", "McpServer"),
        ("mcp", "McpServer"),
        ("McpServer", "McpServer"),
        ("environment", "Environment"),
        ("env", "Environment"),
        ("session", "Session"),
        ("sessions", "Session"),
        ("execution", EXECUTION),
        ("executions", EXECUTION),
        ("ex", EXECUTION),
        (" AGENTS ", "Agent"),
    ],
)
def test_aliases(text: str, kind: str) -> None:
    assert resolve_kind(text) == kind


@pytest.mark.parametrize(("typo", "expected"), [("agnet", "agent"), ("worklfow", "workflow"), ("secret", "")])
def test_unknown_kind_suggests(typo: str, expected: str) -> None:
    with pytest.raises(CliError) as info:
        resolve_kind(typo)
    message = info.value.message
    assert f"unknown kind '{typo}'" in message
    if expected:
        assert f"did you mean '{expected}'" in message
    assert (
        "(kinds: agent, workflow, skill, mcpserver, environment, session, schedule, trigger, execution)"
        in message
    )


def test_executions_refused_where_not_allowed() -> None:
    with pytest.raises(CliError):
        resolve_kind("execution", executions=False)
    assert resolve_kind("agent", executions=False) == "Agent"


def test_cli_name() -> None:
    assert cli_name("McpServer") == "mcpserver"
    assert cli_name("Agent") == "agent"
    assert cli_name(EXECUTION) == "execution"


def test_suggest() -> None:
    assert suggest("helo", ["hello", "other"]) == "; did you mean 'hello'?"
    assert suggest("zzzz", ["hello"]) == ""
    assert suggest("x", []) == ""
