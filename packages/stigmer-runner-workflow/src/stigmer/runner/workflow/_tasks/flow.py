"""Control-flow and data tasks: ``do``, ``for``, ``fork``, ``switch``, ``set``, ``raise``, ``wait``."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ErrorKind, WorkflowError
from .._expr import is_expression, truthy

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["run_do", "run_for", "run_fork", "run_raise", "run_set", "run_switch", "run_wait"]

Result = tuple[Any, Any]


async def run_do(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    return await rt.run_list(f"{path}/do", task["do"], data, scope), None


async def run_set(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    spec = task["set"]
    if isinstance(spec, str):
        return await rt.expr(spec, data, scope), None
    return await rt.template(spec, data, scope), None


async def run_switch(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    for case in task["switch"]:
        for _name, body in case.items():
            when = body.get("when")
            if when is None or truthy(await rt.expr(when, data, scope)):
                return data, body.get("then")
    return data, None


async def run_for(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    loop = task["for"]
    each, at = loop.get("each") or "item", loop.get("at") or "index"
    source = loop["in"]
    items = await rt.expr(source, data, scope) if isinstance(source, str) else source
    if items is None:
        items = []
    if isinstance(items, Mapping):
        items = list(items.values())
    if not isinstance(items, list):
        raise WorkflowError.of(ErrorKind.EXPRESSION, f"for.in must give an array, got {type(items).__name__}")
    start = 0
    resumed = rt.resume_state(f"{path}/for")
    if resumed is not None:
        start, data = resumed["next"], resumed["data"]
    for index in range(start, len(items)):
        inner = scope.with_vars(**{each: items[index], at: index})
        if "while" in task and not truthy(await rt.expr(task["while"], data, inner)):
            break
        data = await _iteration(rt, path, index, items[index], task, data, inner)
        await rt.save_position(f"{path}/for", {"next": index + 1, "data": data}, drop=f"{path}/do")
    return data, None


async def _iteration(
    rt: Interpreter, path: str, index: int, item: Any, task: Mapping[str, Any], data: Any, scope: Scope
) -> Any:
    """One pass of a ``for`` body, reported as a task of its own (``each[0]`` at
    ``/do/0/each/for/0``) so each iteration has its own line and row; its tasks keep their paths."""
    if not getattr(rt.host, "report_iterations", True):
        return await rt.run_list(f"{path}/do", task["do"], data, scope)
    where, name = f"{path}/for/{index}", f"{path.rsplit('/', 1)[-1]}[{index}]"
    await rt.host.task_started(where, name, item)
    try:
        data = (await rt.run_list_with_exit(f"{path}/do", task["do"], data, scope))[0]
    except WorkflowError as error:
        await rt.host.task_failed(where, name, error.problem)
        raise
    await rt.host.task_completed(where, name, None)  # its output is the next pass's input
    return data


async def run_fork(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    fork = task["fork"]
    branches: list[Mapping[str, Any]] = fork["branches"]
    compete = bool(fork.get("compete", False))
    done: dict[int, Any] = {}
    for index in range(len(branches)):
        saved = rt.resume_state(f"{path}/fork/branches/{index}")
        if saved is not None:
            done[index] = saved["data"]
    if compete and done:
        return done[min(done)], None

    async def branch(index: int) -> Any:
        name, body = next(iter(branches[index].items()))
        key = f"{path}/fork/branches/{index}"
        output, _ = await rt.run_task(f"{key}/{name}", name, body, data, scope)
        await rt.save_position(key, {"data": output})
        return output

    pending = {asyncio.ensure_future(branch(i)): i for i in range(len(branches)) if i not in done}
    try:
        if compete:
            failures: list[BaseException] = []
            while pending:
                finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in finished:
                    pending.pop(future)
                    if future.exception() is None:
                        return future.result(), None
                    failures.append(future.exception())  # type: ignore[arg-type]
            raise failures[0]
        results = await asyncio.gather(*pending)
        for future_index, value in zip(pending.values(), results, strict=True):
            done[future_index] = value
        return [done[i] for i in range(len(branches))], None
    finally:
        for future in pending:
            if not future.done():
                future.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def run_raise(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    spec = task["raise"]["error"]
    if isinstance(spec, str) and not is_expression(spec):
        definition = (rt.use.get("errors") or {}).get(spec)
        if definition is None:
            raise WorkflowError.of(ErrorKind.CONFIGURATION, f"error {spec!r} is not defined in use.errors")
        spec = definition
    problem = await rt.template(spec, data, scope)
    if not isinstance(problem, Mapping) or "type" not in problem:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, "raise.error must describe an error with a type and status"
        )
    error = WorkflowError.from_problem(problem)
    error.problem["status"] = error.status
    raise error.with_instance(path)


async def run_wait(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    seconds = await rt.duration(task["wait"], data, scope)
    if getattr(rt.host, "keeps_wait_deadlines", False):
        # The deadline goes into the checkpoint before the wait starts: a run resumed in another
        # process (after a crash, or handed over on Ctrl-C) waits only what is left of it.
        key = f"{path}/wait"
        now = rt.host.now()
        saved = rt.resume_state(key)
        until = (
            datetime.datetime.fromisoformat(saved["until"])
            if isinstance(saved, dict) and saved.get("until")
            else now + datetime.timedelta(seconds=seconds)
        )
        await rt.save_position(key, {"until": until.isoformat()})
        seconds = max(0.0, (until - now).total_seconds())
    await rt.host.sleep(seconds)
    return data, None
