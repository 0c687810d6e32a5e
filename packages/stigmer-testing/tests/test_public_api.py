"""The exported names of stigmer.testing."""

from __future__ import annotations

import sys

import stigmer.testing


def test_exported_names() -> None:
    assert sorted(stigmer.testing.__all__) == sorted(
        [
            "CLIENT_ID",
            "CLIENT_SECRET",
            "GREETER_PROTO",
            "MCP_SERVER",
            "POSTGRES_URL_ENV",
            "STIGMER",
            "FullstackWorld",
            "GrpcGreeter",
            "OtlpReceiver",
            "otlp_receiver",
            "phoenix_binary",
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
    )
    for name in stigmer.testing.__all__:
        assert getattr(stigmer.testing, name) is not None


def test_agents_helpers() -> None:
    from stigmer.testing import agents

    assert sorted(agents.__all__) == sorted(
        [
            "KEY",
            "MCP_SERVER",
            "agent_resource",
            "apply",
            "data",
            "environment_resource",
            "events",
            "openai_agent",
            "pid_alive",
            "sequences_ok",
            "start",
            "stdio_server",
            "summary",
        ]
    )
    manifest = agents.stdio_server("x", env={"A": "1"})
    assert repr(sys.executable) in manifest and repr(agents.MCP_SERVER) in manifest and "A: '1'" in manifest
