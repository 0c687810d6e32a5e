"""Secret references in MCP server ``env`` and ``headers`` values, resolved just in time.

A value is either plain text or a whole-string expression ``${ ... }`` made of string literals
and references joined by ``+``::

    ${ $secrets.GH_TOKEN }            the secret's value
    ${.secrets.GH_TOKEN}              the same (the shorthand of the seed manifests)
    ${ "Bearer " + $secrets.TOKEN }   concatenation with a JSON string literal
    ${ $env.REGION }                  a plain variable of the execution's environments

Anything else is refused with an error saying what is supported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from stigmer.core import InvalidArgument

__all__ = ["Resolved", "resolve_value", "secret_names"]

_REF = re.compile(r"(?:\$|\.)(secrets|env)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_BRACKET_REF = re.compile(r"""(?:\$|\.)(secrets|env)\s*\[\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*\]""")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_HELP = 'write ${ $secrets.NAME }, ${ $env.NAME } or ${ "text" + $secrets.NAME }'


@dataclass
class Resolved:
    """A resolved value and the secret names it used."""

    value: str
    secrets: list[str] = field(default_factory=list)


def _is_expression(value: str) -> bool:
    stripped = value.strip()
    return stripped.startswith("${") and stripped.endswith("}")


def _terms(expression: str, where: str) -> list[tuple[str, str]]:
    """Split the inside of ``${ ... }`` into ("lit", text) / ("secrets"|"env", name) terms."""
    terms: list[tuple[str, str]] = []
    pos = 0
    text = expression
    expect_term = True
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        if expect_term:
            string = _STRING.match(text, pos)
            ref = _REF.match(text, pos) or _BRACKET_REF.match(text, pos)
            if string:
                terms.append(("lit", json.loads(string.group(0))))
                pos = string.end()
            elif ref:
                terms.append((ref.group(1), ref.group(2)))
                pos = ref.end()
            else:
                raise InvalidArgument(f"{where}: unsupported expression; {_HELP}", [where])
            expect_term = False
        else:
            if text[pos] != "+":
                raise InvalidArgument(f"{where}: unsupported expression; {_HELP}", [where])
            pos += 1
            expect_term = True
    if expect_term:
        raise InvalidArgument(f"{where}: incomplete expression; {_HELP}", [where])
    return terms


def secret_names(value: str, where: str = "value") -> list[str]:
    """The secret names an expression refers to (empty for plain text)."""
    if not _is_expression(value):
        return []
    inner = value.strip()[2:-1]
    return [name for kind, name in _terms(inner, where) if kind == "secrets"]


def resolve_value(
    value: str,
    secrets: Mapping[str, str],
    variables: Mapping[str, str],
    where: str = "value",
) -> Resolved:
    """Evaluate ``value`` against the execution's secrets and variables.

    Raises ``InvalidArgument`` naming ``where`` (a field path) for malformed expressions and for
    references to secrets the execution was not given; messages never contain secret values.
    """
    if not _is_expression(value):
        return Resolved(value)
    inner = value.strip()[2:-1]
    parts: list[str] = []
    used: list[str] = []
    for kind, name in _terms(inner, where):
        if kind == "lit":
            parts.append(name)
        elif kind == "secrets":
            if name not in secrets:
                raise InvalidArgument(
                    f"{where}: secret {name} is not available to this execution; declare it in the "
                    f"agent's `secrets:` (or an environment it uses) and set it with "
                    f"`stigmer secret set {name}`",
                    [where],
                )
            parts.append(secrets[name])
            used.append(name)
        else:
            if name not in variables:
                raise InvalidArgument(
                    f"{where}: variable {name} is not set in the execution's environments", [where]
                )
            parts.append(variables[name])
    return Resolved("".join(parts), used)
