"""Upstream's ``tasks`` workflow shape to a Serverless Workflow 1.0 document.

Upstream stores ``spec.document`` + ``spec.tasks[{name, kind, task_config, export, flow}]`` and
turns it into a DSL document in its runner. The same conversion here, done once at load: the
stored spec is the DSL document. Kinds with no counterpart are refused with their location.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from stigmer.core.upstream._common import Mapping, UpstreamRefused, snake, snake_keys

__all__ = ["DIALECT_ANNOTATION", "TASK_KINDS", "UNCONVERTIBLE", "convert_workflow", "is_tasks_shape"]

DIALECT_ANNOTATION = "stigmer.ai/dialect"

# upstream kind (as written: `set_vars`, `SET`, `WORKFLOW_TASK_KIND_SET`...) -> the canonical name
_ALIASES = {
    "set": "set_vars",
    "switch": "switch_case",
    "for": "for_each",
    "try": "try_catch",
    "raise": "raise_error",
    "run": "run_workflow",
    "emit": "emit_event",
}
TASK_KINDS = (
    "set_vars",
    "http_call",
    "agent_call",
    "wait",
    "switch_case",
    "for_each",
    "fork",
    "try_catch",
    "listen",
    "raise_error",
    "run_workflow",
    "emit_event",
)
UNCONVERTIBLE: dict[str, str] = {
    "llm_call": "a bare model call has no DSL counterpart: declare an Agent and use agent_call (call: agent)",
    "human_input": "no human-input task here: an agent tool with requireApproval, or a listen for an event "
    "sent with `stigmer execution send-event`",
    "grpc_call": "a DSL call: grpc needs the service's .proto document: write it as a call: grpc task",
    "call_activity": "Temporal activities of upstream's runner do not exist here: use call: http or run: script",
}
_DATA_VAR = re.compile(r"\$data\b")


def is_tasks_shape(spec: Any) -> bool:
    return isinstance(spec, dict) and "tasks" in spec and "do" not in spec


def _kind(value: Any) -> str:
    text = snake(str(value or "")).removeprefix("workflow_task_kind_")
    return _ALIASES.get(text, text)


def _duration(seconds: Any) -> dict[str, Any]:
    return {"seconds": seconds}


class _Converter:
    def __init__(self, m: Mapping, namespace: str, version: str) -> None:
        self.m = m
        self.namespace = namespace
        self.version = version
        self.uses_data = False

    def tasks(self, items: Any, path: list[str | int]) -> list[dict[str, Any]]:
        if not isinstance(items, list):
            raise UpstreamRefused("expected a list of tasks", path)
        return [self.task(item, [*path, i]) for i, item in enumerate(items)]

    def task(self, item: Any, path: list[str | int]) -> dict[str, Any]:
        src = snake_keys(item)
        name = src.get("name")
        if not isinstance(name, str) or not name:
            raise UpstreamRefused("a task needs a name", [*path, "name"])
        kind = _kind(src.get("kind"))
        if kind in UNCONVERTIBLE:
            raise UpstreamRefused(
                f"task kind {kind} cannot be converted: {UNCONVERTIBLE[kind]}", [*path, "kind"]
            )
        if kind not in TASK_KINDS:
            raise UpstreamRefused(
                f"unknown task kind {src.get('kind')!r}; upstream kinds converted here: {', '.join(TASK_KINDS)}",
                [*path, "kind"],
            )
        config_key = "task_config" if "task_config" in src else "config"
        config = snake_keys(src.get(config_key) or {})
        cpath: list[str | int] = [*path, config_key]
        try:
            body: dict[str, Any] = getattr(self, kind)(config, cpath, src)
        except (TypeError, ValueError, AttributeError) as exc:  # a config of another shape
            raise UpstreamRefused(
                f"task_config is not the shape upstream's {kind} has ({exc})", cpath
            ) from None
        export = snake_keys(src.get("export"))
        if export.get("as") not in (None, ""):
            body["export"] = {"as": export["as"]}
        then = snake_keys(src.get("flow")).get("then") or src.get("then")
        if then:
            body["then"] = then
        for key in src:
            if key not in {"name", "kind", "task_config", "config", "export", "flow", "then"}:
                self.m.drop(f"tasks[].{key}")
        return {name: body}

    # one method per upstream kind ------------------------------------------------------------

    def set_vars(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        variables = c.get("variables", c)
        if not isinstance(variables, dict):
            raise UpstreamRefused("set_vars needs variables: a mapping", [*path, "variables"])
        return {"set": dict(variables)}

    def http_call(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        endpoint = c.get("endpoint")
        uri = snake_keys(endpoint).get("uri") if isinstance(endpoint, dict) else endpoint
        if not uri:
            raise UpstreamRefused("http_call needs endpoint.uri", [*path, "endpoint"])
        with_: dict[str, Any] = {"method": str(c.get("method", "GET")).lower(), "endpoint": uri}
        for key in ("headers", "body", "query"):
            if c.get(key) not in (None, {}):
                with_[key] = c[key]
        out: dict[str, Any] = {"call": "http", "with": with_}
        if c.get("timeout_seconds"):
            out["timeout"] = {"after": _duration(c["timeout_seconds"])}
        return out

    def agent_call(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        if not c.get("agent"):
            raise UpstreamRefused("agent_call needs agent", [*path, "agent"])
        with_: dict[str, Any] = {"agent": str(c["agent"]), "message": c.get("message", "${ . }")}
        out: dict[str, Any] = {"call": "agent", "with": with_}
        cfg = snake_keys(c.get("config"))
        if cfg.get("timeout"):
            out["timeout"] = {"after": _duration(cfg["timeout"])}
        for key in ("model", "temperature"):
            if key in cfg:
                self.m.drop(f"agent_call.config.{key} (set it on the Agent)")
        for key in ("env", "scope"):
            if key in c:
                self.m.drop(f"agent_call.{key}")
        return out

    def wait(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        if "seconds" in c:
            return {"wait": {"seconds": c["seconds"]}}
        if "duration" in c:
            return {"wait": c["duration"]}
        raise UpstreamRefused("wait needs seconds", path)

    def switch_case(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        cases = []
        for i, case in enumerate(c.get("cases") or []):
            cs = snake_keys(case)
            name = str(cs.get("name") or f"case{i}")
            body: dict[str, Any] = {"then": cs.get("then", "continue")}
            if cs.get("when"):
                body["when"] = cs["when"]
            cases.append({name: body})
        if not cases:
            raise UpstreamRefused("switch_case needs cases", [*path, "cases"])
        return {"switch": cases}

    def for_each(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        loop: dict[str, Any] = {"each": c.get("each", "item"), "in": c.get("in", "${ . }")}
        if c.get("at"):
            loop["at"] = c["at"]
        return {"for": loop, "do": self.tasks(c.get("do") or [], [*path, "do"])}

    def fork(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        branches = []
        for i, branch in enumerate(c.get("branches") or []):
            b = snake_keys(branch)
            here: list[str | int] = [*path, "branches", i]
            branches.append(
                {str(b.get("name") or f"branch{i}"): {"do": self.tasks(b.get("do") or [], [*here, "do"])}}
            )
        return {"fork": {"branches": branches, "compete": bool(c.get("compete", False))}}

    def try_catch(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"try": self.tasks(c.get("try") or [], [*path, "try"])}
        catch = snake_keys(c.get("catch"))
        body: dict[str, Any] = {}
        if catch.get("as"):
            body["as"] = catch["as"]
        if catch.get("do"):
            body["do"] = self.tasks(catch["do"], [*path, "catch", "do"])
        out["catch"] = body
        return out

    def listen(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        to = snake_keys(c.get("to"))
        signals = [snake_keys(s) for s in to.get("signals") or []]
        if not signals:
            raise UpstreamRefused("listen needs to.signals", [*path, "to", "signals"])
        filters = [{"with": {"type": str(s.get("id"))}} for s in signals]
        mode = str(to.get("mode", "one"))
        if mode == "all":
            return {"listen": {"to": {"all": filters}}}
        if len(filters) == 1:
            return {"listen": {"to": {"one": filters[0]}}}
        return {"listen": {"to": {"any": filters}}}

    def raise_error(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        error = str(c.get("error") or "error")
        # the DSL wants a URI (or an expression) as the type: a bare name goes under https://stigmer.ai/errors/upstream/
        kind = (
            error
            if ":" in error or error.strip().startswith("${")
            else f"https://stigmer.ai/errors/upstream/{quote(error, safe='')}"
        )
        err: dict[str, Any] = {"type": kind, "status": int(c.get("status", 500)), "title": error}
        if c.get("message"):
            err["detail"] = c["message"]
        return {"raise": {"error": err}}

    def run_workflow(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        if not c.get("workflow"):
            raise UpstreamRefused("run_workflow needs workflow", [*path, "workflow"])
        sub: dict[str, Any] = {
            "namespace": self.namespace,
            "name": str(c["workflow"]),
            "version": self.version,
        }
        if c.get("input") is not None:
            sub["input"] = c["input"]
        return {"run": {"workflow": sub}}

    def emit_event(self, c: dict[str, Any], path: list[str | int], task: dict[str, Any]) -> dict[str, Any]:
        event = snake_keys(c.get("event")) or c
        props = snake_keys(event.get("with")) or event
        if not props.get("type"):
            raise UpstreamRefused("emit_event needs type", [*path, "type"])
        with_ = {k: props[k] for k in ("type", "source", "subject", "data", "datacontenttype") if k in props}
        with_.setdefault("source", "stigmer://workflow")
        return {"emit": {"event": {"with": with_}}}


def _mentions_data(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_DATA_VAR.search(value))
    if isinstance(value, dict):
        return any(_mentions_data(v) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_data(v) for v in value)
    return False


def convert_workflow(spec: dict[str, Any], name: str, m: Mapping) -> dict[str, Any]:
    """The DSL document for upstream's ``{document, tasks, description, env_spec}`` spec.

    A document whose expressions read ``$data`` (upstream's runner state) gets the
    ``stigmer.ai/dialect: zigflow`` opt-in in ``document.metadata``.
    """
    src = snake_keys(spec)
    doc_src = snake_keys(src.get("document"))
    document: dict[str, Any] = {
        "dsl": str(doc_src.get("dsl") or "1.0.0"),
        "namespace": str(doc_src.get("namespace") or "default"),
        "name": str(doc_src.get("name") or name),
        "version": str(doc_src.get("version") or "1.0.0"),
    }
    summary = doc_src.get("description") or src.get("description")
    if summary:
        document["summary"] = str(summary)
        m.rename("document.description" if doc_src.get("description") else "description", "document.summary")
    if doc_src.get("title"):
        document["title"] = doc_src["title"]
    converter = _Converter(m, document["namespace"], document["version"])
    do = converter.tasks(src.get("tasks"), ["spec", "tasks"])
    m.rename("tasks", "do")
    out: dict[str, Any] = {"document": document, "do": do}
    data = snake_keys(src.get("env_spec")).get("data")
    env = {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
    secrets = [k for k, v in env.items() if snake_keys(v).get("is_secret")]
    if secrets:
        out["use"] = {"secrets": secrets}
        m.rename("env_spec.data (secrets)", "use.secrets")
    if any(k not in secrets for k in env):
        m.drop("env_spec.data (plain variables: give them as input)")
    if _mentions_data(do):
        document["metadata"] = {DIALECT_ANNOTATION: "zigflow"}
        m.rename("$data expressions", f"document.metadata {DIALECT_ANNOTATION}: zigflow")
    for key in src:
        if key not in {"document", "tasks", "description", "env_spec"}:
            m.drop(key)
    return out


# ---------------------------------------------------------------------------------------------
# reverse: a DSL document to upstream's tasks, when every task has an upstream kind


class _NoMapping(Exception):
    """A part of the document has no upstream counterpart."""


_TASK_COMMON = {"export", "then"}
_DURATION_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "milliseconds": 0.001}


def _seconds(duration: Any) -> Any:
    if isinstance(duration, dict) and duration and set(duration) <= set(_DURATION_SECONDS):
        total = sum(float(v) * _DURATION_SECONDS[k] for k, v in duration.items())
        return int(total) if total == int(total) else total
    raise _NoMapping()


def _up_tasks(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise _NoMapping()
    return [_up_task(item) for item in items]


def _up_task(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict) or len(item) != 1:
        raise _NoMapping()
    name, task = next(iter(item.items()))
    if not isinstance(task, dict):
        raise _NoMapping()
    kind, config, extra = _up_body(task)
    if set(task) - _TASK_COMMON - extra:
        raise _NoMapping()
    out: dict[str, Any] = {"name": name, "kind": kind, "taskConfig": config}
    if isinstance(task.get("export"), dict) and set(task["export"]) == {"as"}:
        out["export"] = {"as": task["export"]["as"]}
    elif "export" in task:
        raise _NoMapping()
    if "then" in task:
        out["flow"] = {"then": task["then"]}
    return out


def _up_body(task: dict[str, Any]) -> tuple[str, dict[str, Any], set[str]]:
    """(upstream kind, task_config, the task's keys this used)."""
    if isinstance(task.get("set"), dict):
        return "set_vars", {"variables": task["set"]}, {"set"}
    call, with_ = task.get("call"), task.get("with") or {}
    timeout = task.get("timeout")
    after = _seconds(timeout["after"]) if isinstance(timeout, dict) and "after" in timeout else None
    if timeout is not None and after is None:
        raise _NoMapping()
    if call == "http" and isinstance(with_, dict) and isinstance(with_.get("endpoint"), str):
        if set(with_) - {"method", "endpoint", "headers", "body"}:
            raise _NoMapping()
        cfg: dict[str, Any] = {
            "method": str(with_.get("method", "get")).upper(),
            "endpoint": {"uri": with_["endpoint"]},
        }
        cfg.update({k: with_[k] for k in ("headers", "body") if k in with_})
        if after is not None:
            cfg["timeoutSeconds"] = after
        return "http_call", cfg, {"call", "with", "timeout"}
    if call == "agent" and isinstance(with_, dict) and set(with_) <= {"agent", "message"}:
        cfg = {"agent": with_.get("agent"), "message": with_.get("message")}
        if after is not None:
            cfg["config"] = {"timeout": after}
        return "agent_call", cfg, {"call", "with", "timeout"}
    if timeout is not None:
        raise _NoMapping()
    if "wait" in task:
        return "wait", {"seconds": _seconds(task["wait"])}, {"wait"}
    if isinstance(task.get("switch"), list):
        cases = []
        for case in task["switch"]:
            if not isinstance(case, dict) or len(case) != 1:
                raise _NoMapping()
            case_name, body = next(iter(case.items()))
            cases.append({"name": case_name, **{k: body[k] for k in ("when", "then") if k in body}})
        return "switch_case", {"cases": cases}, {"switch"}
    if isinstance(task.get("for"), dict) and set(task["for"]) <= {"each", "in"}:
        return "for_each", {**task["for"], "do": _up_tasks(task.get("do"))}, {"for", "do"}
    if isinstance(task.get("fork"), dict):
        branches = []
        for branch in task["fork"].get("branches") or []:
            ((branch_name, body),) = branch.items()
            if set(body) != {"do"}:
                raise _NoMapping()
            branches.append({"name": branch_name, "do": _up_tasks(body["do"])})
        return "fork", {"branches": branches, "compete": bool(task["fork"].get("compete", False))}, {"fork"}
    if "try" in task:
        catch = task.get("catch") or {}
        if set(catch) - {"as", "do"}:
            raise _NoMapping()
        up_catch: dict[str, Any] = {k: catch[k] for k in ("as",) if k in catch}
        if "do" in catch:
            up_catch["do"] = _up_tasks(catch["do"])
        return "try_catch", {"try": _up_tasks(task["try"]), "catch": up_catch}, {"try", "catch"}
    if isinstance(task.get("listen"), dict) and set(task["listen"]) == {"to"}:
        to = task["listen"]["to"]
        mode, filters = ("one", [to["one"]]) if "one" in to else ("all", to.get("all") or [])
        if "any" in to and len(to) == 1 and len(to["any"]) == 1:
            mode, filters = "one", to["any"]
        if not filters or any(set(f) != {"with"} or set(f["with"]) != {"type"} for f in filters):
            raise _NoMapping()
        signals = [{"id": f["with"]["type"], "type": "signal"} for f in filters]
        return "listen", {"to": {"mode": mode, "signals": signals}}, {"listen"}
    if isinstance(task.get("raise"), dict) and isinstance(task["raise"].get("error"), dict):
        err = task["raise"]["error"]
        error = str(err.get("title") or err.get("type") or "error")
        return "raise_error", {"error": error, "message": err.get("detail", error)}, {"raise"}
    run = task.get("run")
    if isinstance(run, dict) and set(run) == {"workflow"}:
        cfg = {"workflow": run["workflow"].get("name")}
        if "input" in run["workflow"]:
            cfg["input"] = run["workflow"]["input"]
        return "run_workflow", cfg, {"run"}
    emit = task.get("emit")
    if isinstance(emit, dict) and isinstance((emit.get("event") or {}).get("with"), dict):
        return "emit_event", dict(emit["event"]["with"]), {"emit"}
    raise _NoMapping()


def to_upstream_workflow(spec: dict[str, Any]) -> dict[str, Any] | None:
    """Upstream's ``{document, tasks}`` for a DSL document, or None when some part of it has no
    upstream counterpart (the document is then exported as it is, in this project's format)."""
    document = spec.get("document") or {}
    if set(spec) - {"document", "do", "use"} or set(spec.get("use") or {}) - {"secrets"}:
        return None
    try:
        tasks = _up_tasks(spec.get("do"))
    except (_NoMapping, AttributeError, TypeError, ValueError, KeyError):
        return None
    up_doc = {k: document[k] for k in ("dsl", "namespace", "name", "version") if k in document}
    if document.get("summary"):
        up_doc["description"] = document["summary"]
    out: dict[str, Any] = {"document": up_doc, "tasks": tasks}
    secrets = (spec.get("use") or {}).get("secrets") or []
    if secrets:
        out["envSpec"] = {"data": {name: {"isSecret": True} for name in secrets}}
    return out
