"""docs/agents.md: its manifests are valid, and its examples run (against the stand-in model)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from stigmer.core import from_value, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, text

DOC = Path(__file__).resolve().parents[3] / "docs" / "agents.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_manifest_parses() -> None:
    kinds: list[str] = []
    for block in blocks("yaml"):
        kinds.extend(loaded.kind for loaded in parse_manifest(block, "agents.md"))
    assert {"Agent", "McpServer", "Skill"} <= set(kinds)


async def test_first_example_runs_on_ollama_api(tmp_path: Path, llm: ScriptedLLM) -> None:
    from stigmer.backend.local import LocalBackend

    llm.add(text("The capital of France is Paris."))
    backend = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"d" * 32)
    try:
        for loaded in parse_manifest(blocks("yaml")[0], "agents.md"):
            assert isinstance(loaded.resource, resource_pb2.Resource), f"{loaded.kind} is not applied"
            await backend.apply(svc.ApplyRequest(resource=loaded.resource))
        spec = execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Agent", name="helper"), message="What is the capital of France?"
        )
        created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        done = await AgentRunner(environ={"OLLAMA_BASE_URL": llm.url}).execute(backend, created.metadata.id)
    finally:
        await backend.close()
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    assert from_value(done.status.output) == "The capital of France is Paris."
    assert llm.requests[0]["model"] == "llama3.2"


def test_python_example_runs(tmp_path: Path, llm: ScriptedLLM) -> None:
    llm.add(text("Paris."))
    env = {**os.environ, "STIGMER_HOME": str(tmp_path), "OLLAMA_BASE_URL": llm.url}
    env.pop("STIGMER_DATABASE_URL", None)
    setup = (
        "import asyncio, sys\n"
        "from stigmer.core import load_backend, parse_manifest\n"
        "from stigmer.proto.v1 import backend_service_pb2 as svc\n"
        "async def main():\n"
        "    b = load_backend('local')\n"
        "    for r in parse_manifest(sys.stdin.read()):\n"
        "        await b.apply(svc.ApplyRequest(resource=r.resource))\n"
        "    await b.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", setup], input=blocks("yaml")[0], env=env, text=True, check=True)
    (example,) = blocks("python")
    ran = subprocess.run(
        [sys.executable, "-c", example], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "Paris."
