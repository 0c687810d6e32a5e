"""A minimal MCP server over stdio (standard library only) with one tool, ``add(a, b)``.

The same command serves every side of ``benchmarks/agent_peers.py``. It starts in a few
milliseconds, so the figures are about the agent frameworks, not about an MCP SDK's start-up.
Each ``tools/call`` appends ``time.time()`` to the file named by the first argument (if any):
the benchmark's time to the first tool call, seen from outside the process under test.
"""

from __future__ import annotations

import json
import sys
import time

TOOL = {
    "name": "add",
    "description": "Add two integers.",
    "inputSchema": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}


def answer(request: dict[str, object]) -> dict[str, object]:
    method = request.get("method")
    params = request.get("params") or {}
    assert isinstance(params, dict)
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "bench-add", "version": "1.0"},
        }
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        if len(sys.argv) > 1:
            with open(sys.argv[1], "a") as log:
                log.write(f"{time.time()}\n")
        args = params.get("arguments") or {}
        assert isinstance(args, dict)
        total = int(args.get("a", 0)) + int(args.get("b", 0))
        return {"content": [{"type": "text", "text": str(total)}], "isError": False}
    return {}  # ping and anything else a client may ask


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "id" not in request or "method" not in request:
            continue  # notifications and responses
        reply = {"jsonrpc": "2.0", "id": request["id"], "result": answer(request)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
