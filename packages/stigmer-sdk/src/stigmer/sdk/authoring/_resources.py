"""Builders for Agent, Skill, McpServer and Environment, and the small types agents refer with."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stigmer.proto.v1 import agent_pb2, environment_pb2, mcp_server_pb2, session_pb2, skill_pb2
from stigmer.sdk.authoring._builder import ResourceBuilder, compact

__all__ = ["Agent", "EnvVar", "Environment", "McpServer", "McpUsage", "Model", "Session", "Skill", "SubAgent"]


@dataclass(frozen=True)
class Model:
    """An LLM: ``Model("openai", "gpt-4o-mini")``; agents also accept ``"openai:gpt-4o-mini"``."""

    provider: str
    name: str
    base_url: str | None = None
    params: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, value: Model | str | Mapping[str, Any]) -> Model:
        if isinstance(value, Model):
            return value
        if isinstance(value, str):
            provider, sep, name = value.partition(":")
            if not sep or not provider or not name:
                raise ValueError(f"model {value!r}: write it as 'provider:name', e.g. 'openai:gpt-4o-mini'")
            return cls(provider, name)
        return cls(
            provider=str(value.get("provider", "")),
            name=str(value.get("name", "")),
            base_url=value.get("baseUrl", value.get("base_url")),
            params=value.get("params"),
        )

    def to_dict(self) -> dict[str, Any]:
        return compact(
            {
                "provider": self.provider or None,
                "name": self.name or None,
                "baseUrl": self.base_url,
                "params": dict(self.params) if self.params else None,
            }
        )


class Skill(ResourceBuilder[skill_pb2.Skill]):
    """A skill: a directory with SKILL.md (``path``, packed and pushed at apply) or inline ``content``.

    A relative ``path`` is relative to the file that creates the Skill (as in a manifest).
    """

    kind = "Skill"

    def __init__(
        self,
        name: str,
        *,
        path: str | Path | None = None,
        content: str | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        self.path = str(path) if path is not None else None
        self.content = content
        self.description = description
        caller = sys._getframe(1).f_code.co_filename
        self.defined_in = caller if not caller.startswith("<") and Path(caller).exists() else ""

    def spec(self) -> dict[str, Any]:
        return compact({"description": self.description, "path": self.path, "content": self.content})

    @property
    def source(self) -> str:
        return self.defined_in or super().source

    @property
    def base_dir(self) -> Path:
        """The directory a relative ``path`` is resolved against."""
        return Path(self.defined_in).resolve().parent if self.defined_in else Path.cwd()


class Environment(ResourceBuilder[environment_pb2.Environment]):
    """Plain variables and the names of the secrets it grants (values live in the secret store)."""

    kind = "Environment"

    def __init__(
        self,
        name: str,
        *,
        variables: Mapping[str, str] | None = None,
        secrets: Sequence[str] | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        self.variables = dict(variables or {})
        self.secrets = list(secrets or [])
        self.description = description

    def spec(self) -> dict[str, Any]:
        return compact(
            {
                "description": self.description,
                "variables": self.variables or None,
                "secrets": self.secrets or None,
            }
        )


class McpServer(ResourceBuilder[mcp_server_pb2.McpServer]):
    """An MCP server reached over stdio (``command``) or streamable HTTP (``url``); give one.

    Values of ``env`` / ``headers`` may reference secrets: ``{"TOKEN": secret("GH_TOKEN")}``.
    """

    kind = "McpServer"

    def __init__(
        self,
        name: str,
        *,
        command: str | None = None,
        args: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_seconds: float | None = None,
        secrets: Sequence[str] | None = None,
        description: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        if (command is None) == (url is None):
            raise ValueError(f"McpServer {name!r}: give either command= (stdio) or url= (http)")
        self.command, self.args, self.env, self.cwd = command, list(args or []), dict(env or {}), cwd
        self.url, self.headers, self.timeout_seconds = url, dict(headers or {}), timeout_seconds
        self.secrets = list(secrets or [])
        self.description = description

    def spec(self) -> dict[str, Any]:
        transport: dict[str, Any]
        if self.command is not None:
            transport = {
                "stdio": compact(
                    {
                        "command": self.command,
                        "args": self.args or None,
                        "env": self.env or None,
                        "cwd": self.cwd,
                    }
                )
            }
        else:
            transport = {
                "http": compact(
                    {"url": self.url, "headers": self.headers or None, "timeoutSeconds": self.timeout_seconds}
                )
            }
        return compact({"description": self.description, **transport, "secrets": self.secrets or None})


@dataclass(frozen=True)
class McpUsage:
    """An MCP server an agent uses: the tools it may call and those that need a human's approval."""

    server: McpServer | str
    tools: Sequence[str] = ()
    require_approval: Sequence[str] = ()

    def to_dict(self) -> dict[str, Any]:
        return compact(
            {
                "name": _name(self.server),
                "tools": list(self.tools) or None,
                "requireApproval": list(self.require_approval) or None,
            }
        )


@dataclass(frozen=True)
class EnvVar:
    """An environment variable an agent expects at run time."""

    name: str
    description: str | None = None
    required: bool = False
    secret: bool = False
    default: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return compact(
            {
                "name": self.name,
                "description": self.description,
                "required": self.required or None,
                "secret": self.secret or None,
                "default": self.default,
            }
        )


@dataclass(frozen=True)
class SubAgent:
    """An agent the parent can delegate to (a tool named ``name``): inline, or ``agent=`` an Agent."""

    name: str
    instructions: str | None = None
    description: str | None = None
    model: Model | str | None = None
    skills: Sequence[Skill | str] = ()
    mcp_servers: Sequence[McpServer | McpUsage | str] = ()
    agent: Agent | str | None = None
    tools: Sequence[str | Mapping[str, Any]] = ()
    own_workspace: bool = False

    def to_dict(self) -> dict[str, Any]:
        return compact(
            {
                "name": self.name,
                "description": self.description,
                "instructions": self.instructions,
                "model": Model.parse(self.model).to_dict() if self.model is not None else None,
                "skills": [{"name": _name(s)} for s in self.skills] or None,
                "mcpServers": [_usage(m) for m in self.mcp_servers] or None,
                "agent": _name(self.agent) if self.agent is not None else None,
                "tools": _tools(self.tools),
                "ownWorkspace": self.own_workspace or None,
            }
        )


def _tools(tools: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """Built-in tools: a name (``"files"``) or a mapping with the name and options."""
    return [{"name": t} if isinstance(t, str) else dict(t) for t in tools] or None


class Agent(ResourceBuilder[agent_pb2.Agent]):
    """An LLM agent. References (skills, MCP servers, environments) are builders or names.

    ``tools`` are built-in tools (``"files"``, ``"shell"``, ``"fetch"``, ``"todos"``, or a mapping
    with the name and options such as ``{"name": "shell", "autoApprove": True}``); ``workspace``
    seeds the session's workspace (``{"path": "./repo"}`` or ``{"git": {"url": ..., "ref": ...}}``).
    """

    kind = "Agent"

    def __init__(
        self,
        name: str,
        *,
        instructions: str | None = None,
        model: Model | str | Mapping[str, Any] | None = None,
        description: str | None = None,
        skills: Sequence[Skill | str] = (),
        mcp_servers: Sequence[McpServer | McpUsage | str] = (),
        sub_agents: Sequence[SubAgent | Agent] = (),
        environments: Sequence[Environment | str] = (),
        secrets: Sequence[str] = (),
        env: Sequence[EnvVar | str] = (),
        tools: Sequence[str | Mapping[str, Any]] = (),
        workspace: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        self.tools = list(tools)
        self.workspace = dict(workspace) if workspace is not None else None
        self.instructions = instructions
        self.model = Model.parse(model) if model is not None else None
        self.description = description
        self.skills = list(skills)
        self.mcp_servers = list(mcp_servers)
        self.sub_agents = list(sub_agents)
        self.environments = list(environments)
        self.secrets = list(secrets)
        self.env = [EnvVar(e) if isinstance(e, str) else e for e in env]

    def spec(self) -> dict[str, Any]:
        subs = [
            SubAgent(s.name, agent=s).to_dict() if isinstance(s, Agent) else s.to_dict()
            for s in self.sub_agents
        ]
        return compact(
            {
                "description": self.description,
                "instructions": self.instructions,
                "model": self.model.to_dict() if self.model is not None else None,
                "skills": [{"name": _name(s)} for s in self.skills] or None,
                "mcpServers": [_usage(m) for m in self.mcp_servers] or None,
                "subAgents": subs or None,
                "environments": [_name(e) for e in self.environments] or None,
                "secrets": list(self.secrets) or None,
                "env": [e.to_dict() for e in self.env] or None,
                "workspace": self.workspace,
                "tools": _tools(self.tools),
            }
        )


def _name(ref: ResourceBuilder[Any] | str) -> str:
    return ref if isinstance(ref, str) else ref.name


def _usage(ref: McpServer | McpUsage | str) -> dict[str, Any]:
    return ref.to_dict() if isinstance(ref, McpUsage) else {"name": _name(ref)}


class Session(ResourceBuilder[session_pb2.Session]):
    """A named conversation with an agent: runs given ``session=`` its id share their history."""

    kind = "Session"

    def __init__(
        self,
        name: str,
        *,
        agent: Agent | str,
        title: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, labels=labels, annotations=annotations)
        self.agent = agent
        self.title = title

    def spec(self) -> dict[str, Any]:
        return compact({"agent": {"name": _name(self.agent)}, "title": self.title})
