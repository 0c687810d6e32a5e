"""The DSL's JSON schema (shipped with the package) and schema validation with readable paths."""

from __future__ import annotations

import difflib
import io
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from ruamel.yaml import YAML

from ._task_kinds import COMMON_FIELDS, TASK_KINDS, kind_of

__all__ = ["dsl_schema", "schema_problems", "validate_against"]


@cache
def dsl_schema() -> dict[str, Any]:
    """The Serverless Workflow DSL JSON schema (draft 2020-12)."""
    text = resources.files(__package__).joinpath("schema/workflow.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = YAML(typ="safe", pure=True).load(io.StringIO(text))
    return loaded


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = dsl_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_problems(document: Any) -> list[tuple[str, str]]:
    """``(json pointer, message)`` for each way ``document`` breaks the DSL schema."""
    return _problems(_validator(), document, [])


def _problems(validator: Any, instance: Any, prefix: list[Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if any(e.validator != "unevaluatedProperties" for e in errors):
        errors = [e for e in errors if e.validator != "unevaluatedProperties"]
    for error in errors:
        found = _task_problems(error, prefix)
        if found is None:
            found = _branch_problems(error, prefix) or [_explain(error, prefix)]
        for problem in found:
            if problem not in problems:
                problems.append(problem)
    return problems


def _task_problems(error: ValidationError, prefix: list[Any]) -> list[tuple[str, str]] | None:
    """Plain messages for task-level mistakes: no task type, two tasks in one item, unknown
    fields; otherwise re-validate the task against its own type's schema for a precise path."""
    path = [*prefix, *error.absolute_path]
    instance = error.instance
    where = pointer(path)
    if (
        error.validator == "maxProperties"
        and isinstance(instance, dict)
        and path
        and isinstance(path[-1], int)
    ):
        names = ", ".join(repr(k) for k in instance)
        return [(where, f"each list item holds exactly one task, found {len(instance)}: {names}")]
    if not isinstance(error.schema, dict) or error.schema.get("title") != "Task":
        return None
    if not isinstance(instance, dict):
        return [(where, f"a task must be a mapping, not {type(instance).__name__}")]
    kind = kind_of(instance)
    if kind is None:
        hint = "".join(  # a mistyped kind ('sett:'): name the one meant
            f"; did you mean {match[0]!r} for {key!r}?"
            for key in instance
            if (match := difflib.get_close_matches(str(key), list(TASK_KINDS), n=1, cutoff=0.6))
        )
        return [
            (where, "the task has no type: give it exactly one of " + ", ".join(sorted(TASK_KINDS)) + hint)
        ]
    allowed = COMMON_FIELDS | kind.fields
    unknown = sorted(k for k in instance if k not in allowed)
    if unknown:
        return [(where, f"unexpected field(s) {', '.join(map(repr, unknown))} in a {kind.name} task")]
    sub = _validator().evolve(schema=dsl_schema()["$defs"][f"{kind.name}Task"])
    found = _problems(sub, instance, path)
    return found or None


def validate_against(schema: Any, instance: Any) -> str | None:
    """Validate ``instance`` against a user-supplied JSON schema; a message, or None if valid."""
    try:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        error = best_match(cls(schema).iter_errors(instance))
    except jsonschema.SchemaError as exc:
        return f"the schema itself is invalid: {exc.message}"
    if error is None:
        return None
    where = pointer(error.absolute_path) or "/"
    return f"{where}: {error.message}"


def _branch_problems(error: ValidationError, prefix: list[Any]) -> list[tuple[str, str]]:
    """For a failed ``oneOf``, report the errors of the one branch whose discriminator matched."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return []
    depth = len(error.absolute_path)
    groups: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        groups.setdefault(sub.relative_schema_path[0], []).append(sub)
    plausible = list(groups.values())
    for validators, reach in (
        (("const", "not", "enum"), 1),
        (("required", "type"), 0),
        (("required", "type"), 1),
    ):
        narrowed = [
            group
            for group in plausible
            if not any(e.validator in validators and len(e.absolute_path) <= depth + reach for e in group)
        ]
        if len(narrowed) == 1:
            plausible = narrowed
            break
        if narrowed:
            plausible = narrowed
    if len(plausible) != 1:
        return []
    group = plausible[0]
    if any(e.validator != "unevaluatedProperties" for e in group):
        group = [e for e in group if e.validator != "unevaluatedProperties"]
    problems: list[tuple[str, str]] = []
    for sub in group:
        problems.extend(_branch_problems(sub, prefix) or [_explain(sub, prefix)])
    return problems


def _explain(error: ValidationError, prefix: list[Any]) -> tuple[str, str]:
    """Dig into ``oneOf``/``anyOf`` failures for the most specific cause."""
    deepest = error
    if error.context:
        candidate = best_match(error.context)
        if candidate is not None and len(candidate.absolute_path) >= len(error.absolute_path):
            deepest = candidate
            while deepest.context:
                nested = best_match(deepest.context)
                if nested is None or len(nested.absolute_path) < len(deepest.absolute_path):
                    break
                deepest = nested
    return pointer([*prefix, *deepest.absolute_path]), _short(deepest.message)


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."
