"""Loading workflow documents (YAML 1.2 or dicts) and validating them: schema plus semantic checks."""

from __future__ import annotations

import datetime
import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ._errors import WorkflowValidationError
from ._expr import find_nondeterministic, is_expression, secret_names, syntax_error, uses_secrets
from ._schema import schema_problems
from ._tasks.oauth import policy_problems
from ._walk import iter_expressions, iter_task_lists

__all__ = ["Workflow", "check_deterministic", "iter_expressions", "iter_task_lists", "load_workflow"]

_FLOW = ("continue", "exit", "end")
_MAX_DEPTH = 200
_MAX_NODES = 200_000


@dataclass(frozen=True)
class Workflow:
    """A parsed and validated Serverless Workflow document (plain JSON-compatible data)."""

    definition: dict[str, Any] = field(repr=False)

    @property
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.definition["document"]
        return doc

    @property
    def name(self) -> str:
        return str(self.document["name"])

    @property
    def namespace(self) -> str:
        return str(self.document["namespace"])

    @property
    def version(self) -> str:
        return str(self.document["version"])

    @property
    def declared_secrets(self) -> tuple[str, ...]:
        """The secret names the document declares in ``use.secrets``."""
        use = self.definition.get("use") or {}
        return tuple(str(s) for s in use.get("secrets") or ())


def load_workflow(source: str | bytes | Mapping[str, Any] | Workflow) -> Workflow:
    """Parse (YAML 1.2 / JSON text, or a mapping) and validate a workflow document.

    Raises :class:`WorkflowValidationError` naming each offending path and field.
    """
    if isinstance(source, Workflow):
        return source
    raw = _load_yaml(source) if isinstance(source, bytes | str) else source
    try:
        data = _plain(raw, "", 0, [_MAX_NODES])
    except _NotPlain as exc:
        raise WorkflowValidationError([(exc.path, exc.reason)]) from None
    if not isinstance(data, dict):
        raise WorkflowValidationError([("", f"a workflow document must be a mapping, not {_kind(data)}")])
    problems = schema_problems(data)
    if not problems:
        problems = semantic_problems(data)
    if problems:
        raise WorkflowValidationError(problems)
    return Workflow(definition=data)


def _load_yaml(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowValidationError([("", f"the document is not UTF-8 text: {exc}")]) from None
    yaml = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. reused anchors: legal YAML, not our concern
            return yaml.load(io.StringIO(text))
    except YAMLError as exc:
        raise WorkflowValidationError([("", f"not valid YAML: {_one_line(str(exc))}")]) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise WorkflowValidationError([("", f"not valid YAML: {_one_line(str(exc))}")]) from None


class _NotPlain(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def _plain(value: Any, path: str, depth: int, budget: list[int]) -> Any:
    """Copy into JSON-compatible data (str keys; dates as ISO strings); reject what JSON cannot
    hold, and documents too deep or too large (YAML aliases can expand exponentially)."""
    if depth > _MAX_DEPTH:
        raise _NotPlain(path, f"the document nests deeper than {_MAX_DEPTH} levels")
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotPlain(path, f"the document has more than {_MAX_NODES} values (are YAML aliases expanding?)")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise _NotPlain(path, "NaN and infinite numbers are not allowed")
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool):
                raise _NotPlain(path, f"mapping keys must be strings, not {_kind(key)}")
            skey = key if isinstance(key, str) else str(key).lower() if isinstance(key, bool) else str(key)
            out[skey] = _plain(item, f"{path}/{skey}", depth + 1, budget)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}/{i}", depth + 1, budget) for i, item in enumerate(value)]
    raise _NotPlain(path, f"unsupported value of type {_kind(value)}")


def semantic_problems(definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Checks the schema cannot express: flow targets, duplicate names, references, secrets."""
    problems: list[tuple[str, str]] = []
    use = definition.get("use") or {}
    for path, tasks in iter_task_lists(definition):
        names: dict[str, int] = {}
        for index, item in enumerate(tasks):
            for name in item:
                if name in names:
                    problems.append(
                        (
                            f"{path}/{index}/{name}",
                            f"duplicate task name {name!r} (also at {path}/{names[name]})",
                        )
                    )
                names.setdefault(name, index)
        for index, item in enumerate(tasks):
            for name, task in item.items():
                problems.extend(_task_references(f"{path}/{index}/{name}", task, names, use))
    declared = set(use.get("secrets") or ())
    for where, text in iter_expressions(definition):
        error = syntax_error(text)
        if error is not None:
            problems.append((where, f"invalid jq expression: {error}"))
            continue
        if not uses_secrets(text):
            continue
        missing = sorted(secret_names(text) - declared)
        if missing:
            problems.append((where, f"secret(s) {', '.join(missing)} used but not declared in use.secrets"))
        elif not declared:
            problems.append((where, "$secrets used but the workflow declares no use.secrets"))
    problems.extend(policy_problems(definition))
    return problems


def _task_references(
    path: str, task: Mapping[str, Any], siblings: Mapping[str, int], use: Mapping[str, Any]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []

    def check_flow(where: str, target: Any) -> None:
        if isinstance(target, str) and target not in _FLOW and target not in siblings:
            known = ", ".join(sorted(siblings)) or "none"
            problems.append((where, f"'then' names unknown task {target!r} (tasks in this list: {known})"))

    def check_ref(where: str, value: Any, section: str) -> None:
        if isinstance(value, str) and not is_expression(value) and value not in (use.get(section) or {}):
            problems.append((where, f"{value!r} is not defined in use.{section}"))

    check_flow(f"{path}/then", task.get("then"))
    for index, case in enumerate(task.get("switch") or ()):
        for case_name, body in case.items():
            if isinstance(body, Mapping):
                check_flow(f"{path}/switch/{index}/{case_name}/then", body.get("then"))
    catch = task.get("catch")
    if isinstance(catch, Mapping):
        check_flow(f"{path}/catch/then", catch.get("then"))
        check_ref(f"{path}/catch/retry", catch.get("retry"), "retries")
    raise_ = task.get("raise")
    if isinstance(raise_, Mapping):
        check_ref(f"{path}/raise/error", raise_.get("error"), "errors")
    check_ref(f"{path}/timeout", task.get("timeout"), "timeouts")
    return problems


def check_deterministic(workflow: Workflow | Mapping[str, Any]) -> None:
    """Reject documents whose expressions call non-deterministic jq builtins.

    ``now``, ``$ENV``, ``env``, ``input``, ``inputs`` and ``input_filename`` give different
    answers on replay; a durable (e.g. Temporal) host calls this before running a document.
    """
    definition = workflow.definition if isinstance(workflow, Workflow) else workflow
    problems = []
    for where, text in iter_expressions(definition):
        found = find_nondeterministic(text)
        if found:
            problems.append(
                (where, f"non-deterministic jq builtin(s) {', '.join(found)} are not allowed here")
            )
    if problems:
        raise WorkflowValidationError(problems)


def _kind(value: Any) -> str:
    return type(value).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
