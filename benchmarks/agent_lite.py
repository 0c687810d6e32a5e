"""agent_lite: `stigmer agent execute` end to end (Lite) against a local fake LLM that answers at once,
vs `stigmer --help`; cold processes, interleaved, median of 7.

The fake LLM is the OpenAI-compatible stand-in of `stigmer.testing` (JSON and SSE) in this
process. The figure that matters is the overhead over `stigmer --help`: loading the local store
(the standard library's sqlite3), pydantic-ai and the openai SDK, one model round trip, and the
event writes.
The summary ratio is execute/help with its target derived from the 2.0 s budget; the import
floor of the libraries alone is timed alongside, so load on a shared machine can be told apart.
A budget check only: `--help` is no agent framework. `benchmarks/agent_peers.py` is the honest
comparison (the same agent with tool calls against a bare pydantic-ai script and LangGraph).
Run with the venv's interpreter: `.venv/bin/python benchmarks/agent_lite.py`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))

from clibench import summary, time_commands, venv_bin
from stigmer.testing import ScriptedLLM

BUDGET = 2.0  # seconds of overhead over `stigmer --help`
ANSWER = "Hello from the fake model."
# The runner alone: libraries imported first, then two runs timed in one process.
IN_PROCESS = """
import asyncio, os, time
import sqlite3
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc, execution_pb2, meta_pb2
from stigmer.runner.agent import AgentRunner

async def main():
    backend = LocalBackend(home=os.environ["STIGMER_HOME"])
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bench"), message="hi")
    times = []
    for _ in range(2):
        created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        start = time.perf_counter()
        done = await AgentRunner().execute(backend, created.metadata.id)
        times.append(time.perf_counter() - start)
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    await backend.close()
    print(*times)

asyncio.run(main())
"""
# The import floor of any Lite agent run: the store's sqlite3, typer, pydantic-ai and its OpenAI model.
FLOOR = "import sqlite3, typer; from pydantic_ai import Agent; from pydantic_ai.models.openai import OpenAIChatModel"


def main() -> None:
    stigmer = venv_bin("stigmer")
    llm = ScriptedLLM(default=ANSWER).start()  # answers every request with ANSWER at once
    url = llm.openai_base_url
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {"STIGMER_HOME": str(home), "NO_COLOR": "1"}
        manifest = Path(tmp) / "agent.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bench}\n"
            f"spec: {{instructions: Be brief., model: {{provider: openai-compatible, name: fake, baseUrl: '{url}'}}}}\n"
        )
        import os

        subprocess.run(
            [stigmer, "apply", "-f", str(manifest)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        t = time_commands(
            {
                "help": [stigmer, "--help"],
                "floor": [sys.executable, "-c", FLOOR],
                "execute": [stigmer, "agent", "execute", "bench", "hi"],
            },
            env=env,
        )
        inproc = subprocess.run(
            [sys.executable, "-c", IN_PROCESS], env={**os.environ, **env}, capture_output=True, text=True
        )
        if inproc.returncode != 0:
            raise SystemExit(f"in-process run failed: {inproc.stderr[-800:]}")
        first, second = (float(x) for x in inproc.stdout.split())
        check = subprocess.run(
            [stigmer, "agent", "execute", "bench", "hi"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        if ANSWER not in check.stdout:
            raise SystemExit(f"agent execute did not answer: {check.stdout[-500:]} {check.stderr[-500:]}")
    llm.close()
    overhead = t["execute"] - t["help"]
    print(f"stigmer --help: {t['help'] * 1000:.0f} ms")
    print(f"stigmer agent execute (fake LLM): {t['execute'] * 1000:.0f} ms")
    print(f"import floor (sqlite3 + typer + pydantic_ai + OpenAIChatModel), cold: {t['floor'] * 1000:.0f} ms")
    print(f"overhead over --help: {overhead:.2f} s (budget {BUDGET:.1f} s)")
    print(f"beyond the import floor: {t['execute'] - t['floor']:.2f} s")
    print(
        f"AgentRunner.execute in one process, libraries imported: first run {first * 1000:.0f} ms, "
        f"second {second * 1000:.0f} ms"
    )
    target = (t["help"] + BUDGET) / t["help"]
    print(summary("agent_lite", t["execute"] / t["help"], round(target, 2)))


if __name__ == "__main__":
    main()
