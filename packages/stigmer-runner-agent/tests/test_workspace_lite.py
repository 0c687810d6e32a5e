"""The workspace of a Lite run: the files tools work in it, the next turn of the session sees what
the previous one wrote, it is seeded from ``workspace.path`` / ``workspace.git``, bounded, and the
tools cannot leave it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from stigmer.core import TAR_MEDIA_TYPE, Backend, pack_tree, read_tree
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import apply, data, events, openai_agent, start

P = execution_pb2


async def _session(backend: Backend, agent: str = "bot") -> str:
    made = await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Session\nmetadata: {name: s1}\n"
        f"spec: {{agent: {{kind: Agent, name: {agent}}}}}\n",
    )
    return str(made[0].session.metadata.id)


async def _files(backend: Backend, execution: execution_pb2.Execution) -> dict[str, bytes]:
    key = execution.status.workspace.artifact
    assert key.startswith("sha256:")
    blob = await backend.get_artifact(svc.GetArtifactRequest(key=key))
    return {path: content for path, (content, _x) in read_tree(blob.content).items()}


def _results(log: list[execution_pb2.ExecutionEvent]) -> list[str]:
    return [str(data(e)["result"]) for e in log if e.type == "tool.result"]


async def test_turn_two_reads_the_file_turn_one_wrote(
    backend: Backend, llm: ScriptedLLM, _home: Path
) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [files]\n"))
    session = await _session(backend)

    llm.add(call("write_file", path="notes/plan.txt", content="step one\nstep two\n"), text("Written."))
    first = await start(backend, "bot", "write the plan", session_id=session)
    done = await AgentRunner().execute(backend, first)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert done.status.workspace.files == 1
    assert await _files(backend, done) == {"notes/plan.txt": b"step one\nstep two\n"}
    # The folder of a finished run is gone from the machine: the artifact holds its files.
    assert not (_home / "workspaces" / first).exists()

    llm.add(call("read_file", path="notes/plan.txt", start_line=2), text("It says step two."))
    second = await start(backend, "bot", "what is on line 2?", session_id=session)
    done2 = await AgentRunner().execute(backend, second)  # a fresh runner: nothing in memory
    assert done2.status.phase == P.PHASE_SUCCEEDED, done2.status.error
    assert _results(await events(backend, second)) == ["step two\n"]
    # The model was told about the workspace.
    assert "# Workspace" in llm.requests[0]["messages"][0]["content"]


async def test_a_run_outside_a_session_starts_empty(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [files]\n"))
    llm.add(call("write_file", path="a.txt", content="x"), text("ok"))
    await AgentRunner().execute(backend, await start(backend, "bot", "one"))
    llm.add(call("list_files"), text("ok"))
    second = await start(backend, "bot", "two")
    await AgentRunner().execute(backend, second)
    assert _results(await events(backend, second)) == ["no files match"]


async def test_files_tools_edit_list_grep(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [files]\n"))
    llm.add(
        call("write_file", path="src/app.py", content="def add(a, b):\n    return a - b\n"),
        call("edit_file", path="src/app.py", old_text="a - b", new_text="a + b"),
        call("edit_file", path="src/app.py", old_text="missing", new_text="x"),
        call("list_files", pattern="**/*.py"),
        call("grep", pattern="return"),
        call("read_file", path="src/nope.py"),
        text("done"),
    )
    eid = await start(backend, "bot", "fix it")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    results = _results(await events(backend, eid))
    assert results[1] == "replaced 1 occurrence(s) in src/app.py"
    assert results[2] == "error: the text to replace was not found in src/app.py"
    assert results[3] == "src/app.py"
    assert results[4] == "src/app.py:2:     return a + b"
    assert results[5].startswith("error: src/nope.py is not a file")
    assert (await _files(backend, done))["src/app.py"] == b"def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "sub/../../x", "link/secret", "link"])
async def test_files_cannot_leave_the_workspace(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path, path: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("top secret")
    # A repository whose checkout holds a link out of the workspace (a hostile seed).
    bare = _bare_repo(tmp_path, link=str(outside))
    await apply(
        backend, openai_agent(llm, extra=f"  tools: [files]\n  workspace: {{git: {{url: '{bare}'}}}}\n")
    )
    llm.add(call("read_file", path=path), call("write_file", path=path, content="pwned"), text("ok"))
    eid = await start(backend, "bot", "escape")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    results = _results(await events(backend, eid))
    assert len(results) == 2
    assert all(r.startswith("error:") and "workspace" in r for r in results), results
    if path.startswith("link"):
        assert "through a symbolic link" in results[0]
    assert (outside / "secret").read_text() == "top secret"
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (tmp_path / "escape.txt").exists()
    saved = await _files(backend, done)
    assert "link/secret" not in saved and "link" not in saved  # the link out is not saved either


async def test_seeded_from_a_folder_applied_as_an_artifact(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    seed = tmp_path / "repo"
    (seed / "docs").mkdir(parents=True)
    (seed / "docs" / "README.md").write_text("hello from the seed\n")
    packed = pack_tree(seed)
    meta = await backend.put_artifact(
        svc.PutArtifactRequest(content=packed.content, media_type=TAR_MEDIA_TYPE)
    )
    extra = f"  tools: [files]\n  workspace: {{path: ./repo, artifact: '{meta.key}'}}\n"
    await apply(backend, openai_agent(llm, extra=extra))
    llm.add(call("read_file", path="docs/README.md"), text("ok"))
    eid = await start(backend, "bot", "read")
    await AgentRunner().execute(backend, eid)
    assert _results(await events(backend, eid)) == ["hello from the seed\n"]


def _bare_repo(tmp_path: Path, link: str = "") -> Path:
    work, bare = tmp_path / "work", tmp_path / "repo.git"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}  # fmt: skip
    work.mkdir()
    (work / "VERSION").write_text("1\n")
    if link:
        os.symlink(link, work / "link")
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"], ["tag", "v1"]):
        subprocess.run(["git", *args], cwd=work, check=True, env=env)
    (work / "VERSION").write_text("2\n")
    subprocess.run(["git", "commit", "-qam", "two"], cwd=work, check=True, env=env)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


@pytest.mark.parametrize(("ref", "expected"), [("", "2\n"), ("v1", "1\n")])
async def test_seeded_from_a_git_repository(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path, ref: str, expected: str
) -> None:
    bare = _bare_repo(tmp_path)
    git = f"{{url: '{bare}'" + (f", ref: {ref}" if ref else "") + "}"
    await apply(backend, openai_agent(llm, extra=f"  tools: [files]\n  workspace: {{git: {git}}}\n"))
    llm.add(call("read_file", path="VERSION"), text("ok"))
    eid = await start(backend, "bot", "version?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert _results(await events(backend, eid)) == [expected]
    assert ".git/HEAD" in await _files(backend, done)


async def test_a_missing_git_ref_fails_with_one_clear_line(
    backend: Backend, llm: ScriptedLLM, tmp_path: Path
) -> None:
    bare = _bare_repo(tmp_path)
    await apply(
        backend,
        openai_agent(llm, extra=f"  tools: [files]\n  workspace: {{git: {{url: '{bare}', ref: nope}}}}\n"),
    )
    done = await AgentRunner().execute(backend, await start(backend, "bot", "hi"))
    assert done.status.phase == P.PHASE_FAILED
    assert "checking out 'nope'" in done.status.error.detail
    assert "\n" not in done.status.error.detail


async def test_an_oversize_write_is_refused(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(
        backend, openai_agent(llm, extra="  tools: [files]\n  workspace: {maxBytes: 1000, maxFiles: 2}\n")
    )
    llm.add(
        call("write_file", path="big.txt", content="x" * 2000),
        call("write_file", path="a.txt", content="a"),
        call("write_file", path="b.txt", content="b"),
        call("write_file", path="c.txt", content="c"),
        text("ok"),
    )
    eid = await start(backend, "bot", "fill it")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    results = _results(await events(backend, eid))
    assert results[0].startswith("error: big.txt: 2,000 bytes is more than the workspace may hold")
    assert results[1:3] == ["wrote 1 bytes to a.txt", "wrote 1 bytes to b.txt"]
    assert results[3] == "error: the workspace already holds 2 files (at most 2)"
    assert done.status.workspace.files == 2


async def test_an_oversize_seed_fails_the_run(backend: Backend, llm: ScriptedLLM, tmp_path: Path) -> None:
    seed = tmp_path / "big"
    seed.mkdir()
    for i in range(5):
        (seed / f"f{i}").write_text("x")
    packed = pack_tree(seed)
    meta = await backend.put_artifact(
        svc.PutArtifactRequest(content=packed.content, media_type=TAR_MEDIA_TYPE)
    )
    await apply(
        backend,
        openai_agent(llm, extra=f"  tools: [files]\n  workspace: {{artifact: '{meta.key}', maxFiles: 3}}\n"),
    )
    done = await AgentRunner().execute(backend, await start(backend, "bot", "hi"))
    assert done.status.phase == P.PHASE_FAILED
    assert "more than 3 files" in done.status.error.detail


async def test_todos_are_in_the_status_and_the_events(backend: Backend, llm: ScriptedLLM) -> None:
    await apply(backend, openai_agent(llm, extra="  tools: [todos]\n"))
    llm.add(
        call("write_todos", todos=[{"content": "read", "status": "in_progress"}, {"content": "fix"}]),
        call(
            "write_todos",
            todos=[{"content": "read", "status": "completed"}, {"content": "fix", "status": "nope"}],
        ),
        call(
            "write_todos",
            todos=[{"content": "read", "status": "completed"}, {"content": "fix", "status": "in_progress"}],
        ),
        text("ok"),
    )
    eid = await start(backend, "bot", "plan")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert [(t.id, t.content, t.status) for t in done.status.todos] == [
        ("1", "read", "completed"),
        ("2", "fix", "in_progress"),
    ]
    log = await events(backend, eid)
    plans = [data(e)["items"] for e in log if e.type == "todos"]
    assert len(plans) == 2  # the refused write published nothing
    assert plans[0][0] == {"id": "1", "content": "read", "status": "in_progress"}
    assert _results(log)[1].startswith("error: item 2: status must be one of")
    assert done.status.workspace.artifact and done.status.workspace.files == 0  # every session has one


async def test_an_image_attachment_goes_to_the_model_and_the_workspace(
    backend: Backend, llm: ScriptedLLM
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 32
    meta = await backend.put_artifact(svc.PutArtifactRequest(content=png, media_type="image/png"))
    await apply(backend, openai_agent(llm, extra="  tools: [files]\n"))
    spec = execution_pb2.ExecutionSpec(message="what is in the picture?")
    spec.target.kind, spec.target.name = "Agent", "bot"
    spec.attachments.add(name="shot.png", artifact=meta.key, media_type="image/png", size=len(png))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    llm.add(call("list_files"), text("A picture."))
    done = await AgentRunner().execute(backend, created.metadata.id)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    user = llm.requests[0]["messages"][1]
    parts = user["content"]
    assert parts[0] == {"type": "text", "text": "what is in the picture?"}
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
    assert "attachments/shot.png" in llm.requests[0]["messages"][0]["content"]
    assert _results(await events(backend, created.metadata.id)) == ["attachments/shot.png"]
    assert (await _files(backend, done))["attachments/shot.png"] == png


async def test_a_sub_agent_shares_the_workspace_or_has_its_own(backend: Backend, llm: ScriptedLLM) -> None:
    extra = (
        "  tools: [files]\n"
        "  subAgents:\n"
        "    - {name: helper, instructions: SUB shared, tools: [files]}\n"
        "    - {name: loner, instructions: SUB own, tools: [files], ownWorkspace: true}\n"
    )
    await apply(backend, openai_agent(llm, extra=extra))
    llm.add(
        call("helper", task="write shared.txt"),
        call("write_file", path="shared.txt", content="from helper"),  # the helper's turn
        text("helper done"),
        call("loner", task="write own.txt"),
        call("write_file", path="own.txt", content="from loner"),  # the loner's turn
        text("loner done"),
        call("list_files"),
        text("ok"),
    )
    eid = await start(backend, "bot", "delegate")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert set(await _files(backend, done)) == {"shared.txt"}  # the loner wrote in a folder of its own
