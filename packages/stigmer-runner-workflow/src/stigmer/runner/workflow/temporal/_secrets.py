"""Secret references for durable hosts: the workflow sees ``{{stigmer-secret:NAME}}``, never a value.

On Temporal, expressions run inside the workflow, whose inputs, results and history are stored.
So ``$secrets.NAME`` evaluates to a reference string there; the activity that performs the
effect (HTTP request, process) fetches the values with ``GetExecutionContext`` and substitutes
them right before it acts, then scrubs them from anything it returns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from stigmer.core import Redactor

__all__ = [
    "has_refs",
    "ref_names",
    "scrub",
    "scrub_bytes",
    "secret_ref",
    "substitute",
    "substitute_tokens",
    "token_ref",
    "token_refs",
]

_REF: Final = re.compile(r"\{\{stigmer-secret:([A-Za-z_][\w.-]*)\}\}")
_TOKEN: Final = re.compile(r"\{\{stigmer-token:([0-9a-f]{1,64})\}\}")


def secret_ref(name: str) -> str:
    """The reference a workflow holds in place of the secret ``name``."""
    return "{{stigmer-secret:" + name + "}}"


def ref_names(value: Any) -> set[str]:
    """Names of the secrets referenced anywhere in ``value`` (strings, lists, dict keys and values)."""
    return _found(_REF, value)


def has_refs(value: Any) -> bool:
    return bool(ref_names(value))


def substitute(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every reference to a secret in ``secrets`` replaced by its value."""

    return _replaced(_REF, value, secrets)


def token_ref(key: str) -> str:
    """The reference a workflow holds in place of an OAuth2 access token (``key``: its policy's digest);
    the HTTP activity that sends it obtains the token and puts it in place."""
    return "{{stigmer-token:" + key + "}}"


def token_refs(value: Any) -> set[str]:
    """Keys of the access tokens referenced anywhere in ``value``."""
    return _found(_TOKEN, value)


def substitute_tokens(value: Any, tokens: Mapping[str, str]) -> Any:
    """``value`` with every reference to a token in ``tokens`` replaced by the token."""

    return _replaced(_TOKEN, value, tokens)


def scrub(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every secret value in ``secrets`` masked as ``***`` in each of its forms
    (raw, each line, JSON/repr-escaped, URL-encoded, base64: see ``stigmer.core.Redactor``)."""
    plain = _walk(value, str)  # mappings as dicts, tuples as lists (as JSON has them)
    return Redactor(secrets.values()).scrub(plain)


def scrub_bytes(data: bytes, secrets: Mapping[str, str]) -> bytes:
    """``data`` (a response body) with every secret value in ``secrets`` masked in any of its forms."""
    return Redactor(secrets.values()).scrub_bytes(data)


def _found(pattern: re.Pattern[str], value: Any) -> set[str]:
    found: set[str] = set()

    def collect(text: str) -> str:
        found.update(pattern.findall(text))
        return text

    _walk(value, collect)
    return found


def _replaced(pattern: re.Pattern[str], value: Any, values: Mapping[str, str]) -> Any:
    def one(text: str) -> str:
        return pattern.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    return _walk(value, one)


def _walk(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {_walk(k, fn) if isinstance(k, str) else k: _walk(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, fn) for v in value]
    return value
