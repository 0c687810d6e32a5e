"""Upstream Agent, McpServer, Environment and Skill specs to this project's, and back.

Upstream writes the protobuf JSON of its messages (snake_case or camelCase keys); each function
takes that and gives this project's manifest fields, recording in a :class:`Mapping` what was
renamed and what was dropped (upstream-only ideas such as ``org`` or ``icon_url``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from stigmer.core.upstream._common import Mapping, UpstreamRefused, snake_keys

__all__ = ["map_metadata", "map_spec", "to_upstream_spec"]

_KEEP_META = ("name", "labels", "annotations")


def map_metadata(meta: Any, m: Mapping) -> dict[str, Any]:
    """Name, labels and annotations are kept; ``org``, ``owner_scope``, ``id``... dropped."""
    src = snake_keys(meta)
    out: dict[str, Any] = {k: src[k] for k in _KEEP_META if k in src}
    if "name" not in out and isinstance(src.get("slug"), str):
        out["name"] = src["slug"]
        m.rename("metadata.slug", "metadata.name")
    for key in src:
        if key not in _KEEP_META and not (key == "slug" and out.get("name") == src["slug"]):
            m.drop(f"metadata.{key}")
    return out


def _names(value: Any) -> dict[str, Any]:
    """A map keyed by user names (variables, servers): keys kept as written."""
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _ref_name(ref: Any) -> str:
    """The name an upstream ``ApiResourceReference`` ({kind, org, slug}) or a bare string names."""
    if isinstance(ref, str):
        return ref
    src = snake_keys(ref)
    return str(src.get("slug") or src.get("name") or "")


def _model(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        src = snake_keys(value)
        return _model(src.get("model") or src.get("name") or "") | (
            {"provider": src["provider"]} if src.get("provider") else {}
        )
    text = str(value)
    for sep in (":", "/"):
        if sep in text:
            provider, name = text.split(sep, 1)
            return {"provider": provider, "name": name}
    return {"name": text}


def _env_requirements(env: Any, m: Mapping, where: str) -> list[dict[str, Any]]:
    """``{VAR: {is_secret, description, optional, value}}`` (or ``env_spec.data``) to ``env``."""
    if isinstance(env, list):  # already a list of requirements
        return [dict(e) for e in env if isinstance(e, dict)]
    out: list[dict[str, Any]] = []
    for var, spec in (env or {}).items():
        src = snake_keys(spec)
        item: dict[str, Any] = {"name": str(var)}
        if src.get("description"):
            item["description"] = str(src["description"])
        item["required"] = not bool(src.get("optional", False)) and not src.get("value")
        if src.get("is_secret"):
            item["secret"] = True
        elif src.get("value") not in (None, ""):
            item["default"] = str(src["value"])
        elif src.get("default_value") not in (None, ""):
            item["default"] = str(src["default_value"])
        out.append(item)
    m.rename(where if where != "env" else "env (a map)", "env (a list)")
    return out


def _usage_from_definition(item: Any, m: Mapping, where: str) -> dict[str, Any]:
    """An upstream agent's MCP entry: a bare name, a usage with ``mcp_server_ref`` or an inline
    server definition (name + transport), to ``{name, tools, requireApproval}``."""
    if isinstance(item, str):
        return {"name": item}
    src = snake_keys(item)
    out: dict[str, Any] = {}
    if "mcp_server_ref" in src:
        out["name"] = _ref_name(src["mcp_server_ref"])
        if isinstance(src["mcp_server_ref"], dict) and snake_keys(src["mcp_server_ref"]).get("org"):
            m.drop(f"{where}.mcp_server_ref.org")
    else:
        out["name"] = str(src.get("name") or src.get("mcp_server") or src.get("slug") or "")
        for transport in ("stdio", "http", "docker"):
            if transport in src:
                m.drop(f"{where}.{transport} (declare the server as a McpServer named {out['name']!r})")
    if src.get("enabled_tools"):
        out["tools"] = [str(t) for t in src["enabled_tools"]]
    approvals = [
        str(snake_keys(o).get("tool_name"))
        for o in src.get("tool_approval_overrides") or []
        if snake_keys(o).get("requires_approval", True)
    ]
    if approvals:
        out["requireApproval"] = approvals
        if any(snake_keys(o).get("message") for o in src.get("tool_approval_overrides") or []):
            m.drop(f"{where}.tool_approval_overrides.message")
    return out


def _skills(refs: Any, m: Mapping, where: str, target: str) -> list[dict[str, Any]]:
    out = []
    for ref in refs or []:
        out.append({"name": _ref_name(ref)})
        src = snake_keys(ref)
        for extra in ("org", "version"):
            if src.get(extra):
                m.drop(f"{where}.{extra}")
    m.rename(where, target)
    return out


def _agent(src: dict[str, Any], m: Mapping, nested: bool = False) -> dict[str, Any]:
    prefix = "sub_agents." if nested else ""
    out: dict[str, Any] = {}
    for key in ("name", "description", "instructions"):
        if key in src and (nested or key != "name"):
            out[key] = src[key]
    if "model" in src:
        out["model"] = _model(src["model"])
    if "model_override" in src:
        out["model"] = _model(src["model_override"])
        m.rename(f"{prefix}model_override", "subAgents.model")
    if "config" in src:  # legacy {model, temperature, max_tokens}
        raw = src["config"] if isinstance(src["config"], dict) else {}
        model = _model(raw.get("model", "")) if raw.get("model") else {}
        camel = {"max_tokens": "maxTokens", "top_p": "topP"}
        params = {camel.get(str(k), str(k)): v for k, v in raw.items() if k != "model"}
        if params:
            model["params"] = params
        out["model"] = model
        m.rename(f"{prefix}config", "model")
    usages: list[dict[str, Any]] = []
    for key in ("mcp_server_usages", "mcp_servers", "mcp_access"):
        if key in src:
            usages += [_usage_from_definition(u, m, prefix + key) for u in src[key] or []]
            if key != "mcp_servers" or nested is False:
                m.rename(prefix + key, "mcpServers")
    selections = _names(src.get("mcp_tool_selections"))
    for server, sel in selections.items():
        tools = [str(t) for t in snake_keys(sel).get("enabled_tools") or []]
        for usage in usages:
            if usage["name"] == server:
                usage["tools"] = tools
                break
        else:
            usages.append({"name": server, "tools": tools})
    if selections:
        m.rename(f"{prefix}mcp_tool_selections", "mcpServers[].tools")
    if usages:
        out["mcpServers"] = usages
    if "skill_refs" in src:
        out["skills"] = _skills(src["skill_refs"], m, f"{prefix}skill_refs", "skills")
    if "skills" in src:
        out["skills"] = [{"name": _ref_name(s)} for s in src["skills"] or []]
    if nested:
        for key in src:
            if key not in {
                "name",
                "description",
                "instructions",
                "model",
                "model_override",
                "config",
                "mcp_servers",
                "mcp_server_usages",
                "mcp_access",
                "mcp_tool_selections",
                "skill_refs",
                "skills",
                "agent",
            }:
                m.drop(f"sub_agents.{key}")
        if "agent" in src:
            out["agent"] = _ref_name(src["agent"])
        return out
    if "sub_agents" in src:
        out["subAgents"] = [_agent(snake_keys(s), m, nested=True) for s in src["sub_agents"] or []]
        m.rename("sub_agents", "subAgents")
    if "env" in src:
        out["env"] = _env_requirements(src["env"], m, "env")
    if "env_spec" in src:
        out["env"] = _env_requirements(snake_keys(src["env_spec"]).get("data"), m, "env_spec.data")
    refs = src.get("environment_refs") or src.get("environments") or []
    if refs:
        out["environments"] = [_ref_name(r) for r in refs]
        if "environment_refs" in src:
            m.rename("environment_refs", "environments")
    if "secrets" in src:
        out["secrets"] = list(src["secrets"])
    known = {
        "description",
        "instructions",
        "model",
        "config",
        "mcp_server_usages",
        "mcp_servers",
        "mcp_access",
        "mcp_tool_selections",
        "skill_refs",
        "skills",
        "sub_agents",
        "env",
        "env_spec",
        "environment_refs",
        "environments",
        "secrets",
    }
    for key in src:
        if key not in known:
            m.drop(key)
    return out


def _query(url: str, params: dict[str, Any]) -> str:
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urlencode({str(k): str(v) for k, v in params.items()})


def _mcp_server(src: dict[str, Any], m: Mapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "description" in src:
        out["description"] = src["description"]
    env_data = _names(snake_keys(src.get("env_spec")).get("data"))
    secrets = [k for k, v in env_data.items() if snake_keys(v).get("is_secret")]
    plain = {k: str(snake_keys(v).get("value", "")) for k, v in env_data.items() if k not in secrets}
    if "stdio" in src:
        s = snake_keys(src["stdio"])
        stdio: dict[str, Any] = {"command": s.get("command", "")}
        if s.get("args"):
            stdio["args"] = list(s["args"])
        env = {**plain, **{k: f"${{ $secrets.{k} }}" for k in secrets}}
        env.update({str(k): str(v) for k, v in (s.get("env_placeholders") or s.get("env") or {}).items()})
        if env:
            stdio["env"] = env
        if s.get("working_dir"):
            stdio["cwd"] = s["working_dir"]
            m.rename("stdio.working_dir", "stdio.cwd")
        if "env_placeholders" in s:
            m.rename("stdio.env_placeholders", "stdio.env")
        out["stdio"] = stdio
    elif "http" in src:
        h = snake_keys(src["http"])
        http: dict[str, Any] = {"url": _query(str(h.get("url", "")), h.get("query_params") or {})}
        if h.get("query_params"):
            m.rename("http.query_params", "http.url query")
        if h.get("headers"):
            http["headers"] = dict(h["headers"])
        if h.get("timeout_seconds"):
            http["timeoutSeconds"] = h["timeout_seconds"]
        out["http"] = http
    elif "docker" in src:
        d = snake_keys(src["docker"])
        args = ["run", "-i", "--rm"]
        for v in d.get("volumes") or []:
            vs = snake_keys(v)
            args += [
                "-v",
                f"{vs.get('host_path')}:{vs.get('container_path')}" + (":ro" if vs.get("read_only") else ""),
            ]
        if d.get("network"):
            args += ["--network", str(d["network"])]
        for p in d.get("ports") or []:
            ps = snake_keys(p)
            proto = f"/{ps['protocol']}" if ps.get("protocol") else ""
            args += ["-p", f"{ps.get('host_port')}:{ps.get('container_port')}{proto}"]
        if d.get("container_name"):
            args += ["--name", str(d["container_name"])]
        for k in [*plain, *secrets]:
            args += ["-e", k]
        args += [str(d.get("image", "")), *[str(a) for a in d.get("args") or []]]
        env = {**plain, **{k: f"${{ $secrets.{k} }}" for k in secrets}}
        out["stdio"] = {"command": "docker", "args": args} | ({"env": env} if env else {})
        m.rename("docker", "stdio (docker run -i)")
    if secrets:
        out["secrets"] = secrets
    if env_data:
        m.rename("env_spec.data", "stdio.env + secrets" if "http" not in src else "secrets")
    for key in ("icon_url", "tags", "default_enabled_tools"):
        if key in src:
            m.drop(key)
    for key in src:
        if key not in {
            "description",
            "stdio",
            "http",
            "docker",
            "env_spec",
            "icon_url",
            "tags",
            "default_enabled_tools",
            "secrets",
        }:
            m.drop(key)
    return out


def _environment(src: dict[str, Any], m: Mapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "description" in src:
        out["description"] = src["description"]
    data = _names(src.get("data"))
    variables = {}
    secrets = []
    for key, value in data.items():
        v = snake_keys(value) if isinstance(value, dict) else {"value": value}
        if v.get("is_secret"):
            secrets.append(key)
            if v.get("value"):
                m.drop(
                    f"data.{key}.value (secret values live in the secret store: `stigmer secret set {key}`)"
                )
        else:
            variables[key] = str(v.get("value", ""))
    if variables:
        out["variables"] = variables
    if secrets:
        out["secrets"] = secrets
    if data:
        m.rename("data", "variables + secrets")
    for key in src:
        if key not in {"description", "data"}:
            m.drop(key)
    return out


def _skill(src: dict[str, Any], m: Mapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("description", "path", "content"):
        if key in src:
            out[key] = src[key]
    if "skill_md" in src:
        out["content"] = src["skill_md"]
        m.rename("skill_md", "content")
    for key in src:
        if key not in {"description", "path", "content", "skill_md", "tag"}:
            m.drop(key)
    return out


def map_spec(kind: str, spec: Any, m: Mapping) -> dict[str, Any]:
    """An upstream spec of ``kind`` in this project's fields."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise UpstreamRefused("expected a mapping", ["spec"])
    src = snake_keys(spec)
    if kind == "Agent":
        return _agent(src, m)
    if kind == "McpServer":
        return _mcp_server(src, m)
    if kind == "Environment":
        return _environment(src, m)
    if kind == "Skill":
        return _skill(src, m)
    raise UpstreamRefused(f"upstream kind {kind!r} has no mapping here", ["kind"])


# ---------------------------------------------------------------------------------------------
# reverse


def _upstream_ref(name: str, kind: str) -> dict[str, Any]:
    return {"kind": kind, "slug": name}


def to_upstream_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """This project's spec of ``kind`` in upstream's fields (camelCase), where a mapping exists."""
    if kind == "Agent":
        return _agent_up(spec)
    if kind == "McpServer":
        return _mcp_up(spec)
    if kind == "Environment":
        data: dict[str, Any] = {k: {"value": v} for k, v in (spec.get("variables") or {}).items()}
        data.update({k: {"isSecret": True} for k in spec.get("secrets") or []})
        return {k: v for k, v in {"description": spec.get("description"), "data": data}.items() if v}
    if kind == "Skill":
        out: dict[str, Any] = {}
        if spec.get("content"):
            out["skillMd"] = spec["content"]
        return out
    return dict(spec)


def _usage_up(usage: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"mcpServerRef": _upstream_ref(usage.get("name", ""), "mcp_server")}
    if usage.get("tools"):
        out["enabledTools"] = list(usage["tools"])
    if usage.get("requireApproval"):
        out["toolApprovalOverrides"] = [
            {"toolName": t, "requiresApproval": True} for t in usage["requireApproval"]
        ]
    return out


def _agent_up(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("description", "instructions"):
        if spec.get(key):
            out[key] = spec[key]
    if spec.get("model"):
        model = spec["model"]
        name = (
            f"{model['provider']}/{model.get('name', '')}" if model.get("provider") else model.get("name", "")
        )
        if model.get("params"):  # upstream's config block carries the settings
            out["config"] = {"model": name, **model["params"]}
        else:
            out["model"] = name
    if spec.get("mcpServers"):
        out["mcpServerUsages"] = [_usage_up(u) for u in spec["mcpServers"]]
    if spec.get("skills"):
        out["skillRefs"] = [_upstream_ref(s.get("name", ""), "skill") for s in spec["skills"]]
    if spec.get("subAgents"):
        out["subAgents"] = [
            {
                k: v
                for k, v in {
                    "name": s.get("name"),
                    "description": s.get("description"),
                    "instructions": s.get("instructions"),
                    "mcpServerUsages": [_usage_up(u) for u in s.get("mcpServers") or []],
                    "skillRefs": [_upstream_ref(x.get("name", ""), "skill") for x in s.get("skills") or []],
                }.items()
                if v
            }
            for s in spec["subAgents"]
        ]
    if spec.get("env"):
        out["env"] = {
            e["name"]: {
                k: v
                for k, v in {
                    "isSecret": e.get("secret", False),
                    "description": e.get("description"),
                    "optional": not e.get("required", False),
                    "value": e.get("default"),
                }.items()
                if v
            }
            for e in spec["env"]
        }
    if spec.get("environments"):
        out["environmentRefs"] = [_upstream_ref(n, "environment") for n in spec["environments"]]
    return out


def _mcp_up(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.get("description"):
        out["description"] = spec["description"]
    if "stdio" in spec:
        s = spec["stdio"]
        stdio = {"command": s.get("command", ""), "args": s.get("args") or [], "workingDir": s.get("cwd")}
        out["stdio"] = {k: v for k, v in stdio.items() if v}
        if s.get("env"):
            out["stdio"]["envPlaceholders"] = dict(s["env"])
    if "http" in spec:
        h = spec["http"]
        http = {
            "url": h.get("url", ""),
            "headers": h.get("headers"),
            "timeoutSeconds": h.get("timeoutSeconds"),
        }
        out["http"] = {k: v for k, v in http.items() if v}
    if spec.get("secrets"):
        out["envSpec"] = {"data": {k: {"isSecret": True} for k in spec["secrets"]}}
    return out
