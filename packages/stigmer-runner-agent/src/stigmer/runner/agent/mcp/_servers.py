"""MCP servers as pydantic-ai toolsets (``McpToolset``, on the ``mcp`` SDK's client): stdio and
streamable HTTP, secrets resolved at launch.

A stdio server's environment holds the run's plain variables (from the agent's environments and
the run's ``--env``) and its own ``env``. ``env`` (stdio) and ``headers`` (HTTP) values may be
``${ $secrets.X }`` expressions; they are
resolved from the execution context right before the server is launched or connected, kept in
memory only, and registered with the run's redactor. Per-agent allow-lists filter the tools;
tools listed in ``requireApproval`` pause the run until a human decides.

Two servers may offer a tool of the same name (two instances of one server, or two servers that
both have ``search``): such a tool is offered to the model once per server, as
``<server>_<tool>`` (the server's name with anything but letters, digits, ``_`` and ``-`` made
``_``). Names no other server offers stay as they are. ``tools`` and ``requireApproval`` always
name a server's own tools; approval requests and tool events show the name the model called.

A stdio server is a local process: it is started only when the execution's backend grants the
``run`` capability (always in Lite; on a server only with ``stigmer server --allow-run``). Its
standard error goes to ``$STIGMER_HOME/logs/mcp/<execution id>-<server>.log`` (never the run's
terminal); when it fails to start or closes during the run, the error names its last
standard-error line, its command and its folder.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stigmer.core import (
    Backend,
    CapabilityDenied,
    FailedPrecondition,
    InvalidArgument,
    Redactor,
    header_problem,
    private_dir,
    private_file,
    stigmer_home,
)
from stigmer.proto.v1 import agent_pb2, meta_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.runner.agent._expr import resolve_value

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.toolsets import AbstractToolset, ToolsetTool

__all__ = [
    "HTTP_CONNECT_TIMEOUT",
    "STDIO_START_TIMEOUT",
    "McpServerFailed",
    "McpTools",
    "build_mcp_toolsets",
    "load_mcp_client",
    "mcp_log_dir",
]

# Seconds a server gets to start (stdio: first `npx`/`uvx` runs download) or to answer the handshake.
STDIO_START_TIMEOUT = 60.0
HTTP_CONNECT_TIMEOUT = 30.0


#: How much of the end of a server's log is read for its last line.
_TAIL_BYTES = 16_384


def load_mcp_client() -> None:
    """Import the MCP client (the ``mcp`` SDK's session and stdio / HTTP transports) now, so a run
    loads its libraries up front rather than in the middle of starting a server."""
    import mcp.client.stdio
    import mcp.client.streamable_http  # noqa: F401
    from stigmer.runner.agent.mcp import _toolset  # noqa: F401


def mcp_log_dir(environ: Mapping[str, str]) -> Path:
    """Where stdio MCP servers' standard error is written: ``$STIGMER_HOME/logs/mcp``."""
    return stigmer_home(environ) / "logs" / "mcp"


class McpServerFailed(FailedPrecondition):
    """A stdio MCP server failed to start or closed during the run (its message says why)."""


@dataclass
class StdioLaunch:
    """How a stdio server is started, and where its standard error goes."""

    server: str
    command: str
    args: list[str]
    cwd: str
    log: Path
    offset: int = 0

    def mark(self) -> None:
        """Remember where this start's lines begin in the (appended) log."""
        try:
            self.offset = self.log.stat().st_size
        except OSError:
            self.offset = 0

    def last_line(self) -> str:
        """The server's last non-blank standard-error line since :meth:`mark`."""
        try:
            with self.log.open("rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(self.offset, size - _TAIL_BYTES))
                tail = file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def failed(self, what: str, exc: BaseException) -> McpServerFailed:
        reason = _reason(exc)
        line = self.last_line()
        said = f" Its last error line: {line}." if line else " It wrote nothing to standard error."
        folder = self.cwd or os.getcwd()
        return McpServerFailed(
            f"MCP server {self.server} {what}: {reason}.{said} "
            f"Command: {shlex.join([self.command, *self.args])}, in folder {folder} "
            f"(full log: {self.log})"
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__).rstrip(".")


def _closed(exc: BaseException) -> bool:
    """Whether ``exc`` says the server's connection is gone (it exited or closed its pipes)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(_closed(e) for e in exc.exceptions)
    import anyio

    if isinstance(exc, anyio.ClosedResourceError | anyio.BrokenResourceError | anyio.EndOfStream):
        return True
    code = getattr(exc, "code", None)
    if code is None:
        code = getattr(getattr(exc, "error", None), "code", None)
    return code == -32000  # mcp.types.CONNECTION_CLOSED


def _guarded(toolset: AbstractToolset[Any], launch: StdioLaunch) -> AbstractToolset[Any]:
    """``toolset`` whose start failure or closed connection raises :class:`McpServerFailed`."""
    from pydantic_ai.toolsets import WrapperToolset

    @dataclass
    class StdioServer(WrapperToolset[Any]):
        @property
        def id(self) -> str | None:
            return self.wrapped.id

        async def __aenter__(self) -> StdioServer:
            launch.mark()
            try:
                await self.wrapped.__aenter__()
            except Exception as exc:
                raise launch.failed("failed to start", exc) from exc
            return self

        async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
            try:
                return await self.wrapped.get_tools(ctx)
            except Exception as exc:
                if _closed(exc):
                    raise launch.failed("closed during the run", exc) from exc
                raise

        async def call_tool(
            self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
        ) -> Any:
            try:
                return await self.wrapped.call_tool(name, tool_args, ctx, tool)
            except Exception as exc:
                # pydantic-ai hands a protocol error to the model as a retry; a closed connection
                # is not the model's to fix (and the server's state is gone): the run fails.
                if _closed(exc) or (exc.__cause__ is not None and _closed(exc.__cause__)):
                    raise launch.failed("closed during the run", exc.__cause__ or exc) from exc
                raise

    return StdioServer(toolset)


@dataclass
class McpTools:
    """Toolsets for an agent's MCP servers, and which tools need approval (tool -> server)."""

    toolsets: list[tuple[str, AbstractToolset[Any]]] = field(default_factory=list)
    approval: dict[str, str] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)


async def build_mcp_toolsets(
    backend: Backend,
    usages: Sequence[agent_pb2.McpServerUsage],
    *,
    secrets: Mapping[str, str],
    variables: Mapping[str, str],
    redactor: Redactor,
    approvals: bool = True,
    allow_run: bool = False,
    log_dir: Path | None = None,
    execution_id: str = "",
) -> McpTools:
    """Build one filtered toolset per MCP server usage (nothing is started yet).

    A stdio server's standard error is appended to ``<log_dir>/<execution_id>-<server>.log``
    (``log_dir`` defaults to :func:`mcp_log_dir` of the process environment).

    With ``approvals=False`` (sub-agents, which cannot pause) tools that need approval are withheld.
    Without ``allow_run`` (the execution's ``run`` capability) a stdio server is refused with
    :class:`CapabilityDenied` before anything starts.
    """
    result = McpTools()
    if not usages:
        return result  # the MCP client is imported only when used
    from stigmer.runner.agent.mcp._toolset import McpToolset, http_connection, stdio_connection

    for index, usage in enumerate(usages):
        where = f"spec.mcpServers[{index}]"
        if not usage.name:
            raise InvalidArgument(f"{where}.name: an MCP server usage needs the McpServer's name", [where])
        ref = meta_pb2.ResourceRef(kind="McpServer", name=usage.name)
        server = (await backend.get(svc.GetRequest(ref=ref))).mcp_server
        name = server.metadata.name or usage.name
        transport = server.spec.WhichOneof("transport")
        toolset: AbstractToolset[Any]
        if transport == "stdio":
            if not allow_run:
                raise CapabilityDenied(f"MCP server {name} (stdio: a local command)")
            stdio = server.spec.stdio
            # The run's plain variables (its environments and --env), then the server's own env.
            env: dict[str, str] = dict(variables)
            for key, raw in sorted(stdio.env.items()):
                resolved = resolve_value(raw, secrets, variables, f"McpServer {name}: stdio.env.{key}")
                redactor.register(*(secrets[s] for s in resolved.secrets))
                env[key] = resolved.value
            if not stdio.command:
                raise InvalidArgument(f"McpServer {name}: stdio.command is empty", ["spec.stdio.command"])
            folder = private_dir(log_dir if log_dir is not None else mcp_log_dir(os.environ))
            slug = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{execution_id or 'run'}-{name}")
            launch = StdioLaunch(
                name, stdio.command, list(stdio.args), stdio.cwd, private_file(folder / f"{slug}.log")
            )
            toolset = _guarded(
                McpToolset(
                    stdio_connection(
                        stdio.command,
                        list(stdio.args),
                        env=env or None,
                        cwd=stdio.cwd or None,
                        log=launch.log,
                    ),
                    id=f"mcp-{name}",
                    init_timeout=STDIO_START_TIMEOUT,
                ),
                launch,
            )
        elif transport == "http":
            http = server.spec.http
            headers: dict[str, str] = {}
            for key, raw in sorted(http.headers.items()):
                where = f"McpServer {name}: http.headers.{key}"
                resolved = resolve_value(raw, secrets, variables, where)
                redactor.register(*(secrets[s] for s in resolved.secrets))
                problem = header_problem(key, resolved.value)
                if problem:  # said here: the HTTP client's own error would quote the value
                    raise InvalidArgument(f"{where}: {problem}", [f"spec.http.headers.{key}"])
                headers[key] = resolved.value
            if not http.url:
                raise InvalidArgument(f"McpServer {name}: http.url is empty", ["spec.http.url"])
            read_timeout = http.timeout_seconds if http.timeout_seconds > 0 else None
            toolset = McpToolset(
                http_connection(http.url, headers=headers, read_timeout=read_timeout),
                id=f"mcp-{name}",
                init_timeout=HTTP_CONNECT_TIMEOUT,
                read_timeout=read_timeout,
            )
        else:
            raise InvalidArgument(f"McpServer {name}: set `stdio:` or `http:`", ["spec"])
        allowed = set(usage.tools)
        if allowed:
            toolset = toolset.filtered(lambda ctx, tool, allowed=allowed: tool.name in allowed)  # type: ignore[misc]
        needs = set(usage.require_approval)
        if needs and approvals:
            toolset = toolset.approval_required(lambda ctx, tool, args, needs=needs: tool.name in needs)  # type: ignore[misc]
            result.approval.update({tool: name for tool in needs})
        elif needs:
            # Sub-agents cannot pause for a human: tools that need approval are withheld from them.
            toolset = toolset.filtered(lambda ctx, tool, needs=needs: tool.name not in needs)  # type: ignore[misc]
        result.toolsets.append((name, toolset))
        result.servers.append(name)
        if needs and approvals:
            # The name the model calls when another server offers the same tool.
            result.approval.update({prefixed_name(name, tool): name for tool in needs})
    if len(result.toolsets) > 1:
        shared = _SharedNames([toolset for _name, toolset in result.toolsets])
        result.toolsets = [(name, _deconflicted(name, t, shared)) for name, t in result.toolsets]
    return result


def prefixed_name(server: str, tool: str) -> str:
    """The name a tool of ``server`` is offered as when another server offers one named alike."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', server)}_{tool}"


class _SharedNames:
    """The tool names more than one of an agent's MCP servers offer (listed once per build)."""

    def __init__(self, toolsets: list[AbstractToolset[Any]]) -> None:
        self.toolsets = toolsets
        self._clashing: set[str] | None = None
        self._lock = asyncio.Lock()

    async def clashing(self, ctx: RunContext[Any]) -> set[str]:
        async with self._lock:
            if self._clashing is None:
                seen: dict[str, int] = {}
                for toolset in self.toolsets:
                    async with toolset:  # already running in a run: this only counts a user
                        names = await toolset.get_tools(ctx)
                    for tool in names:
                        seen[tool] = seen.get(tool, 0) + 1
                self._clashing = {tool for tool, count in seen.items() if count > 1}
            return self._clashing


def _deconflicted(server: str, toolset: AbstractToolset[Any], shared: _SharedNames) -> AbstractToolset[Any]:
    from pydantic_ai.toolsets import WrapperToolset

    @dataclass
    class Deconflicted(WrapperToolset[Any]):
        """Offers the tools another server also offers as ``<server>_<tool>``."""

        originals: dict[str, str] = field(default_factory=dict)  # offered name -> the server's name

        async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
            tools = await self.wrapped.get_tools(ctx)
            clashing = await shared.clashing(ctx)
            out: dict[str, ToolsetTool[Any]] = {}
            for name, tool in tools.items():
                if name not in clashing:
                    out[name] = tool
                    continue
                new = prefixed_name(server, name)
                if new in tools or new in out:
                    raise InvalidArgument(
                        f"McpServer {server}: tool {name} is offered by another MCP server too, and "
                        f"{new} is taken; offer it from one server only (`tools:` of the agent's "
                        "mcpServers entry)",
                        ["spec.mcpServers"],
                    )
                self.originals[new] = name
                out[new] = replace(tool, toolset=self, tool_def=replace(tool.tool_def, name=new))
            return out

        async def call_tool(
            self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
        ) -> Any:
            original = self.originals.get(name)
            if original is None:
                return await self.wrapped.call_tool(name, tool_args, ctx, tool)
            ctx = replace(ctx, tool_name=original)
            tool = replace(tool, tool_def=replace(tool.tool_def, name=original))
            return await self.wrapped.call_tool(original, tool_args, ctx, tool)

    return Deconflicted(toolset)
