"""`stigmer secret import FILE` and `secret set --from-env-file FILE`: a dotenv file becomes secrets;
values are never printed, and a bad line sets nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

VALUES = {
    "API_KEY": "sk-live-4f1c9e",
    "DB_PASSWORD": "p@ss word #1",
    "QUOTED": 'say "hi"',
    "PIN": "42",
}
DOTENV = """\
# credentials for the demo
export API_KEY=sk-live-4f1c9e   # the live key

DB_PASSWORD='p@ss word #1'
QUOTED="say \\"hi\\""
PIN=42
"""
# A workflow that tells whether each secret arrived intact, without returning a value.
CHECK = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: check}
spec:
  document: {dsl: 1.0.0, namespace: default, name: check, version: 1.0.0}
  use: {secrets: [API_KEY, DB_PASSWORD, QUOTED, PIN]}
  do:
    - compare:
        set:
"""


def _check_workflow(folder: Path) -> Path:
    lines = [
        f"          {key}: '${{ $secrets.{key} == {json.dumps(value)} }}'\n" for key, value in VALUES.items()
    ]
    path = folder / "check.yaml"
    path.write_text(CHECK + "".join(lines), encoding="utf-8")
    return path


def _assert_no_value(*texts: str) -> None:
    for text in texts:
        for value in VALUES.values():
            if len(value) >= 3:  # "42" is shorter than any word worth hiding and appears in dates
                assert value not in text


@pytest.mark.parametrize("command", [["secret", "import"], ["secret", "set", "--from-env-file"]])
def test_a_dotenv_file_becomes_secrets(cli: Callable[..., Any], tmp_path: Path, command: list[str]) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(DOTENV, encoding="utf-8")
    result = cli(*command, str(env_file))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [f"secret/{key} created" for key in VALUES]
    assert "PIN is shorter than 3 characters" in result.err  # the short-value warning, per value
    _assert_no_value(result.out, result.err)

    again = cli(*command, str(env_file), "-o", "json")
    assert again.code == 0, again.err
    assert [(s["name"], s["version"], s["created"]) for s in json.loads(again.out)] == [
        (key, 2, False) for key in VALUES
    ]
    _assert_no_value(again.out, again.err)
    assert cli(*command, str(env_file)).out.splitlines()[0] == "secret/API_KEY updated (version 3)"

    # each value arrived as written: comments, export, quotes and escapes handled
    assert cli("apply", "-f", str(_check_workflow(tmp_path))).code == 0
    run = cli("run", "check", "-o", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["output"] == dict.fromkeys(VALUES, True)


def test_a_bad_line_sets_nothing(cli: Callable[..., Any], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        'API_KEY=sk-live-4f1c9e\nDB_PASSWORD sk-live-4f1c9e\nQUOTED="unterminated sk-live-4f1c9e\n',
        encoding="utf-8",
    )
    result = cli("secret", "import", str(env_file))
    assert result.code == 1
    assert result.err.strip() == (
        f"error: {env_file}:2: expected KEY=VALUE with a name like GH_TOKEN (and 1 more bad line)"
    )
    assert "sk-live" not in result.out + result.err
    assert cli("secret", "list", "-o", "json").out.strip() == "[]"

    env_file.write_text('API_KEY=ok-value\nQUOTED="unterminated sk-live-4f1c9e\n', encoding="utf-8")
    result = cli("secret", "set", "--from-env-file", str(env_file))
    assert result.code == 1
    assert f"{env_file}:2: QUOTED: the quoted value has no closing quote" in result.err
    assert "sk-live" not in result.out + result.err
    env_file.write_text("API_KEY=ok-value\nEMPTY=\n", encoding="utf-8")
    assert f"{env_file}:2: EMPTY has an empty value" in cli("secret", "import", str(env_file)).err
    assert cli("secret", "list", "-o", "json").out.strip() == "[]"


def test_name_and_file_are_exclusive(cli: Callable[..., Any], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("A=value\n", encoding="utf-8")
    both = cli("secret", "set", "A", "--from-env-file", str(env_file))
    assert (both.code, both.err.strip()) == (2, "error: give either NAME or --from-env-file FILE, not both")
    neither = cli("secret", "set")
    assert neither.code == 2
    assert "--from-env-file" in neither.err
    missing = cli("secret", "import", str(tmp_path / "nope.env"))
    assert (missing.code, missing.err.strip()) == (
        1,
        f"error: secret import: no such file '{tmp_path / 'nope.env'}'",
    )
    (tmp_path / "empty.env").write_text("# nothing\n", encoding="utf-8")
    assert "holds no KEY=VALUE lines" in cli("secret", "import", str(tmp_path / "empty.env")).err
