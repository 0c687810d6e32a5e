"""What the MCP client costs a cold run: the ``mcp`` SDK's session and transports only. A run with
an MCP server calls its tools without importing fastmcp or pydantic-ai's ``MCPToolset`` (built on
fastmcp: its client, auth extensions, server module, settings and key-value stores). The
workspace has fastmcp installed (the telemetry tests' trace receiver needs it), the runner's own
test environment does not: where it is installed a run that imported it would list it here, where
it is not such a run would fail."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import asyncio, json, sys, tempfile
from pathlib import Path
from stigmer.backend.local import LocalBackend
from stigmer.runner.agent import AgentRunner
from stigmer.testing import ScriptedLLM, call, text
from stigmer.testing.agents import KEY, apply, openai_agent, start, stdio_server

async def main():
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM() as llm:
        llm.add(call("add", a=2, b=3), text("5"))
        store = LocalBackend(f"sqlite:///{Path(tmp) / 'db'}", home=tmp, master_key=KEY)
        await apply(store, stdio_server("calc"))
        await apply(store, openai_agent(llm, extra="  mcpServers: [{name: calc}]\\n"))
        done = await AgentRunner().execute(store, await start(store, "bot", "add"))
        await store.close()
        results = [m["content"] for r in llm.requests for m in r["messages"] if m.get("role") == "tool"]
        loaded = sorted(
            m for m in ("fastmcp", "pydantic_ai.mcp", "key_value", "pydantic_settings", "mcp.client.stdio")
            if m in sys.modules
        )
        print(json.dumps({"phase": done.status.phase, "results": results, "loaded": loaded}))

asyncio.run(main())
"""


def test_a_run_with_an_mcp_server_imports_the_mcp_sdk_client_only() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"phase": 4, "results": ["5"], "loaded": ["mcp.client.stdio"]}
