"""An agent's workspace from the command line, in Lite: `apply` packs `workspace.path`,
`agent execute --attach` puts files in, the plan streams live, `execution files` lists and prints
what a turn saved, and `session export` writes the session's files out."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stigmer.testing import ScriptedLLM, call, text

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def agent(stigmer: StigmerCli, llm: ScriptedLLM, tmp_path: Path) -> str:
    (tmp_path / "seed" / "docs").mkdir(parents=True)
    (tmp_path / "seed" / "docs" / "guide.md").write_text("# Guide\nSeeded.\n")
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: coder}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.base_url!r}}}\n"
        "  workspace: {path: ./seed}\n"
        "  tools: [files, todos]\n"
    )
    result = stigmer("apply", "-f", str(manifest))
    assert result.returncode == 0, result.stderr
    shown = json.loads(stigmer("get", "agent", "coder", "-o", "json").stdout)
    assert shown["spec"]["workspace"]["artifact"].startswith("sha256:")
    return "coder"


def test_attach_files_export(stigmer: StigmerCli, llm: ScriptedLLM, agent: str, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("attached words\n")
    llm.add(
        call("write_todos", todos=[{"content": "read the note", "status": "in_progress"}]),
        call("read_file", path="attachments/note.txt"),
        call("write_file", path="out/summary.txt", content="summary\n"),
        call("write_todos", todos=[{"content": "read the note", "status": "completed"}]),
        text("Done."),
    )
    run = stigmer(
        "agent", "execute", agent, "summarise", "--attach", str(note), "--session", "s1", "-o", "json"
    )
    assert run.returncode == 0, run.stderr
    ex = json.loads(run.stdout)
    assert ex["phase"] == "SUCCEEDED"
    assert "attachments/note.txt" in llm.requests[0]["messages"][0]["content"]
    tool_results = [m["content"] for m in llm.requests[2]["messages"] if m["role"] == "tool"]
    assert "attached words\n" in tool_results

    listing = stigmer("execution", "files", ex["id"], "-o", "json")
    assert listing.returncode == 0, listing.stderr
    assert [f["path"] for f in json.loads(listing.stdout)] == [
        "attachments/note.txt",
        "docs/guide.md",
        "out/summary.txt",
    ]
    shown = stigmer("execution", "files", ex["id"], "out/summary.txt")
    assert shown.returncode == 0 and shown.stdout == "summary\n"
    missing = stigmer("execution", "files", ex["id"], "nope.txt")
    assert missing.returncode == 1 and "has no file nope.txt" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    out = tmp_path / "exported"
    exported = stigmer("session", "export", "s1", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert (out / "out" / "summary.txt").read_text() == "summary\n"
    assert (out / "docs" / "guide.md").read_text() == "# Guide\nSeeded.\n"


def test_the_plan_streams_live(stigmer: StigmerCli, llm: ScriptedLLM, agent: str) -> None:
    llm.add(
        call("write_todos", todos=[{"content": "look", "status": "completed"}, {"content": "fix"}]),
        text("ok"),
    )
    run = stigmer("agent", "execute", agent, "plan it")
    assert run.returncode == 0, run.stderr
    assert "plan (1/2 done)" in run.stdout
    assert ("☑ look" in run.stdout or "[x] look" in run.stdout) and (
        "☐ fix" in run.stdout or "[ ] fix" in run.stdout
    )


def test_bad_attachment_is_one_line(stigmer: StigmerCli, agent: str, tmp_path: Path) -> None:
    result = stigmer("agent", "execute", agent, "hi", "--attach", str(tmp_path / "missing.png"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --attach {tmp_path / 'missing.png'}: no such file"


def test_files_of_an_execution_without_a_workspace(
    stigmer: StigmerCli, llm: ScriptedLLM, tmp_path: Path
) -> None:
    manifest = tmp_path / "plain.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: plain}\n"
        f"spec: {{instructions: hi, model: {{provider: openai-compatible, name: m, baseUrl: {llm.base_url!r}}}}}\n"
    )
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    llm.add(text("hello"))
    ex = json.loads(stigmer("agent", "execute", "plain", "hi", "-o", "json").stdout)
    result = stigmer("execution", "files", ex["id"])
    assert result.returncode == 1
    assert "has no saved workspace" in result.stderr


def test_a_workflow_call_agent_takes_attachments(
    stigmer: StigmerCli, llm: ScriptedLLM, agent: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "wf.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: review}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: demo, name: review, version: 1.0.0}\n"
        "  do:\n    - ask:\n        call: agent\n        with:\n"
        f"          agent: {agent}\n          message: Read the data.\n"
        "          attachments:\n"
        "            - {name: data.csv, content: '${ .rows }'}\n"
        "            - {name: logo.bin, content: aGVsbG8=, encoding: base64}\n"
    )
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    llm.add(
        call("read_file", path="attachments/data.csv"),
        call("read_file", path="attachments/logo.bin"),
        text("Read."),
    )
    result = stigmer("run", "review", "--input", '{"rows": "a,b\\n1,2\\n"}', "-o", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output"] == "Read."
    tool_results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_results == ["a,b\n1,2\n", "hello"]


def test_apply_refuses_unknown_tools_with_their_lines(stigmer: StigmerCli, tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bad}\n"
        "spec:\n  instructions: hi\n  tools:\n    - files\n    - filez\n"
        "  subAgents:\n    - {name: s, tools: [{name: shell, allow: [rm]}]}\n"
    )
    result = stigmer("apply", "-f", str(manifest))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {manifest}:8: spec.tools[1].name: unknown built-in tool 'filez' (did you mean files?); "
        "built-in tools: files, shell, fetch, todos",
        f"error: {manifest}:10: spec.subAgents[0].tools[0]: the shell tool has no function rm; it has run_command",
    ]
    assert stigmer("get", "agent", "bad").returncode == 1  # nothing stored
