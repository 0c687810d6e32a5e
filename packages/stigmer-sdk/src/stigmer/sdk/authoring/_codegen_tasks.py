"""Workflow tasks as builder code, for ``to_python``: one function per task type maps a task's
data to a builder call; each call is checked to rebuild the task exactly, else the task stays
plain data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["Gen", "Raw", "canon", "evaluate", "opt"]


class Gen:
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
            raise Raw
        pairs = [f"({name!r}, {self.task(body)})" for item in items for name, body in item.items()]
        return "[" + ", ".join(pairs) + "]"

    def task(self, body: Any) -> str:
        """Builder code for a task, checked: it must rebuild exactly ``body``, else it is kept as data."""
        if not isinstance(body, dict):
            return repr(body)
        names = set(self.names)
        try:
            code = self._task(dict(body))
            if canon(evaluate(code).to_dict()) != canon(body):
                raise Raw
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
        from stigmer.runner.workflow import TASK_KINDS  # the runner's registry; imported on first use

        kinds = [name for name in TASK_KINDS if name in body]  # in order of precedence
        if not kinds or any(name not in TASK_KINDS[kinds[0]].fields for name in kinds):
            raise Raw  # no kind, or two (a `for` task holds a `do` list: that is its own field)
        kind = kinds[0]
        builder = _BUILDERS[kind]
        args, kwargs, used = builder(self, body)
        extra = {k: v for k, v in body.items() if k not in used}
        if extra:
            options["extra"] = repr(extra)
        return self.call(args[0], *args[1:], **kwargs, **options)


class Raw(Exception):
    """This shape is kept as plain data."""


Built = tuple[list[str], dict[str, Any], set[str]]


def _set(g: Gen, b: dict[str, Any]) -> Built:
    return ["Set", repr(b["set"])], {}, {"set"}


def _switch(g: Gen, b: dict[str, Any]) -> Built:
    cases = []
    for item in b["switch"]:
        if not isinstance(item, dict) or len(item) != 1:
            raise Raw
        [(name, case)] = item.items()
        if not isinstance(case, dict) or "then" not in case or set(case) - {"when", "then"}:
            raise Raw
        cases.append(g.call("Case", repr(name), then=repr(case["then"]), when=opt(case.get("when"))))
    return ["Switch", *cases], {}, {"switch"}


def _for(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["for"]
    if not isinstance(spec, dict) or "in" not in spec or set(spec) - {"each", "in", "at"}:
        raise Raw
    kwargs = {"each": opt(spec.get("each")), "at": opt(spec.get("at")), "while_": opt(b.get("while"))}
    return ["For", repr(spec["in"]), g.tasks(b.get("do"))], kwargs, {"for", "while", "do"}


def _fork(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["fork"]
    if not isinstance(spec, dict) or set(spec) - {"branches", "compete"}:
        raise Raw
    return ["Fork", g.tasks(spec.get("branches"))], {"compete": opt(spec.get("compete"))}, {"fork"}


def _retry(g: Gen, retry: Any) -> str:
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
        raise Raw
    kwargs: dict[str, Any] = {"when": opt(retry.get("when")), "except_when": opt(retry.get("exceptWhen"))}
    kwargs["delay"] = opt(retry.get("delay"))
    backoff = retry.get("backoff")
    if backoff is not None:
        if not isinstance(backoff, dict) or len(backoff) != 1 or list(backoff.values()) != [{}]:
            raise Raw
        kwargs["backoff"] = repr(next(iter(backoff)))
    limit = retry.get("limit")
    if limit is not None:
        attempt = limit.get("attempt", {}) if isinstance(limit, dict) else None
        if (
            not isinstance(attempt, dict)
            or set(limit) - {"attempt", "duration"}
            or set(attempt) - {"count", "duration"}
        ):
            raise Raw
        if "attempt" in limit and not attempt:
            raise Raw
        kwargs["limit_attempts"] = opt(attempt.get("count"))
        kwargs["attempt_duration"] = opt(attempt.get("duration"))
        kwargs["limit_duration"] = opt(limit.get("duration"))
    jitter = retry.get("jitter")
    if jitter is not None:
        if not isinstance(jitter, dict) or set(jitter) != {"from", "to"}:
            raise Raw
        kwargs["jitter"] = repr((jitter["from"], jitter["to"]))
    return g.call("Retry", **kwargs)


def _try(g: Gen, b: dict[str, Any]) -> Built:
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
        raise Raw
    errors = catch.get("errors")
    if errors is not None and (not isinstance(errors, dict) or list(errors) != ["with"]):
        raise Raw
    kwargs = {
        "errors": opt(errors["with"]) if errors is not None else None,
        "as_": opt(catch.get("as")),
        "when": opt(catch.get("when")),
        "except_when": opt(catch.get("exceptWhen")),
        "retry": _retry(g, catch["retry"]) if "retry" in catch else None,
        "do": g.tasks(catch["do"]) if "do" in catch else None,
        "then": opt(catch.get("then")),
    }
    return ["Try", g.tasks(b["try"]), g.call("Catch", **kwargs)], {}, {"try", "catch"}


def _raise(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["raise"]
    if not isinstance(spec, dict) or list(spec) != ["error"]:
        raise Raw
    error = spec["error"]
    if isinstance(error, str):
        return ["Raise", repr(error)], {}, {"raise"}
    if (
        not isinstance(error, dict)
        or "type" not in error
        or set(error) - {"type", "status", "title", "detail"}
    ):
        raise Raw
    return ["Raise"], {k: opt(error.get(k)) for k in ("type", "status", "title", "detail")}, {"raise"}


def _wait(g: Gen, b: dict[str, Any]) -> Built:
    return ["Wait", repr(b["wait"])], {}, {"wait"}


def _filters(items: Any) -> str:
    if not isinstance(items, list) or not all(isinstance(i, dict) and list(i) == ["with"] for i in items):
        raise Raw
    return repr([i["with"] for i in items])


def _listen(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["listen"]
    if not isinstance(spec, dict) or set(spec) - {"to", "read"} or not isinstance(spec.get("to"), dict):
        raise Raw
    to = spec["to"]
    kwargs: dict[str, Any] = {"read": opt(spec.get("read"))}
    if set(to) == {"one"} and isinstance(to["one"], dict) and list(to["one"]) == ["with"]:
        kwargs["one"] = repr(to["one"]["with"])
    elif set(to) == {"all"}:
        kwargs["all"] = _filters(to["all"])
    elif "any" in to and set(to) <= {"any", "until"} and isinstance(to.get("until", ""), str):
        kwargs["any"] = _filters(to["any"])
        kwargs["until"] = opt(to.get("until"))
    else:
        raise Raw
    return ["Listen"], kwargs, {"listen"}


def _emit(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["emit"]
    event = spec.get("event") if isinstance(spec, dict) and list(spec) == ["event"] else None
    attrs = event.get("with") if isinstance(event, dict) and list(event) == ["with"] else None
    if not isinstance(attrs, dict) or "type" not in attrs:
        raise Raw
    rest = {k: v for k, v in attrs.items() if k not in ("type", "source", "data")}
    kwargs = {
        "source": opt(attrs.get("source")),
        "data": opt(attrs.get("data")),
        "attributes": opt(rest or None),
    }
    return ["Emit", repr(attrs["type"])], kwargs, {"emit"}


def _call(g: Gen, b: dict[str, Any]) -> Built:
    target, args = b["call"], b.get("with")
    if args is not None and not isinstance(args, dict):
        raise Raw
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
            raise Raw
        kwargs = {k: opt(args.get(k)) for k in ("headers", "body", "query", "output", "redirect")}
        return (
            ["CallHttp", repr(args["method"]), repr(endpoint)],
            {**kwargs, "authentication": opt(auth)},
            used,
        )
    if target == "openapi":
        allowed = {"document", "operationId", "parameters", "authentication", "output", "redirect"}
        if "document" not in args or "operationId" not in args or set(args) - allowed:
            raise Raw
        doc = args["document"]
        doc = (
            doc["endpoint"]
            if isinstance(doc, dict) and list(doc) == ["endpoint"] and isinstance(doc["endpoint"], str)
            else doc
        )
        kwargs = {k: opt(args.get(k)) for k in ("parameters", "authentication", "output", "redirect")}
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
            raise Raw
        kwargs = {
            "host": repr(service["host"]),
            "port": opt(service.get("port")),
            "arguments": opt(args.get("arguments")),
            "authentication": opt(args.get("authentication")),
        }
        return (
            ["CallGrpc", repr(proto["endpoint"]), repr(service.get("name")), repr(args["method"])],
            kwargs,
            used,
        )
    if target == "agent":
        if "agent" not in args or "message" not in args or set(args) - {"agent", "message", "session"}:
            raise Raw
        return (
            ["CallAgent", repr(args["agent"]), repr(args["message"])],
            {"session": opt(args.get("session"))},
            used,
        )
    if not isinstance(target, str):
        raise Raw
    return ["Call", repr(target)], {"with_": opt(b.get("with"))}, used


def _run(g: Gen, b: dict[str, Any]) -> Built:
    spec = b["run"]
    if not isinstance(spec, dict):
        raise Raw
    common = {"await_": opt(spec.get("await")), "return_": opt(spec.get("return"))}
    keys = set(spec) - {"await", "return"}
    if keys == {"shell"} and isinstance(spec["shell"], dict) and "command" in spec["shell"]:
        shell = spec["shell"]
        if set(shell) - {"command", "arguments", "environment"}:
            raise Raw
        kwargs = {"arguments": opt(shell.get("arguments")), "environment": opt(shell.get("environment"))}
        return ["RunShell", repr(shell["command"])], {**kwargs, **common}, {"run"}
    if keys == {"script"} and isinstance(spec["script"], dict):
        script = spec["script"]
        source = script.get("source")
        if (
            set(script) - {"language", "code", "source", "arguments", "environment"}
            or "language" not in script
        ):
            raise Raw
        if source is not None and not (isinstance(source, dict) and list(source) == ["endpoint"]):
            raise Raw
        kwargs = {
            "language": repr(script["language"]),
            "source": opt(source["endpoint"] if source is not None else None),
            "arguments": opt(script.get("arguments")),
            "environment": opt(script.get("environment")),
        }
        code = [repr(script["code"])] if "code" in script else []
        return ["RunScript", *code], {**kwargs, **common}, {"run"}
    if keys == {"workflow"} and isinstance(spec["workflow"], dict) and "return" not in spec:
        wf = spec["workflow"]
        if set(wf) - {"namespace", "name", "version", "input"} or not {"namespace", "name", "version"} <= set(
            wf
        ):
            raise Raw
        kwargs = {
            "namespace": repr(wf["namespace"]),
            "version": repr(wf["version"]),
            "input": opt(wf.get("input")),
        }
        return ["RunWorkflow", repr(wf["name"])], {**kwargs, "await_": common["await_"]}, {"run"}
    raise Raw


def _do(g: Gen, b: dict[str, Any]) -> Built:
    return ["Do", g.tasks(b["do"])], {}, {"do"}


_BUILDERS: dict[str, Callable[[Gen, dict[str, Any]], Built]] = {
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


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def evaluate(code: str) -> Any:
    """Evaluate generated builder code (names of ``stigmer.sdk`` only, no builtins)."""
    import stigmer.sdk

    namespace = {name: getattr(stigmer.sdk, name) for name in stigmer.sdk.__all__}
    return eval(code, {"__builtins__": {}}, namespace)


def opt(value: Any) -> str | None:
    return None if value is None else repr(value)
