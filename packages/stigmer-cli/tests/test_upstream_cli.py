"""Upstream Stigmer users' files and habits: `apply --dry-run` on a folder of upstream files,
apply and run a converted workflow in Lite against a local HTTP stand-in, `convert`,
`export --format upstream`, and the verbs and flags upstream users type."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import HttpWorld, Request, Response, json_response

HERE = Path(__file__).parent / "upstream"
Cli = Callable[..., Any]


def orders(request: Request) -> Response:
    if request.path == "/orders":
        return json_response([{"id": 1}, {"id": 2}, {"id": 3}])
    return json_response({"ok": True})


@pytest.fixture
def world() -> Any:
    with HttpWorld(orders) as w:
        yield w


@pytest.fixture
def folder(tmp_path: Path, world: HttpWorld) -> Path:
    """The fixture folder with the stand-in's URL, and without the file that cannot apply."""
    target = tmp_path / "upstream"
    shutil.copytree(HERE, target)
    for file in target.glob("*.yaml"):
        file.write_text(file.read_text().replace("http://127.0.0.1:9", world.url))
    (target / "think.yaml").unlink()
    return target


def test_dry_run_reports_every_file(cli: Cli) -> None:
    result = cli("apply", "--dry-run", "-f", str(HERE))
    assert result.code == 1  # think.yaml cannot be converted
    lines = result.out.split("per file:\n", 1)[1].splitlines()
    by_file = {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1] for line in lines}
    assert set(by_file) == {
        str(HERE / f)
        for f in (
            "agent.yaml",
            "environment.yaml",
            "every-kind.yaml",
            "mcpserver.yaml",
            "orders.yaml",
            "runner-doc.yaml",
            "skill.yaml",
            "think.yaml",
        )
    }
    think = by_file[str(HERE / "think.yaml")]
    assert think.startswith(
        f"cannot apply: {HERE / 'think.yaml'}:9: spec.tasks[1].kind: task kind llm_call cannot be converted"
    )
    agent = by_file[str(HERE / "agent.yaml")]
    assert agent.startswith(
        "applies (agent/helper would be created); Agent/helper read as agentic.stigmer.ai/v1; mapped "
    )
    assert "config → model" in agent and "dropped metadata.org, skill_refs.org, icon_url" in agent
    assert by_file[str(HERE / "skill.yaml")].startswith("applies (skill/faq would be created); ")
    assert "SKILL.md description → spec.description" in by_file[str(HERE / "skill.yaml")]
    assert "document.description → document.summary" in by_file[str(HERE / "runner-doc.yaml")]
    assert "with.timeout_seconds → timeout.after.seconds" in by_file[str(HERE / "runner-doc.yaml")]
    assert by_file[str(HERE / "every-kind.yaml")].startswith("applies (workflow/every-kind would be created)")
    # one notice line per mapped file, and the refusal, on stderr
    assert sum(1 for line in result.err.splitlines() if line.startswith("notice: ")) == 7
    assert f"error: {HERE / 'think.yaml'}:9: spec.tasks[1].kind:" in result.err
    # nothing was stored
    assert json.loads(cli("get", "all", "-o", "json").out) in ([], {})


def test_dry_run_json_lists_refusals(cli: Cli) -> None:
    result = cli("apply", "--dry-run", "-f", str(HERE), "-o", "json")
    data = json.loads(result.out)
    refused = [r for r in data if r["action"] == "refused"]
    assert [r["file"] for r in refused] == [str(HERE / "think.yaml")]
    mapped = {r["name"]: r for r in data if r.get("notice")}
    assert mapped["helper"]["action"] == "created" and mapped["helper"]["dryRun"] is True


def test_apply_and_run_a_converted_workflow(cli: Cli, folder: Path, world: HttpWorld) -> None:
    applied = cli("apply", "-f", str(folder))
    assert applied.code == 0, applied.err
    assert "workflow/orders created" in applied.out
    assert "notice: " in applied.err
    stored = json.loads(cli("get", "workflow/orders", "-o", "json").out)
    assert stored["spec"]["document"]["metadata"] == {"stigmer.ai/dialect": "zigflow"}
    assert [next(iter(t)) for t in stored["spec"]["do"]] == ["init", "fetch", "done"]

    run = cli("run", "workflow", "orders", "-o", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["output"] == {"count": 3}
    assert world.count("/orders") == 1


def test_json_gives_events_as_ndjson(cli: Cli, folder: Path) -> None:
    assert cli("apply", "-f", str(folder)).code == 0
    result = cli("run", "workflow", "orders", "--json")
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [e["type"] for e in lines[:2]] == ["phase", "task.started"]
    assert {"task.completed"} <= {e.get("type") for e in lines}
    assert lines[-1]["phase"] == "SUCCEEDED" and lines[-1]["output"] == {"count": 3}
    assert set(lines[-1]) >= {"id", "phase", "output", "error", "session"}


def test_convert_prints_the_document(cli: Cli) -> None:
    result = cli("convert", "-f", str(HERE / "orders.yaml"), "-o", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["apiVersion"] == "stigmer.ai/v1" and data["kind"] == "Workflow"
    assert data["spec"]["do"][1]["fetch"] == {
        "call": "http",
        "timeout": {"after": {"seconds": 5}},
        "with": {"endpoint": '${ $data.base + "/orders" }', "method": "get"},
    }
    assert "status" not in data
    bad = cli("convert", "-f", str(HERE / "think.yaml"))
    assert bad.code == 1
    assert bad.err.strip().startswith(
        f"error: {HERE / 'think.yaml'}:9: spec.tasks[1].kind: task kind llm_call"
    )


def test_export_upstream_writes_the_reverse(cli: Cli, folder: Path, tmp_path: Path) -> None:
    assert cli("apply", "-f", str(folder)).code == 0
    result = cli("export", "agent", "helper", "--format", "upstream")
    assert result.code == 0, result.err
    assert "apiVersion: agentic.stigmer.ai/v1" in result.out
    assert "mcpServerUsages:" in result.out and "skillRefs:" in result.out
    out = tmp_path / "exported"
    assert cli("export", "--all", "--format", "upstream", "-o", str(out)).code == 0
    skill = (out / "skills" / "faq.yaml").read_text()
    assert "skillMd: " in skill and "Orders FAQ" in skill
    env = (out / "environments" / "shop.yaml").read_text()
    assert "SHOP_TOKEN:\n      isSecret: true" in env
    # what export writes applies again (here: a fresh context would; the same one: unchanged)
    again = cli("apply", "-f", str(out / "agents"))
    assert again.code == 0, again.err
    assert "agent/helper unchanged" in again.out
    flow = (out / "workflows" / "orders.yaml").read_text()
    assert "apiVersion: agentic.stigmer.ai/v1" in flow and "kind: http_call" in flow
    whole = cli("apply", "--dry-run", "-f", str(out))  # every exported file reads back unchanged
    assert whole.code == 0, whole.err
    summary = whole.out.split("per file:\n", 1)[1]
    assert "cannot" not in summary and summary.count("would be unchanged") == 6, summary
    # upstream keeps a skill as its SKILL.md text: the stored directory artifact becomes that text
    assert "skill/faq would be updated" in summary
    wrong = cli("export", "agent", "helper", "--format", "go")
    assert wrong.code == 1 and "unknown --format 'go'" in wrong.err


def test_verbs_upstream_users_type(cli: Cli, folder: Path, tmp_path: Path) -> None:
    assert cli("apply", "-f", str(folder)).code == 0
    listed = cli("list", "workflow", "-o", "json")
    assert {w["metadata"]["name"] for w in json.loads(listed.out)} == {"orders", "every-kind", "ping"}
    one = cli("get", "agent/helper", "-o", "json")
    assert json.loads(one.out)["metadata"]["name"] == "helper"
    assert cli("get", "agent/", "-o", "json").code == 1

    env_file = tmp_path / "run.env"
    env_file.write_text("# variables\nREGION=eu-west-1\n")
    ran = cli("run", "workflow", "orders", "--env-file", str(env_file), "-o", "json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["env"] == {"REGION": "eu-west-1"}

    model = cli("run", "workflow", "orders", "--model", "gpt-5")
    assert model.code == 1
    assert model.err.startswith("error: --model is for agents")
    too_many = cli("run", "workflow", "orders", "extra")
    assert too_many.code == 1 and "too many arguments" in too_many.err

    pause = cli("execution", "pause", "wex_0123")
    assert pause.code == 1
    assert (
        pause.err.count("\n") == 1
        and "cannot be paused here: `stigmer execution cancel wex_0123`" in pause.err
    )

    no_type = cli("execution", "send-event", "wex_0123")
    assert no_type.code == 1 and "--id SIGNAL" in no_type.err

    assert cli("resume").err.strip() == "error: no sessions yet: `stigmer run agent NAME MESSAGE` starts one"


def test_skill_push_reads_the_front_matter(cli: Cli) -> None:
    pushed = cli("skill", "push", str(HERE / "skills" / "faq"), "--tag", "v7")
    assert pushed.code == 0, pushed.err
    assert pushed.out.strip() == "skill/faq created (tag v7)"
    data = json.loads(cli("get", "skill", "faq", "-o", "json").out)
    assert data["spec"]["description"] == "Answers about orders."
    assert data["metadata"]["annotations"] == {
        "stigmer.ai/skill-tag": "v7",
        "stigmer.ai/skill-version": "1.4.0",
    }
    assert (
        cli("skill", "push", str(HERE / "skills" / "faq"), "--tag", "v7").out.strip()
        == "skill/faq unchanged (tag v7)"
    )
    missing = cli("skill", "push", str(HERE))
    assert missing.code == 1 and "no SKILL.md here" in missing.err
