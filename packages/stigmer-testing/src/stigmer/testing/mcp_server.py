"""A small MCP server for tests, over stdio (default) or streamable HTTP. Run it as a file:

python .../stigmer/testing/mcp_server.py              # stdio
python .../stigmer/testing/mcp_server.py http PORT    # streamable HTTP on 127.0.0.1:PORT/mcp

``stigmer.testing.MCP_SERVER`` is this file's path. Tools: ``add``, ``echo_env``,
``delete_item`` (a tool tests make need approval), ``wait``, ``fail``, ``crash``, ``pid``, ``whoami``.
"""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("stigmer-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo_env(name: str) -> str:
    """Return the value of an environment variable of the server process."""
    return f"{name}={os.environ.get(name, '')}"


@server.tool()
def delete_item(item: str) -> str:
    """Delete an item (a tool that needs approval)."""
    return f"deleted {item}"


@server.tool()
async def wait(seconds: float) -> str:
    """Sleep, then answer (a slow tool)."""
    import anyio

    await anyio.sleep(seconds)
    return f"waited {seconds}"


@server.tool()
def fail(reason: str) -> str:
    """Always fails (an anticipated tool error, whose message reaches the model)."""
    from mcp.server.mcpserver.exceptions import ToolError

    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
def crash(reason: str) -> str:
    """Write ``reason`` to standard error and exit at once (a server that dies during a call)."""
    print(f"fatal: {reason}", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def whoami(ctx: Context) -> str:
    """Return the Authorization header of the HTTP request that carried this call."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return f"auth={headers.get('authorization', '') if headers is not None else ''}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
