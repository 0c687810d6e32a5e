"""``try``/``catch``: error filters, ``when``/``exceptWhen``, retry policies with backoff and limits.

An error is caught when it matches ``catch.errors.with`` (standard error types compare equal
across the spec's historical URI hosts), ``catch.when`` holds and ``catch.exceptWhen`` does not.
With a ``retry`` policy (whose own ``when``/``exceptWhen`` hold) the ``try`` list runs again
after the backoff delay (constant: ``delay``; linear: ``delay + increment*(n-1)``, increment
defaulting to ``delay``; exponential: ``delay * factor**(n-1)``, factor 2) plus jitter drawn
through ``Host.random``, until ``limit.attempt.count`` retries or ``limit.duration`` are used up;
``limit.attempt.duration`` bounds each attempt. When retries are exhausted the error runs
``catch.do`` if there is one, and is raised otherwise. A caught error without a retry runs
``catch.do`` (its output is the task's output) or is swallowed (the task's input passes through);
``catch.then`` then directs the flow.

Every duration of a policy (``delay``, ``backoff.linear.increment``, ``jitter.from``/``to``,
``limit.duration``, ``limit.attempt.duration``) may be a runtime expression: it is evaluated over
the task's input, with the caught error as ``$error`` (or the ``catch.as`` name) — as ``when`` is —
except ``limit.attempt.duration``, evaluated before each attempt, when there is no error yet.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._duration import parse_duration
from .._errors import ErrorKind, WorkflowError, normalize_error_type
from .._expr import is_expression, truthy
from .._limits import LimitExceeded

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["error_matches", "retry_delay", "run_try"]

Result = tuple[Any, Any]


def error_matches(problem: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    """``catch.errors.with``: every given property equals the error's (standard types compared
    across the spec's historical URI spellings)."""
    for key, expected in filter.items():
        actual = problem.get(key)
        if key == "type":
            if not isinstance(actual, str) or normalize_error_type(str(expected)) != normalize_error_type(
                actual
            ):
                return False
        elif key == "status":
            try:
                if int(expected) != int(actual):  # type: ignore[arg-type]
                    return False
            except (TypeError, ValueError):
                return False
        elif actual != expected:
            return False
    return True


def retry_delay(policy: Mapping[str, Any], attempt: int, random: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    base = parse_duration(policy["delay"]) if "delay" in policy else 0.0
    backoff = policy.get("backoff") or {}
    if "exponential" in backoff:
        factor = float((backoff["exponential"] or {}).get("factor", 2))
        delay = base * factor ** (attempt - 1)
    elif "linear" in backoff:
        increment = (backoff["linear"] or {}).get("increment")
        step = parse_duration(increment) if increment is not None else base
        delay = base + step * (attempt - 1)
    else:
        delay = base
    jitter = policy.get("jitter")
    if jitter:
        low, high = parse_duration(jitter["from"]), parse_duration(jitter["to"])
        delay += low + (high - low) * random
    return delay


async def run_try(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    catch: Mapping[str, Any] = task.get("catch") or {}
    policy = _policy(rt, catch.get("retry"))
    filter_ = (catch.get("errors") or {}).get("with") or {}
    variable = catch.get("as") or "error"
    attempt = 0
    first_start = rt.host.now()
    caught = rt.resume_state(f"{path}/catch")
    while caught is None:
        try:
            per_attempt = await _attempt_timeout(rt, policy, data, scope)
            output = await rt.with_timeout(
                per_attempt, rt.run_list(f"{path}/try", task["try"], data, scope), path
            )
            return output, None
        except WorkflowError as error:
            if isinstance(error, LimitExceeded):
                raise  # a limit ends the execution: never caught, never retried
            problem = error.problem
            inner = scope.with_vars(**{variable: problem})
            if not error_matches(problem, filter_) or not await _conditions(rt, catch, problem, data, inner):
                raise
            if policy is not None and await _conditions(rt, policy, problem, data, inner):
                attempt += 1
                evaluated = await _evaluated(rt, policy, data, inner)
                delay = retry_delay(evaluated, attempt, rt.host.random())
                if _may_retry(rt, evaluated, attempt, delay, first_start):
                    name = path.rsplit("/", 1)[-1]
                    await rt.host.task_retried(
                        path, name, attempt, delay, problem, max_attempts=_max_retries(policy)
                    )
                    if delay > 0:
                        await rt.host.sleep(delay)
                    rt.forget(f"{path}/try")
                    continue
                if "do" not in catch:
                    raise
            caught = {"error": problem}
            if "do" in catch:
                await rt.save_position(f"{path}/catch", caught, drop=f"{path}/try")
    inner = scope.with_vars(**{variable: caught["error"]})
    output = await rt.run_list(f"{path}/catch/do", catch["do"], data, inner) if "do" in catch else data
    return output, catch.get("then")


def _policy(rt: Interpreter, spec: Any) -> Mapping[str, Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str):
        found = (rt.use.get("retries") or {}).get(spec)
        if found is None:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"retry policy {spec!r} is not defined in use.retries"
            )
        return dict(found)
    return dict(spec)


async def _conditions(
    rt: Interpreter, spec: Mapping[str, Any], problem: Any, data: Any, scope: Scope
) -> bool:
    """``when`` must hold and ``exceptWhen`` must not (the task input is ``.``, the error ``$error``
    or the ``catch.as`` name)."""
    if "when" in spec and not truthy(await rt.expr(spec["when"], data, scope)):
        return False
    return not ("exceptWhen" in spec and truthy(await rt.expr(spec["exceptWhen"], data, scope)))


async def _attempt_timeout(
    rt: Interpreter, policy: Mapping[str, Any] | None, data: Any, scope: Scope
) -> float | None:
    limit = ((policy or {}).get("limit") or {}).get("attempt") or {}
    duration = limit.get("duration")
    if duration is None:
        return None
    return await rt.duration(duration, data, scope)


#: The durations of a retry policy, as paths into it.
_DURATIONS: tuple[tuple[str, ...], ...] = (
    ("delay",),
    ("backoff", "linear", "increment"),
    ("jitter", "from"),
    ("jitter", "to"),
    ("limit", "duration"),
)


async def _evaluated(rt: Interpreter, policy: Mapping[str, Any], data: Any, scope: Scope) -> dict[str, Any]:
    """A copy of ``policy`` whose duration expressions are evaluated (to seconds)."""
    evaluated: dict[str, Any] = copy.deepcopy(dict(policy))
    for keys in _DURATIONS:
        parent: Any = evaluated
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and is_expression(parent.get(keys[-1])):
            parent[keys[-1]] = await rt.duration(parent[keys[-1]], data, scope)
    return evaluated


def _max_retries(policy: Mapping[str, Any]) -> int | None:
    """``limit.attempt.count``: how many retries the policy allows (None: no count)."""
    count = ((policy.get("limit") or {}).get("attempt") or {}).get("count")
    return None if count is None else int(count)


def _may_retry(rt: Interpreter, policy: Mapping[str, Any], attempt: int, delay: float, start: Any) -> bool:
    limit = policy.get("limit") or {}
    count = (limit.get("attempt") or {}).get("count")
    if count is not None and attempt > int(count):
        return False
    total = limit.get("duration")
    if total is not None:
        elapsed = (rt.host.now() - start).total_seconds()
        if elapsed + delay > parse_duration(total):
            return False
    return True
