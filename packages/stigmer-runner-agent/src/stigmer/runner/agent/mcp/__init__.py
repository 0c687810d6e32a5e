"""An agent's MCP servers: ``_servers`` builds one toolset per server usage (secrets, allow-lists,
approvals, name clashes, a stdio server's log and failures), ``_toolset`` is that toolset over the
``mcp`` SDK's client session (stdio or streamable HTTP), ``_pool`` keeps an execution's servers
running between its tool calls on a Temporal worker.

Importing this package does not import the MCP client: ``load_mcp_client`` does, and building the
toolsets of an agent that has MCP servers.
"""

from ._pool import IDLE_SECONDS, McpPool
from ._servers import (
    HTTP_CONNECT_TIMEOUT,
    STDIO_START_TIMEOUT,
    McpServerFailed,
    McpTools,
    build_mcp_toolsets,
    load_mcp_client,
    mcp_log_dir,
)

__all__ = [
    "HTTP_CONNECT_TIMEOUT",
    "IDLE_SECONDS",
    "STDIO_START_TIMEOUT",
    "McpPool",
    "McpServerFailed",
    "McpTools",
    "build_mcp_toolsets",
    "load_mcp_client",
    "mcp_log_dir",
]
