"""Walking a workflow document: its task lists, its tasks, and every runtime expression in it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._expr import is_expression, iter_strings
from ._task_kinds import kind_of

__all__ = ["iter_expressions", "iter_task_lists", "iter_tasks"]


def iter_task_lists(definition: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """Every task list in a document with its JSON pointer (``/do``, ``/do/0/a/try`` ...),
    including those of ``use.functions`` tasks and ``use.extensions`` before/after lists."""
    top = definition.get("do")
    if isinstance(top, list):
        yield from _walk_list("/do", top)
    use = definition.get("use")
    if not isinstance(use, Mapping):
        return
    functions = use.get("functions")
    if isinstance(functions, Mapping):
        for name, task in functions.items():
            if isinstance(task, Mapping):
                yield from _walk_task(f"/use/functions/{name}", task)
    extensions = use.get("extensions")
    for index, item in enumerate(extensions if isinstance(extensions, list) else []):
        for name, extension in item.items() if isinstance(item, Mapping) else ():
            for phase in ("before", "after"):
                if isinstance(extension, Mapping) and isinstance(extension.get(phase), list):
                    yield from _walk_list(f"/use/extensions/{index}/{name}/{phase}", extension[phase])


def iter_tasks(definition: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every task (``/do/0/fetch``, ``/use/functions/f`` ...) with its definition."""
    use = definition.get("use")
    functions = use.get("functions") if isinstance(use, Mapping) else None
    if isinstance(functions, Mapping):
        for name, task in functions.items():
            if isinstance(task, Mapping):
                yield f"/use/functions/{name}", task
    for path, tasks in iter_task_lists(definition):
        for index, item in enumerate(tasks):
            for name, task in item.items() if isinstance(item, Mapping) else ():
                if isinstance(task, Mapping):
                    yield f"{path}/{index}/{name}", task


def _walk_list(path: str, tasks: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    yield path, tasks
    for index, item in enumerate(tasks):
        if not isinstance(item, Mapping):
            continue
        for name, task in item.items():
            if isinstance(task, Mapping):
                yield from _walk_task(f"{path}/{index}/{name}", task)


def _walk_task(path: str, task: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    kind = kind_of(task)
    for keys in kind.task_lists if kind is not None else ():
        node: Any = task
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, list):
            yield from _walk_list("/".join((path, *keys)), node)


def iter_expressions(definition: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every runtime expression: ``${ }`` strings anywhere but ``document``, and bare jq in the
    fields the interpreter evaluates as expressions (``if``, ``when``, ``for.in``, ``output.as`` ...)."""
    seen: set[str] = set()
    for where, text in iter_strings(definition):
        if is_expression(text) and not where.startswith("/document"):
            seen.add(where)
            yield where, text
    for where, text in _bare_fields(definition):
        if where not in seen and isinstance(text, str):
            seen.add(where)
            yield where, text


def _bare_fields(definition: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    yield from _data_flow("", definition)
    use = definition.get("use")
    if isinstance(use, Mapping):
        for name, policy in (use.get("retries") or {}).items():
            yield from _conditions(f"/use/retries/{name}", policy)
        for index, item in enumerate(use.get("extensions") or []):
            for name, extension in item.items() if isinstance(item, Mapping) else ():
                if isinstance(extension, Mapping):
                    yield f"/use/extensions/{index}/{name}/when", extension.get("when")
    for path, task in iter_tasks(definition):
        yield from _data_flow(path, task)
        for key in ("if", "while", "set"):
            yield f"{path}/{key}", task.get(key)
        loop = task.get("for")
        if isinstance(loop, Mapping):
            yield f"{path}/for/in", loop.get("in")
        for index, case in enumerate(task.get("switch") or []):
            for name, body in case.items() if isinstance(case, Mapping) else ():
                if isinstance(body, Mapping):
                    yield f"{path}/switch/{index}/{name}/when", body.get("when")
        catch = task.get("catch")
        if isinstance(catch, Mapping):
            yield from _conditions(f"{path}/catch", catch)
            yield from _conditions(f"{path}/catch/retry", catch.get("retry"))
        listen = task.get("listen")
        if isinstance(listen, Mapping) and isinstance(listen.get("to"), Mapping):
            yield from _strategy(f"{path}/listen/to", listen["to"])
        foreach = task.get("foreach")
        if isinstance(foreach, Mapping):
            yield from _data_flow(f"{path}/foreach", foreach)


def _data_flow(path: str, node: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for section, key in (("input", "from"), ("output", "as"), ("export", "as")):
        spec = node.get(section)
        if isinstance(spec, Mapping):
            yield f"{path}/{section}/{key}", spec.get(key)


def _conditions(path: str, node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Mapping):
        yield f"{path}/when", node.get("when")
        yield f"{path}/exceptWhen", node.get("exceptWhen")


def _strategy(path: str, strategy: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    until = strategy.get("until")
    if isinstance(until, str):
        yield f"{path}/until", until
    elif isinstance(until, Mapping):
        yield from _strategy(f"{path}/until", until)
    filters = strategy.get("all") or strategy.get("any") or ([strategy["one"]] if "one" in strategy else [])
    kind = "all" if "all" in strategy else "any" if "any" in strategy else "one"
    for index, filter_ in enumerate(filters if isinstance(filters, list) else []):
        where = f"{path}/{kind}" + ("" if kind == "one" else f"/{index}")
        correlate = filter_.get("correlate") if isinstance(filter_, Mapping) else None
        for name, rule in (correlate or {}).items():
            if isinstance(rule, Mapping):
                yield f"{where}/correlate/{name}/from", rule.get("from")
                yield f"{where}/correlate/{name}/expect", rule.get("expect")
