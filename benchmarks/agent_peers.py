"""agent_peers: the same agent with 3 tool calls as Stigmer Lite, a bare pydantic-ai script and
LangGraph's prebuilt ReAct agent; cold processes, interleaved (A B C A B C ...), median of 7.

The model is the scripted OpenAI-compatible stand-in of ``stigmer.testing`` (``ScriptedLLM``) in
this process, answering at once and the same for every side: while the conversation holds fewer
than three tool results it calls ``add``, then it answers with text. Every side's model client
speaks the OpenAI chat wire format to it (Stigmer and pydantic-ai: ``OpenAIChatModel``; LangGraph:
``langchain_openai.ChatOpenAI``).

The tool: a Stigmer agent gets tools from MCP servers (it has no built-in local tools, and a
Python function cannot be handed to ``stigmer agent execute``), and a stdio MCP server is what
users run. So every side gets its tool from the same stdio MCP server, the same command
(``benchmarks/peers/mcp_add.py``, standard library only, so its start-up is milliseconds and the
figures are about the frameworks): Stigmer through an ``McpServer`` resource, pydantic-ai through
its ``MCPToolset`` (on fastmcp's client; Stigmer's toolset is on the ``mcp`` SDK's session, as
LangGraph's), LangGraph through ``langchain-mcp-adapters`` with one
session held for the run. A Python function tool on the peers would drop the MCP round trips
from their side only, which is not the same work.

Time to the first tool call is seen from outside: the MCP server writes the wall clock of each
call to a file, the benchmark subtracts the process's start.

Every side runs as its users install it, each in a benchmark-only venv: Stigmer from the wheels
built from this checkout (``pip install stigmer``, at the lock's versions, without the workspace's
development tools: ``clibench.installed_product``); the peers pinned in
``benchmarks/peers/agent_peers_*.txt`` (``~/.cache/stigmer-bench/agent-peers-*``; the libraries
Stigmer shares at the workspace's versions), never as project dependencies. LangGraph gets a venv of its own because
langchain-mcp-adapters 0.3.1 needs the 1.x MCP SDK. ``benchmarks/agent_lite.py`` (vs ``stigmer --help``)
remains as a budget check; this one is the honest comparison.
Run with the venv's interpreter: ``.venv/bin/python benchmarks/agent_peers.py [RUNS]``.
"""

from __future__ import annotations

import hashlib
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

from clibench import installed_product, summary
from stigmer.testing import Reply, ScriptedLLM, call, text

HERE = Path(__file__).resolve().parent / "peers"
MCP = HERE / "mcp_add.py"
ANSWER = "The sums are 1, 2 and 3."
PROMPT = "Add 0+1, 1+1 and 2+1 with the add tool, one call at a time."
CALLS = 3


def respond(body: dict[str, Any]) -> Reply:
    results = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    return call("add", a=results, b=1) if results < CALLS else text(ANSWER)


def peer_python(side: str) -> str:
    """A benchmark-only venv's interpreter, created (once per requirements content) with uv."""
    requirements = HERE / f"agent_peers_{side}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stigmer-bench"
    venv = cache / f"agent-peers-{side}-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run(["uv", "venv", "-q", "--allow-existing", "-p", sys.executable, str(venv)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "--compile-bytecode", "-p", str(python), "-r", str(requirements)],
            check=True,
        )
        (venv / ".complete").write_text("ok\n")
    return str(python)


def once(argv: list[str], env: dict[str, str], calls: Path) -> tuple[float, float, float]:
    """(wall seconds, seconds to the first tool call, CPU seconds) of one cold process."""
    calls.write_text("")
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.time()
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    if result.returncode != 0 or ANSWER not in result.stdout:
        raise SystemExit(
            f"{argv[:3]} failed ({result.returncode}): {result.stdout[-500:]} {result.stderr[-1500:]}"
        )
    stamps = [float(x) for x in calls.read_text().split()]
    if len(stamps) != CALLS:
        raise SystemExit(f"{argv[:3]}: {len(stamps)} tool calls, expected {CALLS}")
    return elapsed, stamps[0] - wall0, cpu


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    stigmer = str(installed_product() / "stigmer")
    bare, graph = peer_python("pydantic_ai"), peer_python("langgraph")
    llm = ScriptedLLM(respond=respond).start()
    url = llm.openai_base_url
    with tempfile.TemporaryDirectory() as tmp:
        calls = Path(tmp) / "calls.txt"
        server = [sys.executable, str(MCP), str(calls)]
        # Bytecode is cached as for any user (these shells set PYTHONDONTWRITEBYTECODE, under which
        # modules loaded through an import hook, such as beartype's in py-key-value, which fastmcp
        # uses, would be compiled from source on every start: on the pydantic-ai side).
        env = {**os.environ, "STIGMER_HOME": str(Path(tmp) / "home"), "NO_COLOR": "1"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        manifest = Path(tmp) / "agent.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: tools}\n"
            f"spec: {{stdio: {{command: {server[0]!r}, args: [{server[1]!r}, {server[2]!r}]}}}}\n"
            "---\n"
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bench}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {url!r}}}\n"
            "  mcpServers: [{name: tools}]\n"
        )
        subprocess.run([stigmer, "apply", "-f", str(manifest)], env=env, check=True, capture_output=True)
        sides = {
            "stigmer": [stigmer, "agent", "execute", "bench", PROMPT],
            "pydantic-ai": [bare, str(HERE / "pydantic_ai_agent.py"), url, PROMPT, *server],
            "langgraph": [graph, str(HERE / "langgraph_agent.py"), url, PROMPT, *server],
        }
        for argv in sides.values():  # warm-up (file and bytecode caches), checked like the rest
            once(argv, env, calls)
        wall: dict[str, list[float]] = {name: [] for name in sides}
        first: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(runs):
            for name, argv in sides.items():
                elapsed, to_call, used = once(argv, env, calls)
                wall[name].append(elapsed)
                first[name].append(to_call)
                cpu[name].append(used)
    llm.close()
    med = {name: statistics.median(v) for name, v in wall.items()}
    ttfc = {name: statistics.median(v) for name, v in first.items()}
    for name in sides:
        print(
            f"{name}: run with {CALLS} tool calls {med[name] * 1000:.0f} ms "
            f"(min {min(wall[name]) * 1000:.0f}), first tool call at {ttfc[name] * 1000:.0f} ms, "
            f"CPU {statistics.median(cpu[name]) * 1000:.0f} ms"
        )
    ratio = med["stigmer"] / med["pydantic-ai"]
    lg = med["stigmer"] / med["langgraph"]
    print(
        f"time to first tool call: stigmer/pydantic-ai {ttfc['stigmer'] / ttfc['pydantic-ai']:.2f}, "
        f"stigmer/langgraph {ttfc['stigmer'] / ttfc['langgraph']:.2f}"
    )
    line = summary("agent_peers", ratio, 1.10)
    ok = line.endswith("PASS") and lg <= 1.0
    print(
        f"agent_peers: ratio={ratio:.2f} target<=1.10 (langgraph ratio={lg:.2f} target<=1.0) "
        f"{'PASS' if ok else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
