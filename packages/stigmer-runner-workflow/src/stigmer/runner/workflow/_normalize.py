"""Older DSL 1.0.x shapes rewritten to the current model (1.0.3), so the interpreter sees one model.

Each :class:`Normalization` names the versions whose documents may hold an older shape, what the
shape meant there, and the current shape with the same meaning. Where the meaning differs and has
no current equivalent, the rule refuses the document instead. A document is rewritten only after
it passed the schema of the version it declares; its ``document.dsl`` keeps the declared version.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from ._expr import expression_body, is_expression
from ._walk import iter_tasks

__all__ = ["NORMALIZATIONS", "Normalization", "normalize"]

Problem = tuple[str, str]


@dataclass(frozen=True)
class Normalization:
    """One older shape: the versions it belongs to, and how it reads in the current model."""

    versions: tuple[str, ...]
    shape: str  # where the shape sits, e.g. ``run.shell.arguments``
    change: str  # what it meant, and what it becomes
    applies: Callable[[Mapping[str, Any]], bool]
    rewrite: Callable[[str, dict[str, Any], str], list[Problem]]  # (task path, task, version)


def normalize(definition: dict[str, Any], version: str) -> tuple[dict[str, Any], list[Problem]]:
    """``definition`` (valid for ``version``) in the current model, and the problems of shapes
    that have no equivalent there. The input is left untouched; it is returned as is when no rule
    applies."""
    rules = [rule for rule in NORMALIZATIONS if version in rule.versions]
    if not rules or not any(rule.applies(task) for _, task in iter_tasks(definition) for rule in rules):
        return definition, []
    result = copy.deepcopy(definition)
    problems: list[Problem] = []
    for path, task in list(iter_tasks(result)):
        for rule in rules:
            if rule.applies(task):
                problems.extend(rule.rewrite(path, cast(dict[str, Any], task), version))
    return result, problems


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


# --- run.shell.arguments: a map (1.0.0-1.0.2) -> an argv list (1.0.3) ------------------------


def _shell_arguments_map(task: Mapping[str, Any]) -> bool:
    return isinstance(_get(task, "run", "shell", "arguments"), Mapping)


def _shell_arguments(path: str, task: dict[str, Any], version: str) -> list[Problem]:
    shell = task["run"]["shell"]
    words: list[str] = []
    problems: list[Problem] = []
    for name, value in shell["arguments"].items():
        if isinstance(value, dict | list):
            problems.append(
                (
                    f"{path}/run/shell/arguments/{name}",
                    f"DSL {version} appends each shell argument to the command as name=value; "
                    "an object or array value has no such form",
                )
            )
            continue
        words.append(_word(str(name), value))
    shell["arguments"] = words
    if words:
        shell["command"] = _with_argv(shell["command"])
    return problems


def _word(name: str, value: Any) -> str:
    """``name`` or ``name=value`` as one argument; an expression part stays an expression."""
    parts: list[str] = [name] if value is None else [name, "=", _text(value)]
    if not any(is_expression(part) for part in parts):
        return "".join(parts)
    program = " + ".join(
        f"(({expression_body(part)}) | tostring)" if is_expression(part) else json.dumps(part)
        for part in parts
    )
    return "${ " + program + " }"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _with_argv(command: Any) -> Any:
    """The command with its arguments appended (``"$@"``: each one word, as passed)."""
    if is_expression(command):
        return "${ ((" + expression_body(command) + ') | tostring) + " \\"$@\\"" }'
    if isinstance(command, str):
        return command.rstrip() + ' "$@"'
    return command


# --- run.script.arguments: named script variables (1.0.0-1.0.2) -------------------------------


def _script_arguments_map(task: Mapping[str, Any]) -> bool:
    return isinstance(_get(task, "run", "script", "arguments"), Mapping)


def _script_arguments(path: str, task: dict[str, Any], version: str) -> list[Problem]:
    script = task["run"]["script"]
    if not script["arguments"]:
        del script["arguments"]
        return []
    return [
        (
            f"{path}/run/script/arguments",
            f"DSL {version} passes script arguments as named variables (a map), which this runner "
            "does not support; from DSL 1.0.3 arguments are an argv list: declare dsl: '1.0.3' and "
            "give a list, or pass the values in environment",
        )
    ]


# --- catch.errors.with.details (1.0.0-1.0.3) -> detail ----------------------------------------


def _error_filter_details(task: Mapping[str, Any]) -> bool:
    found = _get(task, "catch", "errors", "with")
    return isinstance(found, Mapping) and "details" in found


def _error_filter(path: str, task: dict[str, Any], version: str) -> list[Problem]:
    filter_ = task["catch"]["errors"]["with"]
    if "detail" in filter_:
        return [
            (
                f"{path}/catch/errors/with/details",
                "give either details (the DSL 1.0.0-1.0.3 spelling) or detail, not both",
            )
        ]
    filter_["detail"] = filter_.pop("details")
    return []


# --- call: http with.headers / with.query values of any type (1.0.0) ---------------------------


def _http_non_text_values(task: Mapping[str, Any]) -> bool:
    if task.get("call") != "http":
        return False
    return any(
        isinstance(values, Mapping) and any(not isinstance(v, str) for v in values.values())
        for values in (_get(task, "with", "headers"), _get(task, "with", "query"))
    )


def _http_values(path: str, task: dict[str, Any], version: str) -> list[Problem]:
    for key in ("headers", "query"):
        values = task["with"].get(key)
        if isinstance(values, dict):
            task["with"][key] = {k: _text(v) for k, v in values.items() if v is not None}
    return []


NORMALIZATIONS: Final[tuple[Normalization, ...]] = (
    Normalization(
        ("1.0.0", "1.0.1", "1.0.2"),
        "run.shell.arguments",
        "a map whose entries are appended to the command as `name` (null value) or `name=value` "
        'becomes the argv list of those words, and the command gets `"$@"` appended',
        _shell_arguments_map,
        _shell_arguments,
    ),
    Normalization(
        ("1.0.0", "1.0.1", "1.0.2"),
        "run.script.arguments",
        "a map of named script variables has no 1.0.3 equivalent (argv list): refused unless empty",
        _script_arguments_map,
        _script_arguments,
    ),
    Normalization(
        ("1.0.0", "1.0.1", "1.0.2", "1.0.3"),
        "catch.errors.with.details",
        "the error filter's `details` (the released schemas' spelling) filters on the error's "
        "`detail`: renamed to `detail`",
        _error_filter_details,
        _error_filter,
    ),
    Normalization(
        ("1.0.0",),
        "call: http with.headers / with.query",
        "values of any type become text (numbers and booleans in JSON form); null values are dropped",
        _http_non_text_values,
        _http_values,
    ),
)
