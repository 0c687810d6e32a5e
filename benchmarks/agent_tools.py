"""agent_tools: 100 file tool calls in one agent run, Stigmer Lite (`stigmer agent execute` of an
agent with the built-in ``files`` tool set) against a bare pydantic-ai script making the same calls
to two plain Python functions; cold processes, interleaved, median of 5.

The model is the scripted OpenAI-compatible stand-in of ``stigmer.testing`` (``ScriptedLLM``) in
this process, answering at once and the same for both sides: it alternates ``write_file`` and
``read_file`` (50 each, on ``notes/n<i>.txt``) until the conversation holds 100 tool results,
then answers with text. Each side checks it got every call: Stigmer's run saves its workspace (50
files) and the bare side's folder holds them.

What the ratio covers on the Stigmer side: the CLI and store start-up, the workspace (created,
saved as an artifact at the end), each call's path checks and size bound, the ``tool.call`` /
``tool.result`` events written as they happen and the checkpoint saved before each model request
that carries tool results (so a killed run resumes without calling the tools again).
The pydantic-ai side runs in the benchmark-only venv of ``agent_peers`` (same pins).
Run with the venv's interpreter: ``.venv/bin/python benchmarks/agent_tools.py [RUNS]``.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "baselines"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_peers import peer_python
from clibench import compile_workspace, summary, venv_bin
from stigmer.testing import Reply, ScriptedLLM, call, text

HERE = Path(__file__).resolve().parent / "peers"
ANSWER = "All notes written and read back."
PROMPT = "Write and read back 50 notes, one tool call at a time."
CALLS = 100


def respond(body: dict[str, Any]) -> Reply:
    done = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    if done >= CALLS:
        return text(ANSWER)
    n = done // 2
    if done % 2 == 0:
        return call("write_file", path=f"notes/n{n}.txt", content=f"note {n}\n" * 20)
    return call("read_file", path=f"notes/n{n}.txt")


def once(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one cold process."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if result.returncode != 0 or ANSWER not in result.stdout:
        raise SystemExit(
            f"{argv[:3]} failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-1500:]}"
        )
    return elapsed, cpu, result.stdout


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    compile_workspace()
    stigmer = venv_bin("stigmer")
    bare = peer_python("pydantic_ai")
    llm = ScriptedLLM(respond=respond).start()
    url = llm.openai_base_url
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "STIGMER_HOME": str(Path(tmp) / "home"), "NO_COLOR": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        manifest = Path(tmp) / "agent.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bench}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {url!r}}}\n"
            "  tools: [{name: files, allow: [read_file, write_file]}]\n"
        )
        subprocess.run([stigmer, "apply", "-f", str(manifest)], env=env, check=True, capture_output=True)
        folder = Path(tmp) / "bare"

        def stigmer_side() -> tuple[float, float]:
            wall, cpu, out = once([stigmer, "agent", "execute", "bench", PROMPT, "-o", "json"], env)
            workspace = json.loads(out)["workspace"]
            if workspace is None or workspace["files"] != CALLS // 2:
                raise SystemExit(f"stigmer: the workspace holds {workspace}, expected {CALLS // 2} files")
            return wall, cpu

        def bare_side() -> tuple[float, float]:
            folder.mkdir(exist_ok=True)
            wall, cpu, _ = once([bare, str(HERE / "pydantic_ai_files.py"), url, PROMPT, str(folder)], env)
            written = sorted(folder.rglob("*.txt"))
            if len(written) != CALLS // 2:
                raise SystemExit(f"pydantic-ai: {len(written)} files, expected {CALLS // 2}")
            for path in written:
                path.unlink()
            return wall, cpu

        sides = {"stigmer": stigmer_side, "pydantic-ai": bare_side}
        for side in sides.values():  # warm-up (file and bytecode caches), checked like the rest
            side()
        wall: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(runs):
            for name, side in sides.items():
                w, c = side()
                wall[name].append(w)
                cpu[name].append(c)
    llm.close()
    med = {name: statistics.median(v) for name, v in wall.items()}
    for name in sides:
        print(
            f"{name}: run with {CALLS} file tool calls {med[name] * 1000:.0f} ms "
            f"(min {min(wall[name]) * 1000:.0f}), CPU {statistics.median(cpu[name]) * 1000:.0f} ms"
        )
    print(summary("agent_tools", med["stigmer"] / med["pydantic-ai"], 2.0))


if __name__ == "__main__":
    main()
