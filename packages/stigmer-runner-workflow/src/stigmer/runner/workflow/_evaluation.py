"""Evaluating expressions for the interpreter: the variables (``$context``, ``$input``,
``$workflow``, ``$task``, ``$runtime``, ``$secrets`` ...) and secret-safe error messages."""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from stigmer.core import Redactor

from ._duration import parse_duration
from ._errors import ErrorKind, WorkflowError
from ._expr import (
    evaluate_field,
    evaluate_template,
    guarded,
    is_expression,
    template_bodies,
    template_needs,
    uses_secrets,
)
from ._host import Host
from ._limits import Limits
from ._parse import Workflow

if TYPE_CHECKING:
    from ._dialect import Dialect
    from ._interpreter import Scope

__all__ = ["RUNTIME_NAME", "Evaluating", "timestamp"]

RUNTIME_NAME: Final = "stigmer"


class Evaluating:
    """The expression half of the interpreter (a mixin; the state lives on the interpreter).

    Secret values are fetched from the host right before an expression that reads ``$secrets``
    is evaluated, and are never kept.
    """

    host: Host
    workflow: Workflow
    workflow_id: str
    definition: dict[str, Any]
    context: Any
    dialect: Dialect | None
    _raw_input: Any
    _started: datetime.datetime | None
    limits: Limits
    _workflow_cache: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    async def variables(self, scope: Scope, *, secrets: bool) -> dict[str, Any]:
        values = self._plain_variables(scope)
        if secrets:
            values["secrets"] = dict(await self.host.get_secrets(self.workflow.declared_secrets))
        return values

    def _plain_variables(self, scope: Scope) -> dict[str, Any]:
        """The variables but ``$secrets``."""
        values: dict[str, Any] = {
            "context": self.context,
            "workflow": self._workflow_variable(),
            "runtime": _runtime(),
        }
        if self.dialect is not None:
            values.update(self.dialect.variables())
        values.update(scope.variables)
        return values

    def _workflow_variable(self) -> dict[str, Any]:
        """``$workflow``: built once and again only when what it shows changes (a resume). The
        expressions read it as JSON; nothing changes it in place."""
        cached = self._workflow_cache
        if cached is not None:
            held = cached[0]
            if (
                held[0] is self.workflow_id
                and held[1] is self.definition
                and held[2] is self._raw_input
                and held[3] is self._started
            ):
                return cached[1]
        key = (self.workflow_id, self.definition, self._raw_input, self._started)
        value = {
            "id": self.workflow_id,
            "definition": self.definition,
            "input": self._raw_input,
            "startedAt": timestamp(self._started) if self._started else None,
        }
        self._workflow_cache = (key, value)
        return value

    async def expr(self, text: Any, data: Any, scope: Scope) -> Any:
        """Evaluate an expression-typed field (``${ }`` or bare jq)."""
        if not isinstance(text, str):
            return text
        secrets = uses_secrets(text)
        variables = await self.variables(scope, secrets=True) if secrets else self._plain_variables(scope)
        try:
            if guarded(text, field=True) and self.host_may_wait_in_threads():
                return await asyncio.to_thread(evaluate_field, text, data, variables, self.limits)
            return evaluate_field(text, data, variables, self.limits)
        except WorkflowError as error:
            _scrub_error(error, variables)
            raise

    async def template(self, value: Any, data: Any, scope: Scope) -> Any:
        """Evaluate every ``${ }`` string inside ``value``; literal strings stay as written."""
        if isinstance(value, str) and not is_expression(value):
            return value
        bodies = template_bodies(value)
        secrets, in_process = template_needs(value, bodies)
        variables = await self.variables(scope, secrets=True) if secrets else self._plain_variables(scope)
        try:
            if in_process and self.host_may_wait_in_threads():
                return await asyncio.to_thread(
                    functools.partial(evaluate_template, bodies=bodies), value, data, variables, self.limits
                )
            return evaluate_template(value, data, variables, self.limits, bodies=bodies)
        except WorkflowError as error:
            _scrub_error(error, variables)
            raise

    async def duration(self, spec: Any, data: Any, scope: Scope) -> float:
        """Seconds in a DSL ``duration``: ISO 8601, an inline object, or a runtime expression that
        yields either (evaluated over ``data`` with the variables of ``scope``). ``wait``,
        ``timeout.after`` and the retry durations all come through here."""
        if not is_expression(spec):
            return parse_duration(spec)
        value = await self.expr(spec, data, scope)
        try:
            return parse_duration(value)
        except WorkflowError:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION,
                f"{spec} gave {value!r}, which is not a duration: "
                "use ISO 8601 (PT30S) or an object like {seconds: 30}",
            ) from None

    def host_may_wait_in_threads(self) -> bool:
        """Whether an expression that runs in a jq process is awaited in a thread, leaving the
        event loop free (not in a durable host's workflow code, which must not use threads)."""
        return not getattr(self.host, "deterministic", False)

    async def transform(self, spec: Any, data: Any, scope: Scope) -> Any:
        """``input.from`` / ``output.as`` / ``export.as``: a string is an expression, an object a template."""
        if isinstance(spec, str):
            return await self.expr(spec, data, scope)
        return await self.template(spec, data, scope)


def timestamp(moment: datetime.datetime) -> dict[str, Any]:
    seconds = moment.timestamp()
    return {
        "iso8601": moment.isoformat(),
        "epoch": {"seconds": int(seconds), "milliseconds": int(seconds * 1000)},
    }


def _scrub_error(error: WorkflowError, variables: Mapping[str, Any]) -> None:
    """Keep secret values out of expression error messages: jq's own messages are rendered
    without values (``jq_error_text``); a message the program raised may still hold one."""
    secrets = variables.get("secrets")
    if isinstance(secrets, Mapping):
        values = [v for v in secrets.values() if isinstance(v, str)]
        detail = str(Redactor(values).scrub(str(error.problem.get("detail", ""))))
        error.problem["detail"] = detail
        error.args = (detail,)


@functools.cache
def _runtime() -> dict[str, Any]:
    """``$runtime`` (made once: the expressions read it as JSON; nothing changes it in place)."""
    return {"name": RUNTIME_NAME, "version": _version(), "metadata": {}}


@functools.cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stigmer-runner-workflow")
    except PackageNotFoundError:
        return "0"
