"""The DSL's JSON schemas (one per released 1.0.x version, shipped with the package) and schema
validation with readable paths.

A document is validated against the schema of the version it declares in ``document.dsl``
(:func:`dsl_version`); each version's validators are built once, on first use. A compiled
validator (jsonschema-rs) answers "valid?" in about a millisecond for a 1,000-task document; only a
document it does not accept goes through ``jsonschema``, whose error tree gives the readable
problems below (and which has the last word should the two ever disagree).
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from ._errors import WorkflowValidationError
from ._task_kinds import COMMON_FIELDS, TASK_KINDS, kind_of

if TYPE_CHECKING:  # jsonschema (~100 ms to import) is loaded only to explain a refusal
    import jsonschema
    from jsonschema.exceptions import ValidationError

__all__ = [
    "CURRENT_DSL_VERSION",
    "SUPPORTED_DSL_VERSIONS",
    "dsl_schema",
    "dsl_version",
    "schema_problems",
    "validate_against",
]

#: The DSL versions a document may declare, oldest first; each has its schema in ``schema/<version>/``.
SUPPORTED_DSL_VERSIONS: Final = ("1.0.0", "1.0.1", "1.0.2", "1.0.3")
#: The version whose model the interpreter runs; older documents are normalised to it.
CURRENT_DSL_VERSION: Final = "1.0.3"


@cache
def dsl_schema(version: str = CURRENT_DSL_VERSION) -> dict[str, Any]:
    """The Serverless Workflow DSL JSON schema (draft 2020-12) of one supported version.

    Read from ``schema/<version>/workflow.json``, generated from the upstream ``workflow.yaml``
    beside it by ``scripts/gen_dsl_schemas.py``: parsing the YAML took about 250 ms of every cold
    run, the JSON well under a millisecond.
    """
    if version not in SUPPORTED_DSL_VERSIONS:
        raise ValueError(f"no schema for DSL version {version!r}")
    path = f"schema/{version}/workflow.json"
    text = resources.files(__package__).joinpath(path).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(version: str = CURRENT_DSL_VERSION) -> jsonschema.protocols.Validator:
    import jsonschema

    schema = dsl_schema(version)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@cache
def _fast_validator(version: str) -> Any:
    import jsonschema_rs  # compiled validator: imported and built only when a document is checked

    return jsonschema_rs.validator_for(dsl_schema(version), validate_formats=False)


def _surely_valid(document: Any, version: str) -> bool:
    try:
        return bool(_fast_validator(version).is_valid(document))
    except (ValueError, TypeError, OverflowError):  # e.g. an integer beyond 64 bits
        return False


def dsl_version(document: Any) -> str:
    """The supported DSL version ``document`` declares in ``document.dsl``.

    A document with no usable ``document.dsl`` (missing, or ``document`` not a mapping) is
    measured against the current version, whose schema then names what is missing. Raises
    :class:`WorkflowValidationError` for a version this runner has no schema for.
    """
    header = document.get("document") if isinstance(document, dict) else None
    declared = header.get("dsl") if isinstance(header, dict) else None
    if declared is None:
        return CURRENT_DSL_VERSION
    if isinstance(declared, str) and declared in SUPPORTED_DSL_VERSIONS:
        return declared
    supported = ", ".join(SUPPORTED_DSL_VERSIONS)
    raise WorkflowValidationError(
        [("/document/dsl", f"DSL version {declared!s:.40} is not supported; supported versions: {supported}")]
    )


def pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_problems(document: Any, version: str | None = None) -> list[tuple[str, str]]:
    """``(json pointer, message)`` for each way ``document`` breaks the DSL schema of ``version``
    (by default the version it declares, see :func:`dsl_version`)."""
    version = dsl_version(document) if version is None else version
    if _surely_valid(document, version):
        return []
    return _problems(_validator(version), document, [], version)


def _problems(validator: Any, instance: Any, prefix: list[Any], version: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if any(e.validator != "unevaluatedProperties" for e in errors):
        errors = [e for e in errors if e.validator != "unevaluatedProperties"]
    for error in errors:
        found = _task_problems(error, prefix, version)
        if found is None:
            found = _branch_problems(error, prefix) or [_explain(error, prefix)]
        for problem in found:
            if problem not in problems:
                problems.append(problem)
    return problems


def _task_problems(error: ValidationError, prefix: list[Any], version: str) -> list[tuple[str, str]] | None:
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
    sub = _validator(version).evolve(schema=dsl_schema(version)["$defs"][f"{kind.name}Task"])
    found = _problems(sub, instance, path, version)
    return found or None


def validate_against(schema: Any, instance: Any) -> str | None:
    """Validate ``instance`` against a user-supplied JSON schema; a message, or None if valid."""
    import jsonschema
    from jsonschema.exceptions import best_match

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
    from jsonschema.exceptions import best_match

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
