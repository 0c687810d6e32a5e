"""``run``: shell commands, scripts (inline or fetched from ``source``) and sub-workflows
(containers are not supported here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._errors import ErrorKind, WorkflowError
from .._host import Masking, ProcessResult

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["run_run"]

Result = tuple[Any, Any]


async def run_run(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    spec = task["run"]
    wait = bool(spec.get("await", True))
    if "workflow" in spec:
        sub = spec["workflow"]
        sub_input = await rt.template(sub.get("input", data), data, scope)
        work = rt.host.run_workflow(
            str(sub["namespace"]), str(sub["name"]), str(sub.get("version", "latest")), sub_input
        )
        if not wait:
            _detach(rt, work)
            return data, None
        return await work, None
    if "shell" in spec:
        shell = await rt.template(dict(spec["shell"]), data, scope)
        process = rt.host.run_shell(
            str(shell["command"]),
            [_text(a) for a in shell.get("arguments") or []],
            {str(k): _text(v) for k, v in (shell.get("environment") or {}).items()},
            None if shell.get("stdin") is None else _text(shell["stdin"]),
        )
    elif "script" in spec:
        raw = dict(spec["script"])
        source = raw.pop("source", None)
        script = await rt.template(raw, data, scope)
        code = script.get("code") if source is None else await _fetch_script(rt, source, data, scope)
        if code is None:
            raise WorkflowError.of(ErrorKind.CONFIGURATION, "run: script needs script.code or script.source")
        process = rt.host.run_script(
            str(script["language"]),
            str(code),
            [_text(a) for a in script.get("arguments") or []],
            {str(k): _text(v) for k, v in (script.get("environment") or {}).items()},
            None if script.get("stdin") is None else _text(script["stdin"]),
        )
    else:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, "run: container is not supported by this runner")
    if not wait:
        _detach(rt, process)
        return data, None
    result = await process
    return _returned(rt, result, str(spec.get("return", "stdout"))), None


async def _fetch_script(rt: Interpreter, source: Any, data: Any, scope: Scope) -> str:
    """The script of ``run.script.source``, fetched through the host's HTTP effect (it then runs
    as inline code does, under the same ``run`` capability)."""
    from .resource import fetch_resource, resource_uri  # built on call's endpoints and authentication

    uri, auth = await resource_uri(rt, source, data, scope)
    content = await fetch_resource(rt, uri, auth, data, scope, "the script source")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"the script source {uri} is not UTF-8 text"
        ) from None


def _returned(rt: Interpreter, result: ProcessResult, mode: str) -> Any:
    if mode == "code":
        return result.code
    if mode == "all":
        return {"code": result.code, "stdout": result.stdout, "stderr": result.stderr}
    if result.code != 0:
        stderr = rt.host.mask(result.stderr) if isinstance(rt.host, Masking) else result.stderr
        raise WorkflowError.of(
            ErrorKind.RUNTIME,
            f"the process exited with code {result.code}: {stderr.strip()[:500]}",  # masked, then cut
            title="Process Failed",
        )
    if mode == "none":
        return None
    return result.stderr if mode == "stderr" else result.stdout


def _detach(rt: Interpreter, work: Any) -> None:
    """``await: false``: the workflow goes on at once; the interpreter collects the work before
    the run returns, so nothing outlives it (failures of detached work are ignored)."""
    rt.detached.add(asyncio.ensure_future(work))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
