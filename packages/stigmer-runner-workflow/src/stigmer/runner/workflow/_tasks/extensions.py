"""``use.extensions``: tasks run before and/or after every task of a given type.

A ``before`` list that ends with ``then: exit`` replaces the extended task (its output becomes
the task's output: the spec's way to mock a call). Tasks inside extensions are not extended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._expr import truthy

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope
    from .._task_kinds import TaskKind

__all__ = ["run_with_extensions"]

Result = tuple[Any, Any]
_MARK = "__extension"


async def run_with_extensions(
    rt: Interpreter, path: str, name: str, kind: TaskKind, task: Mapping[str, Any], data: Any, scope: Scope
) -> Result:
    extensions = (rt.use.get("extensions") or []) if _MARK not in scope.variables else []
    applicable: list[tuple[str, Mapping[str, Any]]] = []
    for item in extensions:
        for ext_name, ext in item.items():
            target = ext.get("extend")
            if target in (kind.name, "all") or (target == "composite" and kind.composite):
                applicable.append((ext_name, ext))
    if not applicable:
        return await rt.execute_kind(path, name, kind, task, data, scope)
    marked = scope.with_vars(**{_MARK: True})
    described = {**task, **scope.variables.get("task", {})}
    active = []
    for ext_name, ext in applicable:
        if "when" in ext and not truthy(await rt.expr(ext["when"], data, marked.with_vars(task=described))):
            continue
        active.append((ext_name, ext))
    for ext_name, ext in active:
        if "before" in ext:
            data, exited = await rt.run_list_with_exit(
                f"{path}/extensions/{ext_name}/before", ext["before"], data, marked
            )
            if exited:
                return data, None
    output, directive = await rt.execute_kind(path, name, kind, task, data, scope)
    for ext_name, ext in active:
        if "after" in ext:
            output = await rt.run_list(f"{path}/extensions/{ext_name}/after", ext["after"], output, marked)
    return output, directive
