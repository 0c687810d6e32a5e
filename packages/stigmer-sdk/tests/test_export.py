"""Export: manifests without status or ids, skills unpacked, secrets listed by name; re-applied
elsewhere they recreate the same resources."""

from __future__ import annotations

from pathlib import Path

from stigmer.core import load_manifests
from stigmer.sdk import Agent, Environment, McpServer, Set, Skill, Stigmer, Workflow, secret, to_python


def _project(tmp_path: Path) -> list[object]:
    skill_dir = tmp_path / "src-skills" / "faq"
    (skill_dir / "refs").mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text("# FAQ\n")
    (skill_dir / "refs" / "prices.yaml").write_text("basic: 10\n")  # not a manifest
    github = McpServer("github", command="gh-mcp", env={"TOKEN": secret("GH_TOKEN")}, secrets=["GH_TOKEN"])
    return [
        Skill("faq", path=skill_dir),
        Environment("prod", variables={"REGION": "eu"}, secrets=["GH_TOKEN", "DB_PASSWORD"]),
        github,
        Agent(
            "bot", instructions="hi", model="openai:gpt-4o-mini", mcp_servers=[github], environments=["prod"]
        ),
        Workflow("wf", secrets=["API_KEY"], do={"a": Set({"k": secret("API_KEY")})}),
    ]


def test_export_writes_manifests_skills_and_the_secret_list(tmp_path: Path, client: Stigmer) -> None:
    client.apply(_project(tmp_path))
    client.set_secret("GH_TOKEN", "ghp-very-secret-value")
    out = tmp_path / "export"
    result = client.export(out)
    assert len(result.manifests) == 5
    for manifest in result.manifests:
        assert "status" not in manifest
        assert set(manifest["metadata"]) <= {"name", "labels", "annotations"}
    assert result.secrets == {
        "API_KEY": ["Workflow/wf"],
        "DB_PASSWORD": ["Environment/prod"],
        "GH_TOKEN": ["McpServer/github", "Environment/prod"],
    }
    secrets_md = (out / "SECRETS.md").read_text()
    assert (
        "stigmer --context TARGET secret set GH_TOKEN" in secrets_md
        and "| API_KEY | Workflow/wf |" in secrets_md
    )
    every_file = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "ghp-very-secret-value" not in every_file
    assert (out / ".skills" / "faq" / "refs" / "prices.yaml").read_text() == "basic: 10\n"
    assert {r.kind for r in load_manifests([out])} == {
        "Skill",
        "Environment",
        "McpServer",
        "Agent",
        "Workflow",
    }


def test_exported_directory_recreates_the_same_resources_elsewhere(tmp_path: Path, client: Stigmer) -> None:
    client.apply(_project(tmp_path))
    client.export(tmp_path / "export")
    with Stigmer(home=tmp_path / "elsewhere") as other:
        applied = other.apply(tmp_path / "export")
        assert [a.action for a in applied].count("created") == 5
        for kind in ("skill", "environment", "mcpserver", "agent", "workflow"):
            [before] = client.list(kind)
            [after] = other.list(kind)
            if kind == "skill":
                assert after.spec.artifact == before.spec.artifact  # type: ignore[attr-defined]
                continue
            assert after.spec == before.spec, kind  # type: ignore[attr-defined]
            assert after.metadata.id != before.metadata.id  # type: ignore[attr-defined]


def test_export_one_resource_as_yaml_and_as_python(tmp_path: Path, client: Stigmer) -> None:
    client.apply(_project(tmp_path))
    one = client.export(kind="agent", name="bot")
    assert one.yaml.startswith("apiVersion: stigmer.ai/v1\nkind: Agent\n")
    assert "id:" not in one.yaml and one.files == []
    code = to_python(one.manifests[0])
    assert code.startswith("from stigmer.sdk import Agent, McpUsage") or "Agent(" in code
    namespace: dict[str, object] = {}
    exec(compile(code, "<generated>", "exec"), namespace)
    assert namespace["bot"].to_message().spec == client.get("agent", "bot").spec  # type: ignore[attr-defined]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def test_exports_are_byte_identical_across_processes_and_re_applies(
    tmp_path: Path, home: Path, client: Stigmer
) -> None:
    """Issue 16, defect 6: a committed export must not churn (Struct maps have no order)."""
    import subprocess
    import sys

    wide = {f"key{i}": i for i in (7, 3, 9, 1, 5, 8, 2, 6, 4)}
    project = [*_project(tmp_path), Workflow("wide", do={"a": Set(wide), "b": Set({"z": 1, "a": 2, "m": 3})})]
    client.apply(project)
    first = client.export(tmp_path / "first")
    script = "import sys; from stigmer.sdk import Stigmer; Stigmer(home=sys.argv[1]).export(sys.argv[2])"
    for run in ("second", "third"):
        subprocess.run([sys.executable, "-c", script, str(home), str(tmp_path / run)], check=True)
    with Stigmer(home=tmp_path / "elsewhere") as other:  # re-applied from the export, exported again
        other.apply(tmp_path / "first")
        other.export(tmp_path / "fourth")
    expected = _files(tmp_path / "first")
    for run in ("second", "third", "fourth"):
        assert _files(tmp_path / run) == expected, run
    wf = next(m for m in first.manifests if m["metadata"]["name"] == "wide")
    assert list(wf) == ["apiVersion", "kind", "metadata", "spec"]
    assert next(iter(wf["spec"])) == "document"
    assert list(wf["spec"]["do"][0]["a"]["set"]) == sorted(wide)
    text = (tmp_path / "first" / "workflows" / "wide.yaml").read_text()
    assert text.index("\n  document:\n") < text.index("\n  do:\n")


def test_an_agents_workspace_seed_is_exported_as_a_folder(tmp_path: Path, client: Stigmer) -> None:
    seed = tmp_path / "seed"
    (seed / "src").mkdir(parents=True)
    (seed / "src" / "app.py").write_text("print('hi')\n")
    client.apply(Agent("coder", instructions="hi", tools=["files"], workspace={"path": str(seed)}))
    before = client.get("agent", "coder").spec.workspace  # type: ignore[attr-defined]
    assert before.artifact.startswith("sha256:")
    out = tmp_path / "export"
    client.export(out)
    assert (out / ".workspaces" / "coder" / "src" / "app.py").read_text() == "print('hi')\n"
    with Stigmer(home=tmp_path / "elsewhere") as other:
        other.apply(out)
        after = other.get("agent", "coder").spec.workspace  # type: ignore[attr-defined]
    assert after.artifact == before.artifact  # the same files, the same content address
    assert after.path == "../.workspaces/coder"


def test_export_lists_a_triggers_webhook_key_among_the_secrets(tmp_path: Path, client: Stigmer) -> None:
    client.apply(Workflow("wf", do={"a": Set({"k": 1})}))
    client.apply(
        {
            "apiVersion": "stigmer.ai/v1",
            "kind": "Trigger",
            "metadata": {"name": "hook"},
            "spec": {"target": {"kind": "Workflow", "name": "wf"}, "secret": "HOOK_KEY"},
        }
    )
    result = client.export(tmp_path / "export")
    assert result.secrets == {"HOOK_KEY": ["Trigger/hook"]}
    assert (tmp_path / "export" / "triggers" / "hook.yaml").exists()
