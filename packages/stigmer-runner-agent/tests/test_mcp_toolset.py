"""The MCP toolset on the ``mcp`` SDK's client: the test MCP server over stdio and streamable HTTP,
entered by several users and tasks, and tool results mapped for the model as pydantic-ai's
``MCPToolset`` maps them."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from mcp import types as t
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import BinaryContent, BinaryImage
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage
from stigmer.runner.agent.mcp._toolset import McpToolset, http_connection, map_call_result, stdio_connection
from stigmer.testing import mcp_stdio_command


def _ctx() -> RunContext[Any]:
    return RunContext(deps=None, model=TestModel(), usage=RunUsage(), max_retries=2)


def _stdio(tmp_path: Path) -> McpToolset:
    command, *args = mcp_stdio_command()
    log = tmp_path / "server.log"
    return McpToolset(
        stdio_connection(command, args, env=None, cwd=None, log=log), id="mcp-t", init_timeout=30
    )


async def _call(toolset: McpToolset, tool_name: str, **args: Any) -> Any:
    ctx = _ctx()
    tool = (await toolset.get_tools(ctx))[tool_name]
    return await toolset.call_tool(tool_name, args, ctx, tool)


async def test_tools_are_listed_with_their_schema_and_any_arguments_are_accepted(tmp_path: Path) -> None:
    async with _stdio(tmp_path) as toolset:
        tools = await toolset.get_tools(_ctx())
    add = tools["add"]
    assert add.tool_def.description == "Add two integers."
    assert add.tool_def.parameters_json_schema["required"] == ["a", "b"]
    assert add.max_retries == 2 and add.toolset is toolset
    # the server checks the arguments against its schema, not the client
    assert add.args_validator.validate_python({"a": 1, "z": [1]}) == {"a": 1, "z": [1]}
    assert {"echo_env", "fail", "crash", "wait"} <= set(tools)


async def test_users_share_one_connection_that_closes_with_the_last(tmp_path: Path) -> None:
    toolset = _stdio(tmp_path)
    async with toolset:
        pid = await _call(toolset, "pid")
        async with toolset:
            assert await _call(toolset, "pid") == pid
        assert toolset.is_running and await _call(toolset, "pid") == pid
    assert not toolset.is_running
    with pytest.raises(RuntimeError, match="not running"):
        await toolset.call_tool("pid", {}, _ctx(), None)  # type: ignore[arg-type]
    async with toolset:  # entered again: a new server
        assert await _call(toolset, "pid") != pid
    with pytest.raises(ValueError, match="more times than"):
        await toolset.__aexit__(None, None, None)


async def test_entered_in_one_task_and_left_in_another(tmp_path: Path) -> None:
    toolset = _stdio(tmp_path)
    await asyncio.create_task(toolset.__aenter__())
    assert await _call(toolset, "add", a=2, b=3) == 5
    await asyncio.create_task(toolset.__aexit__(None, None, None))
    assert not toolset.is_running


async def test_a_tool_error_goes_back_to_the_model_as_a_retry(tmp_path: Path) -> None:
    async with _stdio(tmp_path) as toolset:
        with pytest.raises(ModelRetry, match="failed on purpose: no stock"):
            await _call(toolset, "fail", reason="no stock")
        assert await _call(toolset, "add", a=1, b=1) == 2  # the session goes on


async def test_a_server_that_does_not_answer_the_handshake_times_out(tmp_path: Path) -> None:
    silent = tmp_path / "silent.py"
    silent.write_text("import sys, time\nprint('waiting', file=sys.stderr, flush=True)\ntime.sleep(30)\n")
    log = tmp_path / "silent.log"
    toolset = McpToolset(
        stdio_connection(mcp_stdio_command()[0], [str(silent)], env=None, cwd=None, log=log),
        id="mcp-s",
        init_timeout=0.5,
    )
    with pytest.raises(TimeoutError, match=r"no answer to the MCP handshake within 0.5 s"):
        await toolset.__aenter__()
    assert not toolset.is_running
    assert "waiting" in log.read_text()


async def test_over_streamable_http(http_mcp: str) -> None:
    toolset = McpToolset(
        http_connection(http_mcp, headers={"X-Test": "1"}, read_timeout=5), id="mcp-h", init_timeout=10
    )
    async with toolset:
        assert await _call(toolset, "add", a=20, b=22) == 42
        assert await _call(toolset, "echo_env", name="NOPE") == "NOPE="


def _result(*content: Any, structured: Any = None, error: bool = False) -> t.CallToolResult:
    return t.CallToolResult(content=list(content), structured_content=structured, is_error=error)


def test_results_are_mapped_as_pydantic_ai_maps_them() -> None:
    png, wav = b"\x89PNG...", b"RIFF..."
    text = t.TextContent(type="text", text="plain")
    assert map_call_result(_result(text)) == "plain"
    assert map_call_result(_result(t.TextContent(type="text", text='{"a": [1]}'))) == {"a": [1]}
    assert map_call_result(_result(t.TextContent(type="text", text="[not json"))) == "[not json"
    # structured content when every part is text (which holds its JSON); unwrapped from `result`
    assert map_call_result(_result(t.TextContent(type="text", text="3"), structured={"result": 3})) == 3
    assert map_call_result(_result(text, structured={"n": 1, "m": 2})) == {"n": 1, "m": 2}
    image = t.ImageContent(type="image", data=base64.b64encode(png).decode(), mime_type="image/png")
    mapped = map_call_result(_result(image, structured={"result": 1}))  # not all text: the parts
    assert isinstance(mapped, BinaryImage) and (mapped.data, mapped.media_type) == (png, "image/png")
    audio = t.AudioContent(type="audio", data=base64.b64encode(wav).decode(), mime_type="audio/wav")
    mapped = map_call_result(_result(audio))
    assert isinstance(mapped, BinaryContent) and (mapped.data, mapped.media_type) == (wav, "audio/wav")
    embedded = t.EmbeddedResource(
        type="resource", resource=t.TextResourceContents(uri="file:///a.txt", text="inside")
    )
    blob = t.EmbeddedResource(
        type="resource",
        resource=t.BlobResourceContents(
            uri="file:///a.png", blob=base64.b64encode(png).decode(), mime_type="image/png"
        ),
    )
    link = t.ResourceLink(type="resource_link", name="doc", uri="file:///doc.md")
    many = map_call_result(_result(text, embedded, blob, link))
    assert many[:2] == ["plain", "inside"] and many[3] == "file:///doc.md"
    assert isinstance(many[2], BinaryImage) and many[2].data == png
