"""The checks the schema cannot express, and what a validation found.

:func:`check_document` runs over a schema-valid document and returns a :class:`Validation`:
errors (flow targets, references to ``use.*`` sections, ``$secrets`` without ``use.secrets``, jq
syntax), warnings (legal but risky: two tasks of one list with the same name), and the resources
the document names outside itself (``call: agent``'s agent, ``run: workflow``'s workflow), which
only a caller that sees the backend (or an apply batch) can check.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._dialect import dialect_problem
from ._expr import is_expression, secret_names, syntax_error, uses_secrets
from ._tasks.oauth import policy_gaps
from ._walk import iter_expressions, iter_task_lists, iter_tasks

if TYPE_CHECKING:
    from ._parse import Workflow

__all__ = ["BUILTIN_CALLS", "Problem", "Reference", "Validation", "authentication_policies", "check_document"]

_FLOW: Final = ("continue", "exit", "end")
#: ``call:`` names that are not ``use.functions`` entries: the DSL's protocols and Stigmer's agent.
BUILTIN_CALLS: Final = frozenset({"a2a", "agent", "asyncapi", "grpc", "http", "mcp", "openapi"})
_AUTH_SCHEMES: Final = ("basic", "bearer", "digest", "oauth2", "oidc", "certificate")
# Where user data (not DSL structure) lives: an ``authentication`` key in there is not a policy.
_USER_DATA: Final = frozenset(
    {
        "document",
        "metadata",
        "body",
        "set",
        "data",
        "input",
        "arguments",
        "environment",
        "parameters",
        "headers",
        "query",
    }
)


@dataclass(frozen=True)
class Problem:
    """One finding: ``path`` is a JSON pointer into the document (``/do/0/greet/set``)."""

    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


@dataclass(frozen=True)
class Reference:
    """A resource the document names outside itself: ``kind`` is ``Agent`` or ``Workflow``."""

    kind: str
    name: str
    path: str


@dataclass(frozen=True)
class Validation:
    """What validating one document found; ``workflow`` is set when there are no errors.

    ``unsupported`` lists what the DSL allows but this runner cannot run (``call: mcp``,
    ``run: container`` ...): the document loads (it is valid), but ``apply`` refuses it."""

    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    references: tuple[Reference, ...] = ()
    unsupported: tuple[Problem, ...] = ()
    workflow: Workflow | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_document(definition: Mapping[str, Any]) -> tuple[list[Problem], list[Reference]]:
    """Errors and warnings of a schema-valid document, and the resources it refers to."""
    problems: list[Problem] = []
    use = definition.get("use") or {}
    if (dialect := dialect_problem(definition)) is not None:
        problems.append(Problem("/document/metadata", dialect))
    for path, tasks in iter_task_lists(definition):
        names: dict[str, int] = {}
        for index, item in enumerate(tasks):
            for name in item:
                if name in names:
                    problems.append(
                        Problem(
                            f"{path}/{index}/{name}",
                            f"task name {name!r} is used twice in this list (first at "
                            f"{path}/{names[name]}); a 'then: {name}' goes to the first",
                            warning=True,
                        )
                    )
                names.setdefault(name, index)
        for index, item in enumerate(tasks):
            for name, task in item.items():
                problems.extend(_flow_targets(f"{path}/{index}/{name}", task, names))
    references: list[Reference] = []
    for path, task in iter_tasks(definition):
        problems.extend(_task_references(path, task, use, references))
    _reference(problems, "/timeout", definition.get("timeout"), use, "timeouts")
    problems.extend(_authentications(definition, use))
    problems.extend(_expressions(definition, use))
    return problems, references


def _flow_targets(path: str, task: Mapping[str, Any], siblings: Mapping[str, int]) -> Iterator[Problem]:
    def check(where: str, target: Any) -> Iterator[Problem]:
        if isinstance(target, str) and target not in _FLOW and target not in siblings:
            known = ", ".join(sorted(siblings)) or "none"
            yield Problem(where, f"'then' names unknown task {target!r} (tasks in this list: {known})")

    yield from check(f"{path}/then", task.get("then"))
    for index, case in enumerate(task.get("switch") or ()):
        for case_name, body in case.items():
            if isinstance(body, Mapping):
                yield from check(f"{path}/switch/{index}/{case_name}/then", body.get("then"))
    catch = task.get("catch")
    if isinstance(catch, Mapping):
        yield from check(f"{path}/catch/then", catch.get("then"))


def _reference(problems: list[Problem], where: str, value: Any, use: Mapping[str, Any], section: str) -> None:
    if isinstance(value, str) and not is_expression(value) and value not in (use.get(section) or {}):
        problems.append(Problem(where, f"{value!r} is not defined in use.{section}"))


def _task_references(
    path: str, task: Mapping[str, Any], use: Mapping[str, Any], references: list[Reference]
) -> list[Problem]:
    problems: list[Problem] = []
    catch = task.get("catch")
    if isinstance(catch, Mapping):
        _reference(problems, f"{path}/catch/retry", catch.get("retry"), use, "retries")
    raise_ = task.get("raise")
    if isinstance(raise_, Mapping):
        _reference(problems, f"{path}/raise/error", raise_.get("error"), use, "errors")
    _reference(problems, f"{path}/timeout", task.get("timeout"), use, "timeouts")
    call = task.get("call")
    if isinstance(call, str):
        problems.extend(_call(path, call, task.get("with"), use, references))
    run = task.get("run")
    workflow = run.get("workflow") if isinstance(run, Mapping) else None
    if isinstance(workflow, Mapping) and isinstance(workflow.get("name"), str):
        references.append(Reference("Workflow", workflow["name"], f"{path}/run/workflow/name"))
    return problems


def _call(
    path: str, call: str, args: Any, use: Mapping[str, Any], references: list[Reference]
) -> Iterator[Problem]:
    functions = use.get("functions") or {}
    if call == "agent" and call not in functions:
        if isinstance(args, Mapping):
            missing = [key for key in ("agent", "message") if key not in args]
            if missing:
                yield Problem(f"{path}/with", f"call: agent needs with.{' and with.'.join(missing)}")
            agent = args.get("agent")
            if isinstance(agent, str) and not is_expression(agent):
                references.append(Reference("Agent", agent, f"{path}/with/agent"))
        return
    if call in BUILTIN_CALLS or call in functions or "://" in call:  # a URL: a function's definition
        return
    if "@" in call:  # name:version@catalog
        catalog = call.rpartition("@")[2]
        if catalog not in (use.get("catalogs") or {}):
            yield Problem(f"{path}/call", f"catalog {catalog!r} is not defined in use.catalogs")
        return
    builtin = ", ".join(sorted(BUILTIN_CALLS))
    yield Problem(
        f"{path}/call", f"function {call!r} is not defined in use.functions (built-in calls: {builtin})"
    )


def authentication_policies(definition: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every authentication policy written in a document (``use.authentications`` entries and
    inline ``authentication`` fields, not ``{use: NAME}`` references), with its JSON pointer."""
    use = definition.get("use")
    named = (use.get("authentications") if isinstance(use, Mapping) else None) or {}
    policies = [(f"/use/authentications/{n}", p) for n, p in named.items() if isinstance(p, Mapping)]
    for where, value in _keyed(definition, "authentication"):
        if isinstance(value, Mapping) and set(value) != {"use"}:
            policies.append((where, value))
    return policies


def _authentications(definition: Mapping[str, Any], use: Mapping[str, Any]) -> Iterator[Problem]:
    """``authentication: {use: NAME}`` names a ``use.authentications`` entry, a policy stored as
    a secret (``bearer: {use: SECRET}``) names a secret of ``use.secrets``, and an OAuth2/OIDC
    policy holds what its grant needs."""
    named = use.get("authentications") or {}
    secrets = set(use.get("secrets") or ())
    for where, value in _keyed(definition, "authentication"):
        if isinstance(value, Mapping) and set(value) == {"use"}:
            name = value["use"]
            if isinstance(name, str) and name not in named:
                known = ", ".join(sorted(named)) or "none"
                yield Problem(
                    f"{where}/use",
                    f"authentication {name!r} is not defined in use.authentications (defined: {known})",
                )
    for where, policy in authentication_policies(definition):
        for path, message in policy_gaps(where, policy):
            yield Problem(path, message)
        for scheme in _AUTH_SCHEMES:
            settings = policy.get(scheme)
            if isinstance(settings, Mapping) and set(settings) == {"use"}:
                secret = settings["use"]
                if isinstance(secret, str) and secret not in secrets:
                    yield Problem(
                        f"{where}/{scheme}/use",
                        f"{scheme} authentication uses secret {secret!r}, not declared in use.secrets",
                    )


def _keyed(value: Any, key: str, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value held under ``key`` in a mapping anywhere in ``value``, with its pointer."""
    if isinstance(value, Mapping):
        for k, item in value.items():
            here = f"{path}/{k}"
            if k == key:
                yield here, item
            elif k not in _USER_DATA:
                yield from _keyed(item, key, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _keyed(item, key, f"{path}/{index}")


def _expressions(definition: Mapping[str, Any], use: Mapping[str, Any]) -> Iterator[Problem]:
    declared = set(use.get("secrets") or ())
    for where, text in iter_expressions(definition):
        error = syntax_error(text)
        if error is not None:
            yield Problem(where, f"invalid jq expression: {error}")
            continue
        if not uses_secrets(text):
            continue
        missing = sorted(secret_names(text) - declared)
        if missing:
            yield Problem(where, f"secret(s) {', '.join(missing)} used but not declared in use.secrets")
        elif not declared:
            yield Problem(where, "$secrets used but the workflow declares no use.secrets")
