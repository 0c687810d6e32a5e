"""Local -> cloud in one move: a project applied from Python to the local store is exported with
`stigmer export --all -o DIR`, applied to a real `stigmer server` with `stigmer apply -f DIR
--context NAME`, and its workflow runs there (with a secret set only on the server)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from stigmer.sdk import Stigmer
from stigmer.server import ServerProcess

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]

APP = """
from stigmer.sdk import Agent, Environment, Set, Skill, Workflow, secret

faq = Skill("faq", path="skills/faq", description="What support says")
prod = Environment("prod", variables={"REGION": "eu-west-1"}, secrets=["GREETING_KEY"])
helper = Agent("helper", instructions="Be brief.", model="ollama:llama3.2", skills=[faq], environments=[prod])
hello = Workflow(
    "hello",
    namespace="apps",
    secrets=["GREETING_KEY"],
    do={
        "greet": Set({"greeting": '${ "Hello, " + .name + "!" }'}),
        "sign": Set({"greeting": "${ .greeting }", "keyLength": "${ $secrets.GREETING_KEY | length }"}),
    },
)
"""


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_project_moves_from_the_local_store_to_a_server(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "skills" / "faq").mkdir(parents=True)
    (project / "skills" / "faq" / "SKILL.md").write_text("# FAQ\nRefunds take 5 days.\n")
    (project / "app.py").write_text(APP)

    # 1. Locally: apply the Python file, set the secret, run.
    applied = _ok(stigmer("apply", "-f", str(project / "app.py")))
    assert applied.split() == [
        "skill/faq",
        "created",
        "environment/prod",
        "created",
        "agent/helper",
        "created",
        "workflow/hello",
        "created",
    ]
    _ok(stigmer("secret", "set", "GREETING_KEY", input="local-key-1\n"))
    local_run = json.loads(_ok(stigmer("run", "hello", "--input", '{"name": "laptop"}', "-o", "json")))
    assert local_run["output"] == {"greeting": "Hello, laptop!", "keyLength": 11}

    # 2. Export everything.
    out = tmp_path / "export"
    summary = _ok(stigmer("export", "--all", "-o", str(out)))
    assert "exported 4 resources" in summary and "GREETING_KEY" in summary
    assert "GREETING_KEY" in (out / "SECRETS.md").read_text()
    exported = "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "local-key-1" not in exported and "wfl_" not in exported and "status" not in exported
    assert "Refunds take 5 days." in (out / ".skills" / "faq" / "SKILL.md").read_text()
    one = _ok(stigmer("export", "workflow", "hello"))
    assert one.startswith("apiVersion: stigmer.ai/v1\nkind: Workflow\n") and "id:" not in one

    # 3. A server elsewhere; log in to it, but keep the local context current.
    server_home = tmp_path / "server-home"
    server = ServerProcess(home=server_home, database_url=f"sqlite:///{server_home / 'stigmer.db'}")
    server.start()
    try:
        token = (server_home / "tokens" / "admin").read_text().strip()
        _ok(stigmer("login", "--endpoint", server.endpoint, "--token", token, "--name", "cloud"))
        _ok(stigmer("context", "use", "local"))

        # 4. Recreate the project there, give it its secret, run it there.
        moved = _ok(stigmer("apply", "-f", str(out), "--context", "cloud"))
        assert moved.split().count("created") == 4
        assert _ok(stigmer("apply", "-f", str(out), "--context", "cloud")).split().count("unchanged") == 4
        _ok(stigmer("--context", "cloud", "secret", "set", "GREETING_KEY", input="server-key\n"))
        remote = json.loads(
            _ok(stigmer("--context", "cloud", "run", "hello", "--input", '{"name": "cloud"}', "-o", "json"))
        )
        assert remote["output"] == {"greeting": "Hello, cloud!", "keyLength": 10}
        assert remote["id"] != local_run["id"]

        # The same through the SDK, by context name (token from `stigmer login`).
        with Stigmer(home=stigmer_home, context="cloud") as cloud:
            assert not cloud.local
            run = cloud.run("hello", input={"name": "sdk"})
            assert [e.type for e in run][-1] == "phase"
            assert run.result(timeout=60) == {"greeting": "Hello, sdk!", "keyLength": 10}
            skill = cloud.get("skill", "faq")
            assert skill.spec.artifact.startswith("sha256:")  # type: ignore[attr-defined]
            assert cloud.get("agent", "helper").spec.environments == ["prod"]  # type: ignore[attr-defined]
        with Stigmer(home=stigmer_home) as local:  # the current context stayed local
            assert local.local and len(local.list("workflow")) == 1
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.log_path.read_text()
