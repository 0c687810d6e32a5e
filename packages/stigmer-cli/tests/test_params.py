"""Command-line input parsing: --input, --env K=V and secret files; bad input is a clear error."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stigmer.cli._errors import CliError
from stigmer.cli.commands._params import parse_env, parse_input, parse_secret_file, read_secret_value


def test_input_inline_and_files(tmp_path: Path) -> None:
    assert parse_input('{"name": "Ada"}') == {"name": "Ada"}
    assert parse_input("[1, 2]") == [1, 2]
    (tmp_path / "in.json").write_text('{"a": 1}')
    assert parse_input(f"@{tmp_path / 'in.json'}") == {"a": 1}
    (tmp_path / "in.yaml").write_text("a: 1\nb: [x]\n")
    assert parse_input(f"@{tmp_path / 'in.yaml'}") == {"a": 1, "b": ["x"]}


def test_input_errors(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="invalid JSON at line 1"):
        parse_input("{name: Ada}")
    with pytest.raises(CliError, match="no such file"):
        parse_input(f"@{tmp_path / 'missing.json'}")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_input_never_crashes(text: str) -> None:
    try:
        value = parse_input(text)
    except CliError as exc:
        assert exc.message
    else:
        assert json.loads(json.dumps(value)) == value or value != value  # NaN is not equal to itself


def test_env_pairs() -> None:
    assert parse_env(["A=1", "B=x=y", "A=2", "C="]) == {"A": "2", "B": "x=y", "C": ""}
    for bad in ["A", "=1", "1A=x", "A B=1"]:
        with pytest.raises(CliError, match="expected NAME=VALUE"):
            parse_env([bad])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=5))
def test_env_never_crashes(pairs: list[str]) -> None:
    try:
        env = parse_env(pairs)
    except CliError as exc:
        assert "--env" in exc.message
    else:
        assert all(isinstance(k, str) and k for k in env)


def test_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("# comment\n\nGH_TOKEN=abc=def\nexport API_KEY = 'quoted value'\nEMPTY=\n")
    assert parse_secret_file(path) == {"GH_TOKEN": "abc=def", "API_KEY": "quoted value", "EMPTY": ""}


def test_secret_file_is_a_dotenv_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(
        "A=plain # a comment\nB=no#comment\nC='single # kept' # comment\n"
        'D="tab\\there \\"quoted\\" \\\\ \\n"\nexport\tE=tabbed\nA=later wins\n',
        encoding="utf-8",
    )
    assert parse_secret_file(path) == {
        "A": "later wins",
        "B": "no#comment",
        "C": "single # kept",
        "D": 'tab\there "quoted" \\ \n',
        "E": "tabbed",
    }
    path.write_text("OK=1\nEMPTY=\nQ='open\nR='x' y\n", encoding="utf-8")
    with pytest.raises(CliError) as info:
        parse_secret_file(path, allow_empty=False)
    assert info.value.message == f"{path}:2: EMPTY has an empty value (and 2 more bad lines)"
    with pytest.raises(CliError) as info:
        parse_secret_file(path)
    assert info.value.message == (
        f"{path}:3: Q: the quoted value has no closing quote (values span one line) (and 1 more bad line)"
    )


def test_secret_file_errors_never_show_the_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text("GOOD=1\nthis line holds hunter2 but no equals sign\n")
    with pytest.raises(CliError) as info:
        parse_secret_file(path)
    assert f"{path}:2" in info.value.message
    assert "hunter2" not in info.value.message
    with pytest.raises(CliError, match="no such file"):
        parse_secret_file(tmp_path / "missing")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_secret_file_never_crashes(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f"
        path.write_text(text, encoding="utf-8")
        try:
            parse_secret_file(path)
        except CliError as exc:
            assert exc.message


def test_secret_value_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("line one\nline two\n"))
    assert read_secret_value("X") == "line one"
    monkeypatch.setattr("sys.stdin", io.StringIO("-----BEGIN-----\nabc\n-----END-----\n"))
    assert read_secret_value("X", whole=True) == "-----BEGIN-----\nabc\n-----END-----"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CliError, match="no value given for X"):
        read_secret_value("X")
