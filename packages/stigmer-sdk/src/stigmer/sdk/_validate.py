"""Validating resources before they are stored: each Workflow's document goes through the
workflow runner's validator (the one ``stigmer run`` uses: schema, semantic checks, jq syntax,
secrets, functions, authentications), and the agents and workflows it names must exist — in the
backend when there is one, else among the resources given. Problems are located in the manifest:
``file:line: spec.do[0].greet: message``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stigmer.core import InvalidArgument, LoadedResource, slugify

if TYPE_CHECKING:
    from stigmer.runner.workflow import Reference

__all__ = ["ValidationFailed", "ValidationProblem", "check_resources", "validate"]

Exists = Callable[[str, str], Awaitable[bool]]
OFFLINE_NOTE = "without a backend, agents and workflows are looked up in the given manifests only"


@dataclass(frozen=True)
class ValidationProblem:
    """One problem (or, with ``warning``, a risk) of one resource, located in its manifest."""

    source: str
    line: int
    path: str
    """The field, as a dotted manifest path (``spec.do[0].greet.set``)."""
    message: str
    kind: str
    name: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.path + ': ' if self.path else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "line": self.line,
            "path": self.path,
            "message": self.message,
            "severity": "warning" if self.warning else "error",
            "kind": self.kind,
            "name": self.name,
        }


class ValidationFailed(InvalidArgument):
    """Resources were refused before anything was stored; ``problems`` lists every error."""

    def __init__(self, problems: Sequence[ValidationProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)), [p.path for p in self.problems])


def validate(*resources: Any) -> list[ValidationProblem]:
    """Check resources (builders, messages, manifest dicts, paths — what ``apply`` takes) without
    a backend: every Workflow document is validated as ``stigmer run`` would, and the agents and
    workflows it names must be among the given resources. Returns the problems, errors and
    warnings (``warning=True``), in manifest order; an empty list means valid.
    ``AsyncStigmer.validate`` checks the names against its backend too."""
    from stigmer.sdk._collect import collect

    loaded = collect(resources)
    problems, unresolved = _check(loaded)
    for item, spec, ref in unresolved:
        message = f"{ref.kind.lower()} {ref.name!r} is not among the given manifests ({OFFLINE_NOTE})"
        problems.append(_located(item, spec, ref.path, message, False))
    return _in_order(problems, loaded)


async def check_resources(loaded: Sequence[LoadedResource], exists: Exists) -> list[ValidationProblem]:
    """The problems of ``loaded``; the agents and workflows named that are not among ``loaded``
    are looked up with ``exists`` (the backend)."""
    problems, unresolved = _check(loaded)
    known: dict[tuple[str, str], bool] = {}
    for item, spec, ref in unresolved:
        key = (ref.kind, slugify(ref.name))
        if key not in known:
            known[key] = await exists(ref.kind, ref.name)
        if not known[key]:
            message = (
                f"{ref.kind.lower()} {ref.name!r} does not exist "
                "(it is neither stored nor among the resources applied)"
            )
            problems.append(_located(item, spec, ref.path, message, False))
    return _in_order(problems, loaded)


def _check(
    loaded: Sequence[LoadedResource],
) -> tuple[list[ValidationProblem], list[tuple[LoadedResource, Any, Reference]]]:
    from stigmer.core import from_value
    from stigmer.runner.workflow import validate_workflow

    batch = {(item.kind, slugify(item.name)) for item in loaded}
    problems: list[ValidationProblem] = []
    unresolved: list[tuple[LoadedResource, Any, Reference]] = []
    for item in loaded:
        if item.kind == "Agent":
            problems.extend(_agent_problems(item))
            continue
        if item.kind != "Workflow":
            continue
        spec = from_value(item.resource.workflow.spec)  # type: ignore[union-attr]
        validation = validate_workflow(spec)
        # what the runner cannot run (the DSL allows it) is refused at apply, like an error
        for problem in (*validation.errors, *validation.unsupported, *validation.warnings):
            problems.append(_located(item, spec, problem.path, problem.message, problem.warning))
        unresolved.extend(
            (item, spec, ref) for ref in validation.references if (ref.kind, slugify(ref.name)) not in batch
        )
    return problems, unresolved


def _agent_problems(item: LoadedResource) -> list[ValidationProblem]:
    """An Agent's built-in ``tools:`` (and its sub-agents'): known names and functions. Without
    the agent runner installed (the SDK's ``agent`` extra) they are left to the runner that runs
    the agent, which checks them the same way."""
    from google.protobuf import json_format

    try:
        from stigmer.runner.agent.tools import tool_problems
    except ModuleNotFoundError:
        return []

    spec_msg = item.resource.agent.spec  # type: ignore[union-attr]
    spec = json_format.MessageToDict(spec_msg)
    out = [
        _located(item, spec, pointer, message, False) for pointer, message in tool_problems(spec_msg.tools)
    ]
    for index, sub in enumerate(spec_msg.sub_agents):
        for pointer, message in tool_problems(sub.tools):
            out.append(_located(item, spec, f"/subAgents/{index}{pointer}", message, False))
    return out


def _in_order(problems: list[ValidationProblem], loaded: Sequence[LoadedResource]) -> list[ValidationProblem]:
    """Problems in the order of the manifests, then of the lines; errors before warnings."""
    position = {(item.source, item.kind, item.name): index for index, item in enumerate(loaded)}
    return sorted(problems, key=lambda p: (position.get((p.source, p.kind, p.name), 0), p.line, p.warning))


def _located(item: LoadedResource, spec: Any, pointer: str, message: str, warning: bool) -> ValidationProblem:
    parts: list[str | int] = ["spec", *_parts(pointer, spec)]
    return ValidationProblem(
        item.source, item.line_of(parts), _dotted(parts), message, item.kind, item.name, warning
    )


def _parts(pointer: str, data: Any) -> list[str | int]:
    """A JSON pointer as keys and list indexes (which tokens are indexes, the data tells)."""
    parts: list[str | int] = []
    node = data
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list) and token.isdigit():
            parts.append(int(token))
            node = node[int(token)] if int(token) < len(node) else None
        else:
            parts.append(token)
            node = node.get(token) if isinstance(node, dict) else None
    return parts


def _dotted(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
