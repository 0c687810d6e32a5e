"""Errors: one line and exit 1; usage errors exit 2; --debug shows the traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def test_user_error_is_one_line(cli: Callable[..., Any]) -> None:
    result = cli("get", "agnet")
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        "error: unknown kind 'agnet'; did you mean 'agent'? "
        "(kinds: agent, workflow, skill, mcpserver, environment, session, schedule, trigger, execution)\n"
    )


def test_usage_error_exits_2(cli: Callable[..., Any]) -> None:
    assert cli("get").code == 2
    assert cli("no-such-command").code == 2
    assert cli("run", "x", "--bogus").code == 2
    assert cli("get", "agent", "-o", "xml").code == 2


def test_bad_manifest_names_file_line_and_field(cli: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\nspec:\n  instructons: hi\n")
    result = cli("apply", "-f", str(path))
    assert result.code == 1
    assert result.err == (
        f"error: {path}:5: spec.instructons: unknown field 'instructons'; did you mean 'instructions'?\n"
    )


def test_debug_shows_traceback(cli: Callable[..., Any], tmp_path: Path) -> None:
    result = cli("--debug", "apply", "-f", str(tmp_path / "missing.yaml"))
    assert result.code == 1
    assert "Traceback (most recent call last)" in result.err
    assert result.err.rstrip().splitlines()[-1].startswith("error: ")


def test_missing_manifest_argument(cli: Callable[..., Any]) -> None:
    result = cli("apply")
    assert result.code == 1
    assert "give at least one manifest with -f FILE" in result.err


def test_delete_needs_a_target(cli: Callable[..., Any]) -> None:
    result = cli("delete", "agent")
    assert result.code == 1
    assert "stigmer delete KIND NAME" in result.err
    result = cli("delete", "execution", "wex_1")
    assert result.code == 1
    assert "cannot be deleted" in result.err


def test_error_lines_and_tracebacks_mask_resolved_secrets(cli: Callable[..., Any], tmp_path: Path) -> None:
    from stigmer.core import default_redactor

    # A value a Lite run resolved in this process, which an error happens to quote.
    missing = tmp_path / "sk-proj-7Qx9LmZ2vB4nC8dF.yaml"
    default_redactor().register(missing.name)
    for args in (("apply", "-f", str(missing)), ("--debug", "apply", "-f", str(missing))):
        result = cli(*args)
        assert result.code == 1
        assert missing.name not in result.err
        assert "***" in result.err
