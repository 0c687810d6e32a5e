"""``to_python``: manifests as SDK builder code (to move YAML definitions into Python).

Task shapes the builders express are written with them; anything else is kept as plain data
(``extra=`` on a task or workflow, or a raw dict task), so the code always rebuilds the same
messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["to_python"]

_TYPES = ("set", "switch", "for", "fork", "try", "raise", "wait", "listen", "emit", "call", "run", "do")


class _Gen:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def use(self, name: str) -> str:
        self.names.add(name)
        return name

    # -- helpers -----------------------------------------------------------------------------

    def call(self, name: str, *args: str, **kwargs: Any) -> str:
        parts = list(args) + [f"{k}={v}" for k, v in kwargs.items() if v is not None]
        return f"{self.use(name)}({', '.join(parts)})"

    # -- tasks -------------------------------------------------------------------------------

    def tasks(self, items: Any) -> str:
        if not isinstance(items, list) or not all(isinstance(i, dict) and len(i) == 1 for i in items):
            raise _Raw
        pairs = [f"({name!r}, {self.task(body)})" for item in items for name, body in item.items()]
        return "[" + ", ".join(pairs) + "]"

    def task(self, body: Any) -> str:
        """Builder code for a task, checked: it must rebuild exactly ``body``, else it is kept as data."""
        if not isinstance(body, dict):
            return repr(body)
        names = set(self.names)
        try:
            code = self._task(dict(body))
            if _canon(_evaluate(code).to_dict()) != _canon(body):
                raise _Raw
            return code
        except Exception:  # any shape the builders do not express exactly
            self.names = names
            return repr(body)

    def _task(self, body: dict[str, Any]) -> str:
        options: dict[str, Any] = {}
        for key, option in (("if", "if_"), ("then", "then"), ("metadata", "metadata")):
            if key in body:
                options[option] = repr(body.pop(key))
        for key, option, inner in (
            ("input", "input_from", "from"),
            ("output", "output_as", "as"),
            ("export", "export_as", "as"),
            ("timeout", "timeout", "after"),
        ):
            value = body.get(key)
            if isinstance(value, dict) and list(value) == [inner]:
                options[option] = repr(body.pop(key)[inner])
        kinds = [k for k in _TYPES if k in body]
        if "for" in kinds:
            kinds = ["for"]  # its body is a `do` list
        if len(kinds) != 1:
            raise _Raw
        kind = kinds[0]
        builder = _BUILDERS[kind]
        args, kwargs, used = builder(self, body)
        extra = {k: v for k, v in body.items() if k not in used}
        if extra:
            options["extra"] = repr(extra)
        return self.call(args[0], *args[1:], **kwargs, **options)


class _Raw(Exception):
    """This shape is kept as plain data."""


Built = tuple[list[str], dict[str, Any], set[str]]


def _set(g: _Gen, b: dict[str, Any]) -> Built:
    return ["Set", repr(b["set"])], {}, {"set"}


def _switch(g: _Gen, b: dict[str, Any]) -> Built:
    cases = []
    for item in b["switch"]:
        if not isinstance(item, dict) or len(item) != 1:
            raise _Raw
        [(name, case)] = item.items()
        if not isinstance(case, dict) or "then" not in case or set(case) - {"when", "then"}:
            raise _Raw
        cases.append(g.call("Case", repr(name), then=repr(case["then"]), when=_opt(case.get("when"))))
    return ["Switch", *cases], {}, {"switch"}


def _for(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["for"]
    if not isinstance(spec, dict) or "in" not in spec or set(spec) - {"each", "in", "at"}:
        raise _Raw
    kwargs = {"each": _opt(spec.get("each")), "at": _opt(spec.get("at")), "while_": _opt(b.get("while"))}
    return ["For", repr(spec["in"]), g.tasks(b.get("do"))], kwargs, {"for", "while", "do"}


def _fork(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["fork"]
    if not isinstance(spec, dict) or set(spec) - {"branches", "compete"}:
        raise _Raw
    return ["Fork", g.tasks(spec.get("branches"))], {"compete": _opt(spec.get("compete"))}, {"fork"}


def _retry(g: _Gen, retry: Any) -> str:
    if isinstance(retry, str):
        return repr(retry)
    if not isinstance(retry, dict) or set(retry) - {
        "when",
        "exceptWhen",
        "delay",
        "backoff",
        "limit",
        "jitter",
    }:
        raise _Raw
    kwargs: dict[str, Any] = {"when": _opt(retry.get("when")), "except_when": _opt(retry.get("exceptWhen"))}
    kwargs["delay"] = _opt(retry.get("delay"))
    backoff = retry.get("backoff")
    if backoff is not None:
        if not isinstance(backoff, dict) or len(backoff) != 1 or list(backoff.values()) != [{}]:
            raise _Raw
        kwargs["backoff"] = repr(next(iter(backoff)))
    limit = retry.get("limit")
    if limit is not None:
        attempt = limit.get("attempt", {}) if isinstance(limit, dict) else None
        if (
            not isinstance(attempt, dict)
            or set(limit) - {"attempt", "duration"}
            or set(attempt) - {"count", "duration"}
        ):
            raise _Raw
        if "attempt" in limit and not attempt:
            raise _Raw
        kwargs["limit_attempts"] = _opt(attempt.get("count"))
        kwargs["attempt_duration"] = _opt(attempt.get("duration"))
        kwargs["limit_duration"] = _opt(limit.get("duration"))
    jitter = retry.get("jitter")
    if jitter is not None:
        if not isinstance(jitter, dict) or set(jitter) != {"from", "to"}:
            raise _Raw
        kwargs["jitter"] = repr((jitter["from"], jitter["to"]))
    return g.call("Retry", **kwargs)


def _try(g: _Gen, b: dict[str, Any]) -> Built:
    catch = b.get("catch")
    if not isinstance(catch, dict) or set(catch) - {
        "errors",
        "as",
        "when",
        "exceptWhen",
        "retry",
        "do",
        "then",
    }:
        raise _Raw
    errors = catch.get("errors")
    if errors is not None and (not isinstance(errors, dict) or list(errors) != ["with"]):
        raise _Raw
    kwargs = {
        "errors": _opt(errors["with"]) if errors is not None else None,
        "as_": _opt(catch.get("as")),
        "when": _opt(catch.get("when")),
        "except_when": _opt(catch.get("exceptWhen")),
        "retry": _retry(g, catch["retry"]) if "retry" in catch else None,
        "do": g.tasks(catch["do"]) if "do" in catch else None,
        "then": _opt(catch.get("then")),
    }
    return ["Try", g.tasks(b["try"]), g.call("Catch", **kwargs)], {}, {"try", "catch"}


def _raise(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["raise"]
    if not isinstance(spec, dict) or list(spec) != ["error"]:
        raise _Raw
    error = spec["error"]
    if isinstance(error, str):
        return ["Raise", repr(error)], {}, {"raise"}
    if (
        not isinstance(error, dict)
        or "type" not in error
        or set(error) - {"type", "status", "title", "detail"}
    ):
        raise _Raw
    return ["Raise"], {k: _opt(error.get(k)) for k in ("type", "status", "title", "detail")}, {"raise"}


def _wait(g: _Gen, b: dict[str, Any]) -> Built:
    return ["Wait", repr(b["wait"])], {}, {"wait"}


def _filters(items: Any) -> str:
    if not isinstance(items, list) or not all(isinstance(i, dict) and list(i) == ["with"] for i in items):
        raise _Raw
    return repr([i["with"] for i in items])


def _listen(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["listen"]
    if not isinstance(spec, dict) or set(spec) - {"to", "read"} or not isinstance(spec.get("to"), dict):
        raise _Raw
    to = spec["to"]
    kwargs: dict[str, Any] = {"read": _opt(spec.get("read"))}
    if set(to) == {"one"} and isinstance(to["one"], dict) and list(to["one"]) == ["with"]:
        kwargs["one"] = repr(to["one"]["with"])
    elif set(to) == {"all"}:
        kwargs["all"] = _filters(to["all"])
    elif "any" in to and set(to) <= {"any", "until"} and isinstance(to.get("until", ""), str):
        kwargs["any"] = _filters(to["any"])
        kwargs["until"] = _opt(to.get("until"))
    else:
        raise _Raw
    return ["Listen"], kwargs, {"listen"}


def _emit(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["emit"]
    event = spec.get("event") if isinstance(spec, dict) and list(spec) == ["event"] else None
    attrs = event.get("with") if isinstance(event, dict) and list(event) == ["with"] else None
    if not isinstance(attrs, dict) or "type" not in attrs:
        raise _Raw
    rest = {k: v for k, v in attrs.items() if k not in ("type", "source", "data")}
    kwargs = {
        "source": _opt(attrs.get("source")),
        "data": _opt(attrs.get("data")),
        "attributes": _opt(rest or None),
    }
    return ["Emit", repr(attrs["type"])], kwargs, {"emit"}


def _call(g: _Gen, b: dict[str, Any]) -> Built:
    target, args = b["call"], b.get("with")
    if args is not None and not isinstance(args, dict):
        raise _Raw
    args = dict(args or {})
    used = {"call", "with"}
    if target == "http":
        endpoint = args.pop("endpoint", None)
        auth = None
        if isinstance(endpoint, dict) and set(endpoint) == {"uri", "authentication"}:
            endpoint, auth = endpoint["uri"], endpoint["authentication"]
        if (
            "method" not in args
            or endpoint is None
            or set(args) - {"method", "headers", "body", "query", "output", "redirect"}
        ):
            raise _Raw
        kwargs = {k: _opt(args.get(k)) for k in ("headers", "body", "query", "output", "redirect")}
        return (
            ["CallHttp", repr(args["method"]), repr(endpoint)],
            {**kwargs, "authentication": _opt(auth)},
            used,
        )
    if target == "openapi":
        allowed = {"document", "operationId", "parameters", "authentication", "output", "redirect"}
        if "document" not in args or "operationId" not in args or set(args) - allowed:
            raise _Raw
        doc = args["document"]
        doc = (
            doc["endpoint"]
            if isinstance(doc, dict) and list(doc) == ["endpoint"] and isinstance(doc["endpoint"], str)
            else doc
        )
        kwargs = {k: _opt(args.get(k)) for k in ("parameters", "authentication", "output", "redirect")}
        return ["CallOpenApi", repr(doc), repr(args["operationId"])], kwargs, used
    if target == "grpc":
        proto, service = args.get("proto"), args.get("service")
        if (
            not isinstance(proto, dict)
            or list(proto) != ["endpoint"]
            or not isinstance(service, dict)
            or set(service) - {"name", "host", "port"}
            or "host" not in service
            or "method" not in args
            or set(args) - {"proto", "service", "method", "arguments", "authentication"}
        ):
            raise _Raw
        kwargs = {
            "host": repr(service["host"]),
            "port": _opt(service.get("port")),
            "arguments": _opt(args.get("arguments")),
            "authentication": _opt(args.get("authentication")),
        }
        return (
            ["CallGrpc", repr(proto["endpoint"]), repr(service.get("name")), repr(args["method"])],
            kwargs,
            used,
        )
    if target == "agent":
        if "agent" not in args or "message" not in args or set(args) - {"agent", "message", "session"}:
            raise _Raw
        return (
            ["CallAgent", repr(args["agent"]), repr(args["message"])],
            {"session": _opt(args.get("session"))},
            used,
        )
    if not isinstance(target, str):
        raise _Raw
    return ["Call", repr(target)], {"with_": _opt(b.get("with"))}, used


def _run(g: _Gen, b: dict[str, Any]) -> Built:
    spec = b["run"]
    if not isinstance(spec, dict):
        raise _Raw
    common = {"await_": _opt(spec.get("await")), "return_": _opt(spec.get("return"))}
    keys = set(spec) - {"await", "return"}
    if keys == {"shell"} and isinstance(spec["shell"], dict) and "command" in spec["shell"]:
        shell = spec["shell"]
        if set(shell) - {"command", "arguments", "environment"}:
            raise _Raw
        kwargs = {"arguments": _opt(shell.get("arguments")), "environment": _opt(shell.get("environment"))}
        return ["RunShell", repr(shell["command"])], {**kwargs, **common}, {"run"}
    if keys == {"script"} and isinstance(spec["script"], dict):
        script = spec["script"]
        source = script.get("source")
        if (
            set(script) - {"language", "code", "source", "arguments", "environment"}
            or "language" not in script
        ):
            raise _Raw
        if source is not None and not (isinstance(source, dict) and list(source) == ["endpoint"]):
            raise _Raw
        kwargs = {
            "language": repr(script["language"]),
            "source": _opt(source["endpoint"] if source is not None else None),
            "arguments": _opt(script.get("arguments")),
            "environment": _opt(script.get("environment")),
        }
        code = [repr(script["code"])] if "code" in script else []
        return ["RunScript", *code], {**kwargs, **common}, {"run"}
    if keys == {"workflow"} and isinstance(spec["workflow"], dict) and "return" not in spec:
        wf = spec["workflow"]
        if set(wf) - {"namespace", "name", "version", "input"} or not {"namespace", "name", "version"} <= set(
            wf
        ):
            raise _Raw
        kwargs = {
            "namespace": repr(wf["namespace"]),
            "version": repr(wf["version"]),
            "input": _opt(wf.get("input")),
        }
        return ["RunWorkflow", repr(wf["name"])], {**kwargs, "await_": common["await_"]}, {"run"}
    raise _Raw


def _do(g: _Gen, b: dict[str, Any]) -> Built:
    return ["Do", g.tasks(b["do"])], {}, {"do"}


_BUILDERS: dict[str, Callable[[_Gen, dict[str, Any]], Built]] = {
    "set": _set,
    "switch": _switch,
    "for": _for,
    "fork": _fork,
    "try": _try,
    "raise": _raise,
    "wait": _wait,
    "listen": _listen,
    "emit": _emit,
    "call": _call,
    "run": _run,
    "do": _do,
}


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _evaluate(code: str) -> Any:
    """Evaluate generated builder code (names of ``stigmer.sdk`` only, no builtins)."""
    import stigmer.sdk

    namespace = {name: getattr(stigmer.sdk, name) for name in stigmer.sdk.__all__}
    return eval(code, {"__builtins__": {}}, namespace)


def _opt(value: Any) -> str | None:
    return None if value is None else repr(value)


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
    if kwargs["dsl"] == repr("1.0.0"):
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
