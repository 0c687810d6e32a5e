"""The CLI end to end on the embedded store: init, apply, run (Lite), logs, get, describe, delete."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_project_lifecycle(stigmer: StigmerCli, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    init = stigmer("init", str(project))
    assert init.returncode == 0, init.stderr

    applied = stigmer("apply", "-f", str(project))
    assert applied.returncode == 0, applied.stderr
    # dependency order: the environment before the agent that uses it, workflows last
    assert _lines(applied.stdout) == [
        "environment/dev created",
        "agent/helper created",
        "workflow/hello created",
    ]
    again = stigmer("apply", "-f", str(project))
    assert _lines(again.stdout) == [
        "environment/dev unchanged",
        "agent/helper unchanged",
        "workflow/hello unchanged",
    ]

    live = stigmer("run", "hello", "--input", '{"name": "Ada"}')
    assert live.returncode == 0, live.stderr
    assert "greet" in live.stdout  # the task as it started and finished
    assert '"greeting": "Hello, Ada!"' in live.stdout
    assert "succeeded" in live.stderr

    result = stigmer("run", "hello", "--input", '{"name": "Bob"}', "-o", "json")
    assert result.returncode == 0, result.stderr
    execution = json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout
    assert execution["phase"] == "SUCCEEDED"
    assert execution["output"] == {"greeting": "Hello, Bob!"}
    assert execution["error"] is None
    assert execution["kind"] == "WorkflowExecution"
    assert execution["target"] == {"kind": "Workflow", "name": "hello"}
    assert execution["id"].startswith("wex_")
    assert execution["createdAt"] and execution["finishedAt"]
    assert set(execution["usage"]) == {
        "inputTokens",
        "outputTokens",
        "requests",
        "toolCalls",
        "costUsd",
        "costUnknown",
        "byRequest",
    }

    ex_id = execution["id"]
    same = stigmer("execution", "get", ex_id, "-o", "json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout) == execution

    logs = stigmer("execution", "logs", ex_id)
    assert logs.returncode == 0, logs.stderr
    assert "greet" in logs.stdout and "phase SUCCEEDED" in logs.stdout
    events = [json.loads(line) for line in _lines(stigmer("execution", "logs", ex_id, "-o", "json").stdout)]
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "phase" and events[-1]["phase"] == "SUCCEEDED"
    followed = stigmer("execution", "logs", "-f", ex_id)
    assert followed.returncode == 0 and "phase SUCCEEDED" in followed.stdout

    listed = json.loads(stigmer("execution", "list", "-o", "json").stdout)
    assert [e["id"] for e in listed][:1] == [ex_id]  # newest first
    assert len(listed) == 2
    table = stigmer("get", "ex")
    assert ex_id in table.stdout and "SUCCEEDED" in table.stdout

    workflows = json.loads(stigmer("get", "workflows", "-o", "json").stdout)
    assert [w["metadata"]["name"] for w in workflows] == ["hello"]
    one = json.loads(stigmer("get", "wf", "hello", "-o", "json").stdout)
    assert one["kind"] == "Workflow" and one["metadata"]["version"] == 1
    yaml_out = stigmer("get", "agent", "helper", "-o", "yaml").stdout
    assert "kind: Agent" in yaml_out and "gpt-4o-mini" in yaml_out
    agents_table = stigmer("get", "agents").stdout
    assert _lines(agents_table)[0].split() == ["NAME", "VERSION", "MODEL", "AGE"]
    assert "openai/gpt-4o-mini" in agents_table

    described = stigmer("describe", "workflow", "hello")
    assert described.returncode == 0, described.stderr
    assert "recent executions:" in described.stdout and ex_id in described.stdout
    described_json = json.loads(stigmer("describe", "wf", "hello", "-o", "json").stdout)
    assert described_json["recentExecutions"][0]["id"] == ex_id

    deleted = stigmer("delete", "-f", str(project))
    assert deleted.returncode == 0, deleted.stderr
    assert _lines(deleted.stdout) == [
        "workflow/hello deleted",
        "agent/helper deleted",
        "environment/dev deleted",
    ]
    empty = stigmer("get", "workflows", "-o", "json")
    assert json.loads(empty.stdout) == []


def test_update_and_dry_run_diff(stigmer: StigmerCli, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec: {instructions: Be brief., model: {provider: openai, name: gpt-4o-mini}}\n"
    )
    assert stigmer("apply", "-f", str(path)).stdout.strip() == "agent/bot created"
    path.write_text(path.read_text().replace("Be brief.", "Be thorough."))
    dry = stigmer("apply", "-f", str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "agent/bot would be updated (dry run)" in dry.stdout
    assert "-  instructions: Be brief." in dry.stdout
    assert "+  instructions: Be thorough." in dry.stdout
    # nothing was written
    stored = json.loads(stigmer("get", "agent", "bot", "-o", "json").stdout)
    assert stored["spec"]["instructions"] == "Be brief."
    assert stored["metadata"]["version"] == 1
    applied = stigmer("apply", "-f", str(path), "-o", "json")
    assert json.loads(applied.stdout)[0] | {"id": ""} == {
        "kind": "Agent",
        "name": "bot",
        "id": "",
        "version": 2,
        "action": "updated",
        "dryRun": False,
    }
    new = tmp_path / "new.yaml"
    new.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Environment\nmetadata: {name: prod}\nspec: {variables: {A: '1'}}\n"
    )
    created = stigmer("apply", "-f", str(new), "--dry-run")
    assert "environment/prod would be created (dry run)" in created.stdout
    assert "+kind: Environment" in created.stdout
    assert json.loads(stigmer("get", "env", "-o", "json").stdout) == []


def test_apply_from_stdin_and_delete_by_name(stigmer: StigmerCli) -> None:
    doc = "apiVersion: stigmer.ai/v1\nkind: Environment\nmetadata: {name: staging}\nspec: {variables: {REGION: eu}}\n"
    result = stigmer("apply", "-f", "-", input=doc)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "environment/staging created"
    missing = stigmer("delete", "env", "stagign")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no environment named 'stagign'; did you mean 'staging'?"
    assert stigmer("delete", "env", "stagign", "--ignore-not-found").returncode == 0
    assert stigmer("delete", "environment", "staging").stdout.strip() == "environment/staging deleted"


def test_skill_directory_is_packed_as_an_artifact(stigmer: StigmerCli, tmp_path: Path) -> None:
    skill_dir = tmp_path / "manifests" / "skills" / "faq"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text("# Acme FAQ\nAnswer from these notes.\n")
    (skill_dir / "notes.txt").write_text("Shipping takes 3 days.\n")
    manifest = tmp_path / "manifests" / "skill.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: acme-faq}\nspec: {path: ./skills/faq}\n"
    )
    created = stigmer("apply", "-f", str(manifest))
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "skill/acme-faq created"
    skill = json.loads(stigmer("get", "skill", "acme-faq", "-o", "json").stdout)
    key = skill["spec"]["artifact"]
    assert key.startswith("sha256:") and len(key) == 71
    # same directory, same bytes, same key: nothing changes
    assert stigmer("apply", "-f", str(manifest)).stdout.strip() == "skill/acme-faq unchanged"
    (skill_dir / "notes.txt").write_text("Shipping takes 2 days.\n")
    dry = stigmer("apply", "-f", str(manifest), "--dry-run")
    assert "skill/acme-faq would be updated (dry run)" in dry.stdout
    assert f"-  artifact: {key}" in dry.stdout
    updated = stigmer("apply", "-f", str(manifest))
    assert updated.stdout.strip() == "skill/acme-faq updated"
    new_key = json.loads(stigmer("get", "skill", "acme-faq", "-o", "json").stdout)["spec"]["artifact"]
    assert new_key != key
    (skill_dir / "SKILL.md").unlink()
    broken = stigmer("apply", "-f", str(manifest))
    assert broken.returncode == 1
    assert broken.stderr.startswith(f"error: {manifest}:1: spec.path: skill directory")
    assert "has no SKILL.md" in broken.stderr
