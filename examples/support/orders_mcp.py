"""A small order-desk MCP server over stdio, used by the `support` agent in examples/support.yaml.

Run it on its own with `python examples/support/orders_mcp.py` (it speaks MCP on stdin/stdout).
Orders live in memory; ORDERS_REGION (set by the McpServer manifest) is echoed in answers.
"""

from __future__ import annotations

import os

try:  # mcp >= 2
    from mcp.server.mcpserver import MCPServer
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as MCPServer  # type: ignore[no-redef]

ORDERS = {
    "A-1001": {"item": "espresso machine", "total": 249.0, "status": "delivered", "days_since_delivery": 12},
    "A-1002": {"item": "milk frother", "total": 39.0, "status": "shipped", "days_since_delivery": None},
}
REFUNDED: set[str] = set()

server = MCPServer("orders")


@server.tool()
def lookup_order(order_id: str) -> dict[str, object]:
    """Look up an order by id (for example A-1001): item, total, status, days since delivery."""
    order = ORDERS.get(order_id)
    if order is None:
        return {"order_id": order_id, "error": "no such order"}
    region = os.environ.get("ORDERS_REGION", "eu")
    return {"order_id": order_id, "region": region, **order, "refunded": order_id in REFUNDED}


@server.tool()
def refund_order(order_id: str, reason: str) -> str:
    """Refund an order in full. Needs a human's approval."""
    if order_id not in ORDERS:
        return f"no such order {order_id}"
    REFUNDED.add(order_id)
    return f"refunded {order_id}: {ORDERS[order_id]['total']:.2f} EUR ({reason})"


if __name__ == "__main__":
    server.run()
