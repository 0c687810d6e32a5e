"""CLI error paths end to end: one line on stderr, exit 1, a suggestion where one helps."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: NAME}
spec:
  document: {dsl: 1.0.0, namespace: t, name: NAME, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + (.name // "world") + "!" }'}
"""
AGENT = """\
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {name: NAME}
spec: {instructions: Be brief., model: {provider: openai, name: gpt-4o-mini}}
"""


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bad_manifest_names_file_line_and_field(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        WORKFLOW.replace("NAME", "ok") + "---\n" + AGENT.replace("NAME", "x").replace("model:", "modle:")
    )
    line = _one_error_line(stigmer("apply", "-f", str(path)))
    assert line == f"error: {path}:13: spec.modle: unknown field 'modle'; did you mean 'model'?"
    # nothing of the file was applied
    assert stigmer("get", "wf", "-o", "json").stdout.strip() == "[]"
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Agent\n  bad: [indent\n")
    line = _one_error_line(stigmer("apply", "-f", str(broken)))
    assert line.startswith(f"error: {broken}:") and "invalid YAML" in line


def test_unknown_kind_and_name_suggest(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.replace("NAME", "hello"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    assert "did you mean 'workflow'?" in _one_error_line(stigmer("get", "workflw"))
    assert (
        _one_error_line(stigmer("get", "wf", "helo"))
        == "error: no workflow named 'helo'; did you mean 'hello'?"
    )
    assert _one_error_line(stigmer("describe", "wf", "helo")).endswith("did you mean 'hello'?")
    assert (
        _one_error_line(stigmer("run", "helo"))
        == "error: no workflow or agent named 'helo'; did you mean 'hello'?"
    )
    empty = _one_error_line(stigmer("get", "agent", "nobody"))
    assert (
        empty == "error: no agent named 'nobody'; there is no agent yet: `stigmer apply -f FILE` creates one"
    )
    assert "no execution with id 'wex_nope'" in _one_error_line(stigmer("execution", "get", "wex_nope"))


def test_ambiguous_run(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(WORKFLOW.replace("NAME", "triage") + "---\n" + AGENT.replace("NAME", "triage"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    line = _one_error_line(stigmer("run", "triage"))
    assert line == (
        "error: 'triage' names both a workflow and an agent; say which: "
        "`stigmer workflow run triage` or `stigmer agent execute triage MESSAGE`"
    )
    assert stigmer("execution", "list", "-o", "json").stdout.strip() == "[]"  # nothing was started
    explicit = stigmer("workflow", "run", "triage", "-o", "json")
    assert explicit.returncode == 0, explicit.stderr
    assert '"phase": "SUCCEEDED"' in explicit.stdout


def test_missing_runner_plugin_is_one_line(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.replace("NAME", "hello"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    line = _one_error_line(stigmer("run", "hello", hide_plugins=("workflow",)))
    assert "no 'workflow' plugin in entry-point group 'stigmer.runners'" in line
    assert line.endswith("install it with: pip install stigmer-runner-workflow")
    # the check happens before anything is created
    assert stigmer("execution", "list", "-o", "json").stdout.strip() == "[]"
    detached = _one_error_line(stigmer("run", "hello", "--detach", hide_plugins=("workflow",)))
    assert "pip install stigmer-runner-workflow" in detached


def test_missing_backend_plugin_is_one_line(stigmer: StigmerCli) -> None:
    line = _one_error_line(stigmer("get", "agents", hide_plugins=("local",)))
    assert line.endswith("install it with: pip install stigmer-backend-local")


def test_input_and_option_errors(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "both.yaml"
    path.write_text(WORKFLOW.replace("NAME", "hello") + "---\n" + AGENT.replace("NAME", "bot"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    assert "invalid JSON" in _one_error_line(stigmer("run", "hello", "--input", "{nope"))
    assert "--env 'NOEQUALS'" in _one_error_line(stigmer("run", "hello", "--env", "NOEQUALS"))
    assert "--message is for agents" in _one_error_line(stigmer("run", "hello", "--message", "hi"))
    assert "needs a message" in _one_error_line(stigmer("run", "bot"))
    assert stigmer("run").returncode == 2  # usage error
    assert stigmer("run", "hello", "-o", "xml").returncode == 2
