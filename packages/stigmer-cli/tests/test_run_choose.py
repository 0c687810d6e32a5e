"""`stigmer run` with no NAME: a project's workflows and agents offered at a numbered prompt on a
terminal (pexpect), a usage error listing them otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest
from stigmer.testing import ScriptedLLM, text

TIMEOUT = 60


@pytest.fixture
def project(cli: Callable[..., Any], tmp_path: Path) -> Path:
    """A `stigmer init` project whose workflow (only) is applied."""
    folder = tmp_path / "proj"
    assert cli("init", str(folder)).code == 0
    assert cli("apply", "-f", str(folder / "workflows")).code == 0
    return folder


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "run", *args],
        cwd=folder,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _spawn(folder: Path, *args: str) -> pexpect.spawn[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "stigmer.cli", "run", *args],
        cwd=str(folder),
        env=env,
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(40, 200),
    )


def test_not_on_a_terminal_it_is_a_usage_error_listing_the_project(project: Path) -> None:
    done = _run(project)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "error: say what to run: `stigmer run NAME` (in this project: workflow hello, agent helper); "
        "for example `stigmer run hello`"
    )
    # a sub-folder with manifests is a project too; nothing ran
    assert (
        _run(project / "agents")
        .stderr.strip()
        .endswith('(in this project: agent helper); for example `stigmer agent execute helper "MESSAGE"`')
    )
    assert _executions() == []


def _executions() -> list[dict[str, Any]]:
    listed = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "execution", "list", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert listed.returncode == 0, listed.stderr
    executions: list[dict[str, Any]] = json.loads(listed.stdout)
    return executions


def test_outside_a_project_it_lists_the_stored_ones(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(elsewhere)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: say what to run: `stigmer run NAME` (stored: workflow hello); for example `stigmer run hello`"
    )


def test_outside_a_project_with_nothing_stored(cli: Callable[..., Any], tmp_path: Path) -> None:
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "`stigmer init` scaffolds a project" in done.stderr


def test_a_terminal_chooses_by_number_and_runs_it(project: Path) -> None:
    child = _spawn(project, "-o", "json", "--input", '{"name": "Ada"}')
    child.expect("What to run")
    child.expect(r"1\) workflow hello\s+workflows/hello.yaml\r\n")
    child.expect(r"2\) agent    helper\s+agents/helper.yaml  \(not applied\)")
    child.expect(r"Run which\? \[1-2\]: ")
    child.sendline("7")  # out of range: asked again
    child.expect(r"Run which\? \[1-2\]: ")
    child.sendline("1")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    result = json.loads(child.before[child.before.index("{") :])
    assert result["output"] == {"greeting": "Hello, Ada!"}


def test_choosing_an_unapplied_agent_says_how_to_apply(project: Path) -> None:
    child = _spawn(project)
    child.expect(r"Run which\? \[1-2\]: ")
    child.sendline("2")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "error: agent helper is not stored yet: `stigmer apply -f .` first" in child.before


def test_an_agent_asks_for_its_message(cli: Callable[..., Any], project: Path) -> None:
    with ScriptedLLM([text("four")]) as llm:
        (project / "agents" / "helper.yaml").write_text(
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: helper}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: m, baseUrl: '{llm.openai_base_url}'}}\n",
            encoding="utf-8",
        )
        assert cli("apply", "-f", str(project)).code == 0
        child = _spawn(project, "-o", "json")
        child.expect(r"1\) workflow hello")
        child.expect(r"2\) agent    helper\s+agents/helper.yaml\r\n")  # applied now: no mark
        child.expect(r"Run which\? \[1-2\]: ")
        child.sendline("2")
        child.expect("Message for helper: ")
        child.sendline("what is 2+2?")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0, child.before
    result = json.loads(child.before[child.before.index("{") :])
    assert result["id"].startswith("aex_")
    assert result["output"] == "four"
    assert llm.messages(0)[-1]["content"] == "what is 2+2?"


def test_ctrl_c_at_the_prompt_runs_nothing(project: Path) -> None:
    child = _spawn(project)
    child.expect(r"Run which\? \[1-2\]: ")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0
    assert "Traceback" not in child.before
    assert _executions() == []
