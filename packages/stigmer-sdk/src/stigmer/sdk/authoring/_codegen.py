"""``to_python``: manifests as SDK builder code (to move YAML definitions into Python).

Task shapes the builders express are written with them; anything else is kept as plain data
(``extra=`` on a task or workflow, or a raw dict task), so the code always rebuilds the same
messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stigmer.sdk.authoring._codegen_tasks import Gen as _Gen
from stigmer.sdk.authoring._codegen_tasks import Raw as _Raw
from stigmer.sdk.authoring._codegen_tasks import canon as _canon
from stigmer.sdk.authoring._codegen_tasks import evaluate as _evaluate
from stigmer.sdk.authoring._codegen_tasks import opt as _opt

__all__ = ["to_python"]


# -- resources -------------------------------------------------------------------------------


def _meta(manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest.get("metadata") or {}
    return {"labels": _opt(meta.get("labels") or None), "annotations": _opt(meta.get("annotations") or None)}


def _model(g: _Gen, model: Any) -> str | None:
    if model is None:
        return None
    if set(model) <= {"provider", "name"} and model.get("provider") and model.get("name"):
        return repr(f"{model['provider']}:{model['name']}")
    return g.call(
        "Model",
        repr(model.get("provider", "")),
        repr(model.get("name", "")),
        base_url=_opt(model.get("baseUrl")),
        params=_opt(model.get("params")),
    )


def _usage(g: _Gen, usage: dict[str, Any]) -> str:
    if set(usage) == {"name"}:
        return repr(usage["name"])
    return g.call(
        "McpUsage",
        repr(usage["name"]),
        tools=_opt(usage.get("tools")),
        require_approval=_opt(usage.get("requireApproval")),
    )


def _refs(items: Any) -> str | None:
    if not items:
        return None
    if any(set(i) != {"name"} for i in items):
        raise _Raw
    return repr([i["name"] for i in items])


def _tools(items: Any) -> str | None:
    if not items:
        return None
    return repr([i["name"] if set(i) == {"name"} else i for i in items])


def _agent(g: _Gen, m: dict[str, Any]) -> str:
    spec = m.get("spec") or {}
    subs = []
    for sub in spec.get("subAgents") or []:
        subs.append(
            g.call(
                "SubAgent",
                repr(sub["name"]),
                instructions=_opt(sub.get("instructions")),
                description=_opt(sub.get("description")),
                model=_model(g, sub.get("model")),
                skills=_refs(sub.get("skills")),
                mcp_servers=("[" + ", ".join(_usage(g, u) for u in sub["mcpServers"]) + "]")
                if sub.get("mcpServers")
                else None,
                agent=_opt(sub.get("agent")),
                tools=_tools(sub.get("tools")),
                own_workspace=_opt(sub.get("ownWorkspace")),
            )
        )
    env = [
        g.call(
            "EnvVar",
            repr(e["name"]),
            description=_opt(e.get("description")),
            required=_opt(e.get("required")),
            secret=_opt(e.get("secret")),
            default=_opt(e.get("default")),
        )
        for e in spec.get("env") or []
    ]
    return g.call(
        "Agent",
        repr(m["metadata"]["name"]),
        description=_opt(spec.get("description")),
        instructions=_opt(spec.get("instructions")),
        model=_model(g, spec.get("model")),
        skills=_refs(spec.get("skills")),
        mcp_servers=("[" + ", ".join(_usage(g, u) for u in spec["mcpServers"]) + "]")
        if spec.get("mcpServers")
        else None,
        sub_agents=("[" + ", ".join(subs) + "]") if subs else None,
        environments=_opt(spec.get("environments") or None),
        secrets=_opt(spec.get("secrets") or None),
        env=("[" + ", ".join(env) + "]") if env else None,
        tools=_tools(spec.get("tools")),
        workspace=_opt(spec.get("workspace")),
        **_meta(m),
    )


def _skill(g: _Gen, m: dict[str, Any]) -> str:
    spec = m.get("spec") or {}
    if spec.get("artifact"):
        raise _Raw
    return g.call(
        "Skill",
        repr(m["metadata"]["name"]),
        path=_opt(spec.get("path")),
        content=_opt(spec.get("content")),
        description=_opt(spec.get("description")),
        **_meta(m),
    )


def _environment(g: _Gen, m: dict[str, Any]) -> str:
    spec = m.get("spec") or {}
    return g.call(
        "Environment",
        repr(m["metadata"]["name"]),
        variables=_opt(spec.get("variables") or None),
        secrets=_opt(spec.get("secrets") or None),
        description=_opt(spec.get("description")),
        **_meta(m),
    )


def _mcp(g: _Gen, m: dict[str, Any]) -> str:
    spec = m.get("spec") or {}
    stdio, http = spec.get("stdio"), spec.get("http")
    transport: dict[str, Any]
    if stdio is not None:
        transport = {
            "command": repr(stdio.get("command", "")),
            "args": _opt(stdio.get("args") or None),
            "env": _opt(stdio.get("env") or None),
            "cwd": _opt(stdio.get("cwd")),
        }
    elif http is not None:
        transport = {
            "url": repr(http.get("url", "")),
            "headers": _opt(http.get("headers") or None),
            "timeout_seconds": _opt(http.get("timeoutSeconds")),
        }
    else:
        raise _Raw
    return g.call(
        "McpServer",
        repr(m["metadata"]["name"]),
        **transport,
        secrets=_opt(spec.get("secrets") or None),
        description=_opt(spec.get("description")),
        **_meta(m),
    )


def _workflow(g: _Gen, m: dict[str, Any]) -> str:
    spec = dict(m.get("spec") or {})
    doc = dict(spec.pop("document", {}) or {})
    kwargs: dict[str, Any] = {
        "namespace": repr(doc.pop("namespace", "default")),
        "version": repr(doc.pop("version", "1.0.0")),
        "dsl": _opt(doc.pop("dsl", None)),
    }
    if kwargs["dsl"] == repr("1.0.3"):  # the builder's default (the DSL its task shapes follow)
        kwargs["dsl"] = None
    name = m["metadata"]["name"]
    doc_name = doc.pop("name", name)
    kwargs["document_name"] = _opt(doc_name) if doc_name != name else None
    for key in ("title", "summary", "tags"):
        kwargs[key] = _opt(doc.pop(key, None))
    if doc:
        raise _Raw  # other document fields
    extra: dict[str, Any] = {}
    for key, schema_kw, other_kw, other_key in (
        ("input", "input_schema", "input_from", "from"),
        ("output", "output_schema", "output_as", "as"),
    ):
        section = spec.pop(key, None)
        if section is None:
            continue
        schema = section.get("schema") if isinstance(section, dict) else None
        simple_schema = schema is None or (
            isinstance(schema, dict) and set(schema) == {"format", "document"} and schema["format"] == "json"
        )
        if not isinstance(section, dict) or set(section) - {"schema", other_key} or not simple_schema:
            extra[key] = section
            continue
        kwargs[schema_kw] = _opt(schema["document"]) if schema is not None else None
        kwargs[other_kw] = _opt(section.get(other_key))
    use = dict(spec.pop("use", {}) or {})
    if isinstance(use.get("secrets"), list):
        kwargs["secrets"] = repr(use.pop("secrets"))
    kwargs["use"] = _opt(use or None)
    timeout = spec.pop("timeout", None)
    if isinstance(timeout, dict) and list(timeout) == ["after"]:
        kwargs["timeout"] = repr(timeout["after"])
    elif timeout is not None:
        extra["timeout"] = timeout
    do = spec.pop("do", [])
    kwargs["do"] = g.tasks(do)
    extra.update(spec)
    kwargs["extra"] = _opt(extra or None)
    return g.call("Workflow", repr(name), **kwargs, **_meta(m))


def _session(g: _Gen, m: dict[str, Any]) -> str:
    spec = m.get("spec") or {}
    agent = spec.get("agent") or {}
    if set(agent) != {"name"}:
        raise _Raw
    return g.call(
        "Session",
        repr(m["metadata"]["name"]),
        agent=repr(agent["name"]),
        title=_opt(spec.get("title")),
        **_meta(m),
    )


_RESOURCES: dict[str, Callable[[_Gen, dict[str, Any]], str]] = {
    "Session": _session,
    "Agent": _agent,
    "Skill": _skill,
    "Environment": _environment,
    "McpServer": _mcp,
    "Workflow": _workflow,
}


def to_python(*resources: Any) -> str:
    """Python source that defines the given resources with the SDK's builders (one module-level
    variable each), ready for ``stigmer apply -f app.py``. Accepts what ``apply`` accepts."""
    from stigmer.core import message_to_manifest, slugify, unwrap
    from stigmer.sdk._collect import collect
    from stigmer.sdk._export import strip

    gen = _Gen()
    lines: list[str] = []
    used_vars: set[str] = set()
    order: list[str] = []
    for item in collect(resources):
        manifest = strip(unwrap(item.resource))
        manifest.pop("status", None)
        var = slugify(item.name).replace("-", "_") or "resource"
        var = (
            f"{var}_{item.kind.lower()}"
            if var in used_vars or not var.isidentifier() or var[0].isdigit()
            else var
        )
        if not var.isidentifier() or var[0].isdigit():
            var = f"{item.kind.lower()}_{len(used_vars)}"
        used_vars.add(var)
        order.append(var)
        names = set(gen.names)
        try:
            code = _RESOURCES[item.kind](gen, manifest)
            if _canon(_evaluate(code).to_manifest()) != _canon(manifest):
                raise _Raw
        except Exception:  # kept as a manifest dict, which apply accepts too
            gen.names = names
            code = repr(message_to_manifest(unwrap(item.resource), include_status=False))
        lines.append(f"{var} = {code}")
    header = f"from stigmer.sdk import {', '.join(sorted(gen.names))}\n\n" if gen.names else ""
    listing = f"\n\nresources = [{', '.join(order)}]\n"
    return header + "\n".join(lines) + listing
