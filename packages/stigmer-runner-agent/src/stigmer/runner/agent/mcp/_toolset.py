"""A pydantic-ai toolset over one MCP server, on the ``mcp`` SDK's own client session.

pydantic-ai's ``MCPToolset`` is built on fastmcp's client, whose import (its auth extensions,
server module, settings and key-value stores) costs a cold run about 0.2 s of CPU on top of the
``mcp`` SDK for nothing a run uses. This toolset speaks to the server through ``mcp.ClientSession``
(stdio or streamable HTTP) and maps tools and results as pydantic-ai's ``MCPToolset`` does: tool
errors go back to the model as a retry with the server's error text, protocol errors too.

It is re-entrant: nested ``async with`` count users; the connection opens on the first enter and
closes on the last exit. The connection is held by a task of its own, so any task may enter and
exit (the MCP client's anyio scopes stay in the task that opened them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import pydantic_core
from mcp import ClientSession, MCPError
from mcp import types as mcp_types
from mcp.client._transport import TransportStreams
from pydantic_ai import ModelRetry, RunContext, ToolDefinition
from pydantic_ai import messages as pai
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

__all__ = ["McpToolset", "http_connection", "map_call_result", "stdio_connection"]

logger = logging.getLogger(__name__)

#: Any arguments object: the server validates a call's arguments against its own schema.
_ANY_ARGS = pydantic_core.SchemaValidator(
    schema=pydantic_core.core_schema.dict_schema(
        pydantic_core.core_schema.str_schema(), pydantic_core.core_schema.any_schema()
    )
)

Connect = Callable[[], AbstractAsyncContextManager[TransportStreams]]


def stdio_connection(
    command: str, args: list[str], *, env: dict[str, str] | None, cwd: str | None, log: Path
) -> Connect:
    """Start ``command`` as the server; its standard error is appended to ``log``."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[TransportStreams]:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(command=command, args=args, env=env, cwd=cwd)
        with log.open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as streams:
                yield streams

    return connect


def http_connection(url: str, *, headers: dict[str, str], read_timeout: float | None) -> Connect:
    """Streamable HTTP to ``url`` with ``headers`` on every request."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[TransportStreams]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        # The MCP SDK's defaults (30 s to connect, 300 s to read a response stream); a longer
        # per-call timeout must not be cut short by the HTTP client's.
        read = max(300.0, read_timeout or 0.0)
        client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=read))
        async with client, streamable_http_client(url, http_client=client) as streams:
            yield streams

    return connect


class McpToolset(AbstractToolset[Any]):
    """The tools of one MCP server (listed once per connection, again when the server says they
    changed); a call's result mapped for the model as pydantic-ai's ``MCPToolset`` maps it."""

    def __init__(
        self,
        connect: Connect,
        *,
        id: str,
        init_timeout: float,
        read_timeout: float | None = None,
    ) -> None:
        self._connect = connect
        self._id = id
        self.init_timeout = init_timeout
        self.read_timeout = read_timeout
        self._users = 0
        self._lock: asyncio.Lock | None = None
        self._session: ClientSession | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._tools: list[mcp_types.Tool] | None = None

    @property
    def id(self) -> str | None:
        return self._id

    @property
    def is_running(self) -> bool:
        return self._session is not None

    # -- the connection --------------------------------------------------------------------------
    async def __aenter__(self) -> McpToolset:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._users == 0:
                await self._open()
            self._users += 1
        return self

    async def __aexit__(self, *args: Any) -> bool | None:
        assert self._lock is not None, "__aexit__ without __aenter__"
        async with self._lock:
            if self._users == 0:
                raise ValueError(f"{type(self).__name__}.__aexit__ called more times than __aenter__")
            self._users -= 1
            if self._users == 0:
                await self._close()
        return None

    async def _open(self) -> None:
        ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(self._hold(ready, stop), name=f"stigmer-{self._id}")
        try:
            session = await ready
        except BaseException:
            stop.set()
            if not task.done():
                task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        self._session, self._stop, self._task = session, stop, task

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        """Open the connection, hand the initialized session over, keep it until ``stop``."""
        try:
            async with (
                self._connect() as (read, write),
                ClientSession(
                    read, write, read_timeout_seconds=self.read_timeout, message_handler=self._on_message
                ) as session,
            ):
                try:
                    with anyio.fail_after(self.init_timeout):
                        await session.initialize()
                except TimeoutError:
                    raise TimeoutError(
                        f"no answer to the MCP handshake within {self.init_timeout:g} s"
                    ) from None
                if ready.done():  # whoever opened it stopped waiting
                    return
                ready.set_result(session)
                await stop.wait()
        except asyncio.CancelledError:
            ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(_leaf(exc))
            else:  # the calls in flight end with the connection closed
                logger.debug("the MCP connection of %s failed", self._id, exc_info=True)

    async def _close(self) -> None:
        stop, task = self._stop, self._task
        self._session = self._stop = self._task = None
        self._tools = None
        if stop is None or task is None:
            return
        stop.set()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _on_message(self, message: Any) -> None:
        if isinstance(getattr(message, "root", message), mcp_types.ToolListChangedNotification):
            self._tools = None

    def _running(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError(f"MCP server {self._id} is not running: enter the toolset first")
        return self._session

    # -- tools -----------------------------------------------------------------------------------
    async def list_tools(self) -> list[mcp_types.Tool]:
        """Every tool the server offers (all pages)."""
        if self._tools is not None:
            return self._tools
        session = self._running()
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        self._tools = tools
        return tools

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        tools: dict[str, ToolsetTool[Any]] = {}
        for tool in await self.list_tools():
            if not _visible_to_model(tool):
                continue
            tool_def = ToolDefinition(
                name=tool.name,
                description=tool.description,
                parameters_json_schema=tool.input_schema,
                metadata={
                    "meta": tool.meta,
                    "annotations": tool.annotations.model_dump(by_alias=True) if tool.annotations else None,
                },
                return_schema=tool.output_schema or None,
            )
            tools[tool.name] = ToolsetTool(
                toolset=self, tool_def=tool_def, max_retries=ctx.max_retries, args_validator=_ANY_ARGS
            )
        return tools

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        session = self._running()
        try:
            result = await session.call_tool(name, tool_args)
        except MCPError as exc:
            # A protocol error (the server refused the call, or a gateway did): the model may retry.
            raise ModelRetry(str(exc)) from exc
        assert isinstance(result, mcp_types.CallToolResult)
        if result.is_error:
            message = ""
            if result.structured_content is not None or result.content:
                mapped = map_call_result(result, prefer_structured=True)
                message = pai.ToolReturnPart(tool_name=name, content=mapped).model_response_str(
                    wrap_if_error=False
                )
            raise ModelRetry(message or f"Tool {name!r} returned an error")
        return map_call_result(result)


def _leaf(exc: Exception) -> Exception:
    """The one error inside the task groups (the transport's, the session's) it came through."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _visible_to_model(tool: mcp_types.Tool) -> bool:
    """Whether the model may see ``tool`` (MCP Apps: ``_meta.ui.visibility`` lists who can)."""
    match tool.meta:
        case {"ui": {"visibility": visibility}} if isinstance(visibility, list):
            return "model" in visibility
        case _:
            return True


def map_call_result(result: mcp_types.CallToolResult, *, prefer_structured: bool = False) -> Any:
    """A tool's result for the model: the structured content when the parts are all text (they
    hold its JSON), else the parts (one part: that part)."""
    structured = result.structured_content
    if structured is not None and (
        prefer_structured or all(isinstance(part, mcp_types.TextContent) for part in result.content)
    ):
        # The MCP SDK wraps a primitive or generic return value in a `result` key.
        if isinstance(structured, dict) and len(structured) == 1 and "result" in structured:
            return structured["result"]
        return structured
    mapped = [_map_part(part) for part in result.content]
    return mapped[0] if len(mapped) == 1 else mapped


def _map_part(part: mcp_types.ContentBlock) -> Any:
    if isinstance(part, mcp_types.TextContent):
        text = part.text
        if text.startswith(("[", "{")):
            try:
                return pydantic_core.from_json(text)
            except ValueError:
                pass
        return text
    if isinstance(part, mcp_types.ImageContent):
        return pai.BinaryImage(data=base64.b64decode(part.data), media_type=part.mime_type)
    if isinstance(part, mcp_types.AudioContent):
        return pai.BinaryContent(data=base64.b64decode(part.data), media_type=part.mime_type)
    if isinstance(part, mcp_types.EmbeddedResource):
        resource = part.resource
        if isinstance(resource, mcp_types.TextResourceContents):
            return resource.text
        return pai.BinaryContent.narrow_type(
            pai.BinaryContent(
                data=base64.b64decode(resource.blob),
                media_type=resource.mime_type or "application/octet-stream",
            )
        )
    # A resource link: reading it needs a request of its own; the model gets its URI.
    return str(part.uri)
