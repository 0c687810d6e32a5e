"""jq runtime expressions: the strict ``${ }`` form, bare jq in expression fields, and a compile cache."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, Final

import jq

from ._errors import ErrorKind, WorkflowError
from ._jq_process import evaluate_guarded, is_bounded
from ._limits import Limits

__all__ = [
    "NONDETERMINISTIC_BUILTINS",
    "evaluate",
    "evaluate_field",
    "evaluate_template",
    "expression_body",
    "find_nondeterministic",
    "guarded",
    "is_expression",
    "iter_strings",
    "jq_error_text",
    "secret_names",
    "syntax_error",
    "template_bodies",
    "template_needs",
    "template_uses_secrets",
    "truthy",
    "uses_secrets",
]

_STRICT: Final = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)
# The seed's shorthand ``.secrets.X`` (outside any path) means ``$secrets.X``.
_DOT_SECRETS: Final = re.compile(r"(?<![\w$\]\).\"?])\.secrets\b")
_SECRET_REF: Final = re.compile(r"\$secrets\s*(?:\.\s*\"?([A-Za-z_][\w-]*)\"?|\[\s*\"([^\"]+)\"\s*\])")
_VAR_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: jq builtins whose result depends on the environment or the clock: not replay-safe.
NONDETERMINISTIC_BUILTINS: Final = ("now", "$ENV", "env", "input", "inputs", "input_filename")
_NONDET: Final = re.compile(r"(?<![\w$.])(\$ENV\b|(?:now|env|inputs?|input_filename)\b)(?!\s*:)")
_STRING_LITERAL: Final = re.compile(r'"(?:[^"\\]|\\.)*"')


def truthy(value: Any) -> bool:
    """jq truthiness: everything but ``false`` and ``null``."""
    return value is not None and value is not False


#: Strings up to this long (a document's expressions) have their reading cached; longer ones
#: are data passing through, read each time rather than kept.
_CACHED_LENGTH: Final = 1024


@lru_cache(maxsize=4096)
def _read(text: str) -> tuple[bool, str]:
    """Whether ``text`` is written entirely as ``${ ... }``, and its jq program."""
    match = _STRICT.match(text)
    body = match.group(1) if match else text
    return match is not None, _DOT_SECRETS.sub("$secrets", body)


def _reading(text: str) -> tuple[bool, str]:
    return _read(text) if len(text) <= _CACHED_LENGTH else _read.__wrapped__(text)


def is_expression(value: object) -> bool:
    """True when ``value`` is a string written entirely as ``${ ... }``."""
    if not isinstance(value, str):
        return False
    if len(value) <= _CACHED_LENGTH:
        return _read(value)[0]
    return _STRICT.match(value) is not None


def expression_body(text: str) -> str:
    """The jq program of an expression field: the inside of ``${ }``, or the bare text."""
    return _reading(text)[1]


def uses_secrets(text: str) -> bool:
    return "$secrets" in expression_body(text)


def secret_names(text: str) -> set[str]:
    """Names read as ``$secrets.X`` / ``$secrets["X"]`` (or ``.secrets.X``) in one expression."""
    return {a or b for a, b in _SECRET_REF.findall(expression_body(text))}


def find_nondeterministic(text: str) -> list[str]:
    """The non-deterministic jq builtins an expression calls (string literals ignored)."""
    body = _STRING_LITERAL.sub('""', expression_body(text))
    return sorted(set(_NONDET.findall(body)))


#: Put before every program: jq's ``env`` and ``$ENV`` (the process environment) see nothing.
_NO_ENVIRONMENT: Final = "def env: {}; {} as $ENV | "
_DEFAULT_LIMITS: Final = Limits()


def _program(body: str, names: tuple[str, ...]) -> str:
    binding = ", ".join(["$__data", *(f"${n}" for n in names)])
    return f"{_NO_ENVIRONMENT}. as [{binding}] | $__data | ({body}\n)"


@lru_cache(maxsize=2048)
def _compile(body: str, names: tuple[str, ...]) -> Any:
    try:
        return jq.compile(_program(body, names))
    except ValueError as exc:
        raise WorkflowError.of(
            ErrorKind.EXPRESSION, f"invalid jq expression {body.strip()!r}: {_first_line(exc)}"
        ) from None


_ANY_VAR: Final = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def syntax_error(text: str) -> str | None:
    """Why an expression does not compile as jq (None if it does); its variables count as bound."""
    body = expression_body(text)
    names = tuple(sorted({n for n in _ANY_VAR.findall(body) if n not in ("__loc__", "ENV")}))
    try:
        _compile(body, names)
    except WorkflowError:
        try:
            jq.compile(body, args=dict.fromkeys(names))
        except ValueError as exc:
            first = _first_line(exc).removeprefix("jq: error: ")
            return _LOCATION.sub(r" (line \1, column \2)", first).rstrip(":")
        return "syntax error"
    return None


_LOCATION: Final = re.compile(r" at <top-level>, line (\d+), column (\d+):?$")


def evaluate(body: str, data: Any, variables: Mapping[str, Any], limits: Limits | None = None) -> Any:
    """Run jq ``body`` on ``data`` with ``$name`` variables; the first result (null if none).

    Only the variables the program mentions are bound (and serialized). A bounded expression
    runs here, any other in a jq process within ``limits``' jq time and memory (see ``_jq_process``).
    """
    names, program, bounded = _plan(body, tuple(variables))
    value = [data]
    for name in names:
        value.append(variables[name])
    try:
        if bounded:
            results = program.input_value(value).all()
        else:
            results = [evaluate_guarded(_program(body, names), value, limits or _DEFAULT_LIMITS)]
    except ValueError as exc:
        raise WorkflowError.of(
            ErrorKind.EXPRESSION, f"jq expression {body.strip()!r} failed: {jq_error_text(exc)}"
        ) from None
    return results[0] if results else None


@lru_cache(maxsize=4096)
def _plan(body: str, available: tuple[str, ...]) -> tuple[tuple[str, ...], Any, bool]:
    """How to run ``body`` given the variables ``available``: the ones it binds, its compiled
    program, and whether it runs in this process (:func:`is_bounded`)."""
    names = _bound_names(body, available)
    return names, _compile(body, names), is_bounded(body)


@lru_cache(maxsize=4096)
def _bound_names(body: str, available: tuple[str, ...]) -> tuple[str, ...]:
    """The variables of ``available`` that ``body`` mentions, sorted (the program's bindings)."""
    return tuple(sorted(n for n in available if f"${n}" in body and _VAR_NAME.match(n)))


def guarded(value: Any, *, field: bool = False) -> bool:
    """True when evaluating ``value`` (a template, or with ``field`` an expression field) runs
    some expression in a jq process (an expression :func:`is_bounded` does not accept)."""
    if field:
        return isinstance(value, str) and not is_bounded(expression_body(value))
    return any(not is_bounded(body) for body in template_bodies(value))


def evaluate_field(text: str, data: Any, variables: Mapping[str, Any], limits: Limits | None = None) -> Any:
    """Evaluate an expression-typed field (``if``, ``when``, ``for.in``...): ``${ }`` or bare jq."""
    return evaluate(expression_body(text), data, variables, limits)


def template_uses_secrets(value: Any) -> bool:
    """True when any ``${ }`` string inside ``value`` reads ``$secrets``."""
    return any("$secrets" in body for body in template_bodies(value))


def template_needs(value: Any, bodies: list[str] | None = None) -> tuple[bool, bool]:
    """``(template_uses_secrets(value), guarded(value))`` in one walk of the template (none when
    its ``bodies`` are given: what :func:`template_bodies` gives for it)."""
    secrets = in_process = False
    for body in template_bodies(value) if bodies is None else bodies:
        if not secrets and "$secrets" in body:
            secrets = True
        if not in_process and not is_bounded(body):
            in_process = True
    return secrets, in_process


def template_bodies(value: Any) -> list[str]:
    """The jq programs of the ``${ }`` strings in a template, in the order they are evaluated."""
    bodies: list[str] = []
    for text in _template_strings(value):
        strict, body = _reading(text)
        if strict:
            bodies.append(body)
    return bodies


def _template_strings(value: Any) -> Iterator[str]:
    """Every string in a template (as :func:`iter_strings`, without their pointers), in the order
    :func:`_filled` visits them."""
    if isinstance(value, str):
        yield value
    elif type(value) is dict or isinstance(value, Mapping):
        for item in value.values():
            yield from _template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_strings(item)


def evaluate_template(
    value: Any,
    data: Any,
    variables: Mapping[str, Any],
    limits: Limits | None = None,
    *,
    bodies: list[str] | None = None,
) -> Any:
    """Evaluate every ``${ }`` string inside ``value``; other strings stay literal (``bodies``:
    what :func:`template_bodies` gives for it, when the caller has it).

    Several expressions that all run in this process run as one jq program (one start and one
    reading of the data and variables, instead of one each), each giving its first result or
    null as on its own. Should that program fail, each runs on its own: an error names the
    expression that failed, as ever.
    """
    if not isinstance(value, str):
        if bodies is None:
            bodies = template_bodies(value)
        if len(bodies) > 1:
            results = _evaluate_together(tuple(bodies), data, variables)
            if results is not None:
                return _filled(value, iter(results))
    return _evaluate_each(value, data, variables, limits)


def _evaluate_each(value: Any, data: Any, variables: Mapping[str, Any], limits: Limits | None) -> Any:
    if isinstance(value, str):
        strict, body = _reading(value)
        if strict:
            return evaluate(body, data, variables, limits)
        return value
    if type(value) is dict or isinstance(value, Mapping):
        return {str(k): _evaluate_each(v, data, variables, limits) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluate_each(v, data, variables, limits) for v in value]
    return value


def _filled(value: Any, results: Iterator[Any]) -> Any:
    """``value`` with each ``${ }`` string replaced by the next of ``results`` (as :func:`_evaluate_each`)."""
    if isinstance(value, str):
        return next(results) if _reading(value)[0] else value
    if type(value) is dict or isinstance(value, Mapping):
        return {str(k): _filled(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, results) for v in value]
    return value


def _evaluate_together(bodies: tuple[str, ...], data: Any, variables: Mapping[str, Any]) -> list[Any] | None:
    """The first result (or null) of each of ``bodies``, run as one program; None when they cannot
    run together (see :func:`_joint_plan`) or the program failed."""
    plan = _joint_plan(bodies, tuple(variables))
    if plan is None:
        return None
    names, program = plan
    value = [data]
    for name in names:
        value.append(variables[name])
    try:
        results = program.input_value(value).all()
    except ValueError:
        return None
    if results.count(_NEXT) != len(bodies) - 1:
        return None  # a body gave the separator itself: its results cannot be told apart
    firsts: list[Any] = []
    start = 0
    for _ in range(len(bodies) - 1):
        end = results.index(_NEXT, start)
        firsts.append(results[start] if end > start else None)
        start = end + 1
    firsts.append(results[start] if start < len(results) else None)
    return firsts


@lru_cache(maxsize=1024)
def _joint_plan(bodies: tuple[str, ...], available: tuple[str, ...]) -> tuple[tuple[str, ...], Any] | None:
    """The variables to bind and the program that gives the results of each body in turn, with
    :data:`_NEXT` between those of one body and the next; None unless every body runs in this process (:func:`is_bounded`) and is self-contained (its
    parentheses balance, so it parses within the program as it does alone)."""
    if not all(is_bounded(body) and _balanced(body) for body in bodies):
        return None
    names = tuple(sorted({name for body in bodies for name in _bound_names(body, available)}))
    binding = ", ".join(["$__data", *(f"${n}" for n in names)])
    parts = f", {_NEXT_JQ}, ".join(f"({body}\n)" for body in bodies)
    try:
        return names, jq.compile(f"{_NO_ENVIRONMENT}. as [{binding}] | $__data | ({parts})")
    except ValueError:
        return None


#: What separates the results of one body from the next in a joint program (should a body give
#: it too, the count tells, and the bodies run one by one).
_NEXT: Final = "\x00stigmer:next\x00"
_NEXT_JQ: Final = '"\\u0000stigmer:next\\u0000"'


def _balanced(body: str) -> bool:
    """True when the parentheses of ``body`` (outside string literals) balance."""
    depth = 0
    for char in _STRING_LITERAL.sub('""', body):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a document with its JSON pointer."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}/{_escape(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{path}/{index}")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- jq error messages
# jq quotes the values it fails on, JSON-escaped and cut after 29 bytes ("sk-proj-AbCd..."): a
# prefix no redactor can recognise. Messages are rendered with the type names and shape only.
_TYPED_VALUE: Final = re.compile(r"\b(null|boolean|number|string|array|object) \(")
_TRUNCATED: Final = re.compile(r"\.\.\.[\"\]}]?\)")  # "...)", '...")', "...])" or "...})"
_DUMP_MAX: Final = 34  # jq's buffer for a quoted value: 29 bytes ending "..." when cut, a bracket, ")"
_VALUE_TEMPLATES: Final = (
    (
        re.compile(r"^Invalid path expression with result .*", re.DOTALL),
        "Invalid path expression with result",
    ),
    (
        re.compile(r"^Invalid path expression near attempt to access element .*", re.DOTALL),
        "Invalid path expression near attempt to access an element",
    ),
    (
        re.compile(r"^Invalid path expression near attempt to iterate through .*", re.DOTALL),
        "Invalid path expression near attempt to iterate",
    ),
    (re.compile(r" \(while parsing '.*'\)$", re.DOTALL), ""),
    (re.compile(r"^date .* does not match format .*", re.DOTALL), "date does not match the format"),
    (re.compile(r"^.* is not a valid modifier string$", re.DOTALL), "invalid regex modifier string"),
    (re.compile(r"^.* (\(at offset \d+\) is not a valid regex: .*)$", re.DOTALL), r"the regex \1"),
)


def jq_error_text(exc: Exception) -> str:
    """jq's error message without the values it quotes (``string ("sk-...") and number (1)
    cannot be added`` becomes ``string and number cannot be added``).

    A message raised by the program itself (``error("...")``) is kept: it is the author's text,
    masked like any other output when recorded.
    """
    text = str(exc).strip()  # whole: a value may hold characters that split lines
    for pattern, replacement in _VALUE_TEMPLATES:
        text = pattern.sub(replacement, text)
    out: list[str] = []
    pos = 0
    for match in _TYPED_VALUE.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos : match.end() - 2])  # the type name, without " ("
        end = _value_end(text, match.end())
        if end is None:  # no end in sight: drop the rest rather than keep a piece of a value
            pos = len(text)
            break
        pos = end
    out.append(text[pos:])
    rendered = "".join(out)
    return rendered.split("\n", 1)[0].strip() or type(exc).__name__


def _value_end(text: str, start: int) -> int | None:
    """The index after the ``)`` that closes a value jq quoted at ``start`` (None if none does)."""
    try:
        _, end = _DECODER.raw_decode(text, start)
    except ValueError:
        end = -1
    if end > start and text.startswith(")", end):
        return end + 1
    # Cut short: it ends with "...)" within jq's buffer; take the last such end in reach.
    ends = [m.end() for m in _TRUNCATED.finditer(text, start, start + _DUMP_MAX)]
    return ends[-1] if ends else None


_DECODER: Final = json.JSONDecoder()
