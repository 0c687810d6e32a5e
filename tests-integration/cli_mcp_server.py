"""A tiny MCP server (stdio) for the CLI's agent tests: one tool that needs approval."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("cli-test")


@server.tool()
def delete_item(item: str) -> str:
    """Delete an item (a tool that needs approval)."""
    return f"deleted {item}"


if __name__ == "__main__":
    server.run()
