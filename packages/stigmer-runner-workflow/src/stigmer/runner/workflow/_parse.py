"""Loading workflow documents (YAML 1.2 or dicts) and validating them: schema plus semantic checks."""

from __future__ import annotations

import datetime
import functools
import hashlib
import io
import json
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._errors import WorkflowValidationError
from ._expr import find_nondeterministic
from ._normalize import normalize
from ._schema import dsl_version, schema_problems
from ._task_kinds import unsupported_problems
from ._validate import Problem, Validation, check_document
from ._walk import iter_expressions, iter_task_lists

__all__ = [
    "Workflow",
    "check_deterministic",
    "iter_expressions",
    "iter_task_lists",
    "load_workflow",
    "validate_document",
    "validate_workflow",
]

_MAX_DEPTH = 200
_MAX_NODES = 200_000
# Validations by content hash of the document's text (or canonical JSON): validating a large
# document against the DSL schema costs far more than running it, and `apply` then `run` (or a
# worker running the same document again) would otherwise validate the same text twice.
_CACHE_SIZE = 128
_cache: OrderedDict[bytes, Validation] = OrderedDict()
_cache_lock = threading.Lock()


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

    @functools.cached_property
    def mentions_task(self) -> bool:
        """Whether some text of the document mentions ``$task`` (so an expression may read it).
        The interpreter describes each task in ``$task`` only then: nothing else reads it."""
        return "$task" in json.dumps(self.definition, default=str)


def load_workflow(source: str | bytes | Mapping[str, Any] | Workflow) -> Workflow:
    """Parse (YAML 1.2 / JSON text, or a mapping) and validate a workflow document.

    Raises :class:`WorkflowValidationError` naming each offending path and field (warnings, see
    :func:`validate_workflow`, do not stop a document from loading).
    """
    if isinstance(source, Workflow):
        return source
    validation = validate_workflow(source)
    if validation.workflow is None:
        raise WorkflowValidationError([(p.path, p.message) for p in validation.errors])
    return validation.workflow


def validate_workflow(source: str | bytes | Mapping[str, Any]) -> Validation:
    """Validate a workflow document without raising: schema, semantic checks, jq syntax.

    The :class:`Validation` holds the errors, the warnings, the agents and workflows the document
    names (for a caller that can see them to check), and the loaded :class:`Workflow` when there
    are no errors. Results are cached by the document's content hash, so validating an unchanged
    document again (at apply, then at run) costs a hash.
    """
    if isinstance(source, bytes | str):
        digest = b"t" + hashlib.sha256(source if isinstance(source, bytes) else source.encode()).digest()
        cached = _cached(digest)
        if cached is not None:
            return cached
        try:
            raw = _load_yaml(source)
        except WorkflowValidationError as invalid:
            return _remember(digest, _failed(invalid.problems))
    else:
        raw, digest = source, b""
    try:
        data = _plain(raw, "", 0, [_MAX_NODES])
    except _NotPlain as exc:
        return _failed([(exc.path, exc.reason)])
    if not digest:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = b"j" + hashlib.sha256(text.encode()).digest()
        cached = _cached(digest)
        if cached is not None:
            return cached
    try:
        # the schema of the DSL version it declares, then older shapes in the current model
        data = validate_document(data)
    except WorkflowValidationError as invalid:
        return _remember(digest, _failed(invalid.problems))
    found, references = check_document(data)
    errors = [p for p in found if not p.warning]
    warnings_ = [p for p in found if p.warning]
    unsupported = [Problem(path, message) for path, message in unsupported_problems(data)]
    validation = Validation(
        errors=tuple(errors),
        warnings=tuple(warnings_),
        references=tuple(references),
        unsupported=tuple(unsupported),
        workflow=None if errors else Workflow(definition=data),
    )
    return _remember(digest, validation)


def _failed(problems: Any) -> Validation:
    return Validation(errors=tuple(Problem(path, message) for path, message in problems))


def _cached(digest: bytes) -> Validation | None:
    with _cache_lock:
        found = _cache.get(digest)
        if found is not None:
            _cache.move_to_end(digest)
        return found


def _remember(digest: bytes, validation: Validation) -> Validation:
    with _cache_lock:
        _cache[digest] = validation
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return validation


def validate_document(document: Any) -> dict[str, Any]:
    """Check a plain (JSON-compatible) document against the schema of the DSL version it declares
    and return it in the current model (older 1.0.x shapes normalised; the input is not changed).

    Raises :class:`WorkflowValidationError` for an unsupported ``document.dsl``, each way the
    document breaks its version's schema, and each older shape that has no current equivalent.
    Semantic checks (references, flow targets, jq syntax) are not part of this step.
    """
    if not isinstance(document, dict):
        raise WorkflowValidationError([("", f"a workflow document must be a mapping, not {_kind(document)}")])
    version = dsl_version(document)
    problems = schema_problems(document, version)
    if problems:
        raise WorkflowValidationError(problems)
    normalized, problems = normalize(document, version)
    if problems:
        raise WorkflowValidationError(problems)
    return normalized


def _load_yaml(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkflowValidationError([("", f"the document is not UTF-8 text: {exc}")]) from None
    from ruamel.yaml import YAML  # only for a document given as text (a run loads a stored one)
    from ruamel.yaml.error import YAMLError

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
