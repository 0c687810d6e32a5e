"""The test MCP server (``mcp_server.py``): its path, and running it over streamable HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from ._ports import free_port, wait_for_port

__all__ = ["MCP_SERVER", "mcp_http_server", "mcp_stdio_command"]

#: The test MCP server's file: ``[sys.executable, MCP_SERVER]`` serves it over stdio.
MCP_SERVER = str(Path(__file__).with_name("mcp_server.py"))


def mcp_stdio_command() -> list[str]:
    """The command line that serves the test MCP server over stdio."""
    return [sys.executable, MCP_SERVER]


@contextlib.contextmanager
def mcp_http_server(timeout: float = 20.0) -> Iterator[str]:
    """The test MCP server over streamable HTTP on a free port; yields its URL (``…/mcp``)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, MCP_SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=timeout)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
