"""The SDK side of agent workspaces, in Lite: an Agent builder with tools and a seed folder,
``run(..., attachments=...)``, the plan on the execution handle, ``execution_files`` and
``export_session``."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.core import FailedPrecondition, NotFound
from stigmer.sdk import Agent, Stigmer
from stigmer.testing import ScriptedLLM, call, text


def test_the_sdk_runs_an_agent_with_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("STIGMER_HOME", str(home))
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "README.md").write_text("seeded\n")
    report = tmp_path / "report.txt"
    report.write_text("from a path\n")
    with ScriptedLLM() as llm, Stigmer(home=home) as client:
        agent = Agent(
            "worker",
            instructions="Work.",
            model={"provider": "openai-compatible", "name": "m", "baseUrl": llm.openai_base_url},
            tools=["files", {"name": "todos", "allow": ["write_todos"]}],
            workspace={"path": str(seed)},
        )
        client.apply(agent)
        llm.add(
            call("write_todos", todos=[{"content": "read both", "status": "completed"}]),
            call("read_file", path="attachments/notes.md"),
            call("write_file", path="out.txt", content="done\n"),
            text("ok"),
        )
        run = client.run(
            "worker", message="go", session="s1", attachments=[report, ("notes.md", b"# from bytes\n")]
        )
        done = run.wait(60)
        assert run.phase == "SUCCEEDED", done.status.error
        assert run.todos == [{"id": "1", "content": "read both", "status": "completed"}]
        tool_results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
        assert "# from bytes\n" in tool_results
        files = client.execution_files(run.id)
        assert files == {
            "README.md": b"seeded\n",
            "attachments/notes.md": b"# from bytes\n",
            "attachments/report.txt": b"from a path\n",
            "out.txt": b"done\n",
        }
        written = client.export_session("s1", tmp_path / "out")
        assert sorted(written) == sorted(files)
        assert (tmp_path / "out" / "out.txt").read_text() == "done\n"
        with pytest.raises(FailedPrecondition, match="no saved workspace"):
            plain = Agent("plain", instructions="hi", model={"provider": "openai-compatible", "name": "m",
                                                              "baseUrl": llm.openai_base_url})  # fmt: skip
            client.apply(plain)
            llm.add(text("hi"))
            other = client.run("plain", message="hi")
            other.wait(60)
            client.execution_files(other.id)
        with pytest.raises(NotFound):
            client.export_session("no-such-session", tmp_path / "none")
        with pytest.raises(Exception, match="no such file"):
            client.run("worker", message="x", attachments=[tmp_path / "missing.txt"])
