"""Secret references in MCP env/headers values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import InvalidArgument
from stigmer.runner.agent._expr import resolve_value, secret_names

SECRETS = {"GH_TOKEN": "ghp-secret-value", "TOKEN": "t0k3n"}
VARIABLES = {"REGION": "eu-west-1"}


@pytest.mark.parametrize(
    ("raw", "value", "used"),
    [
        ("plain text", "plain text", []),
        ("${ $secrets.GH_TOKEN }", "ghp-secret-value", ["GH_TOKEN"]),
        ("${.secrets.GH_TOKEN}", "ghp-secret-value", ["GH_TOKEN"]),
        ('${ $secrets["GH_TOKEN"] }', "ghp-secret-value", ["GH_TOKEN"]),
        ('${ "Bearer " + $secrets.TOKEN }', "Bearer t0k3n", ["TOKEN"]),
        ('${ "a" + $env.REGION + "\\u0021" }', "aeu-west-1!", []),
        ('${ "x" }', "x", []),
        ("$secrets.GH_TOKEN", "$secrets.GH_TOKEN", []),  # not an expression: literal
    ],
)
def test_resolves(raw: str, value: str, used: list[str]) -> None:
    resolved = resolve_value(raw, SECRETS, VARIABLES, "env.X")
    assert resolved.value == value
    assert resolved.secrets == used


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("${ $secrets.MISSING }", "secret MISSING is not available"),
        ("${ $env.NOPE }", "variable NOPE is not set"),
        ("${ $secrets.GH_TOKEN | ascii }", "unsupported expression"),
        ("${ }", "incomplete expression"),
        ('${ "a" + }', "incomplete expression"),
        ("${ now }", "unsupported expression"),
    ],
)
def test_errors_name_the_field(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve_value(raw, SECRETS, VARIABLES, "McpServer gh: stdio.env.X")
    assert message in caught.value.message
    assert caught.value.message.startswith("McpServer gh: stdio.env.X")
    assert "ghp-secret-value" not in caught.value.message


def test_secret_names() -> None:
    assert secret_names('${ "Bearer " + $secrets.A + .secrets.B }') == ["A", "B"]
    assert secret_names("literal") == []


@given(st.text(max_size=60))
def test_any_input_resolves_or_fails_cleanly(raw: str) -> None:
    for candidate in (raw, "${" + raw + "}"):
        try:
            resolved = resolve_value(candidate, SECRETS, VARIABLES, "f")
        except InvalidArgument as exc:
            assert "ghp-secret-value" not in exc.message
            assert "t0k3n" not in exc.message
        else:
            assert isinstance(resolved.value, str)
