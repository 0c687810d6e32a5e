"""Parsing user input given on the command line: ``--input``, ``--env K=V``, secret files."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from stigmer.cli._errors import CliError

__all__ = [
    "kind_argument",
    "parse_env",
    "parse_input",
    "parse_secret_file",
    "read_secret_value",
    "valid_name",
]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def valid_name(name: str) -> bool:
    """Variable and secret names: a letter or underscore, then letters, digits, ``_``, ``.``, ``-``."""
    return bool(_ENV_NAME.match(name))


def parse_input(text: str, flag: str = "--input") -> Any:
    """``--input`` (or ``flag``): inline JSON, or ``@path`` to a JSON (or YAML, by suffix) file."""
    source = flag
    if text.startswith("@"):
        path = Path(text[1:])
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CliError(f"{flag}: no such file '{path}'") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{flag}: cannot read '{path}': {exc}") from None
        if path.suffix in (".yaml", ".yml"):
            from stigmer.core import load_yaml_text

            return load_yaml_text(text, source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}; "
            'give a JSON document like \'{"name": "Ada"}\' or @file.json'
        ) from None
    except RecursionError:
        raise CliError(f"{source}: JSON nests too deeply") from None


def parse_env(pairs: list[str], option: str = "--env") -> dict[str, str]:
    """``K=V`` pairs into a dict; later pairs win."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not valid_name(key):
            raise CliError(f"{option} {pair!r}: expected NAME=VALUE with a name like MY_VAR")
        out[key] = value
    return out


def parse_secret_file(
    path: Path, option: str = "--secret-file", *, allow_empty: bool = True
) -> dict[str, str]:
    """A dotenv file of ``KEY=VALUE`` lines (``run --secret-file``, ``secret set --from-env-file``).

    Blank lines and ``#`` comments are skipped and ``export KEY=...`` is accepted. A value in
    single quotes is taken as written; in double quotes ``\\"``, ``\\\\`` and ``\\n`` are
    escapes; an unquoted value ends at `` #`` (a comment). A later line wins over an earlier one
    of the same name. Every line is checked before anything is returned; bad lines are one error
    naming the first one's line number (never its content: it may hold a value).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{option}: no such file '{path}'") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{option}: cannot read '{path}': {exc}") from None
    out: dict[str, str] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export ") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not valid_name(key):
            problems.append(f"{path}:{number}: expected KEY=VALUE with a name like GH_TOKEN")
            continue
        value, problem = _dotenv_value(rest)
        if problem:
            problems.append(f"{path}:{number}: {key}: {problem}")
        elif not value and not allow_empty:
            problems.append(f"{path}:{number}: {key} has an empty value")
        else:
            out[key] = value
    if problems:
        more = f" (and {len(problems) - 1} more bad line{'s' if len(problems) > 2 else ''})"
        raise CliError(problems[0] + (more if len(problems) > 1 else ""))
    return out


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_COMMENT = re.compile(r"\s#")


def _dotenv_value(text: str) -> tuple[str, str]:
    """(value, "") or ("", what is wrong) for the text after ``=`` on a dotenv line."""
    text = text.strip()
    if not text or text[0] not in "'\"":
        comment = _COMMENT.search(text)
        return (text[: comment.start()].rstrip() if comment else text), ""
    quote, chars, i = text[0], [], 1
    while i < len(text):
        char = text[i]
        if quote == '"' and char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            chars.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if char == quote:
            after = text[i + 1 :].strip()
            if after and not after.startswith("#"):
                return "", "unexpected text after the closing quote"
            return "".join(chars), ""
        chars.append(char)
        i += 1
    return "", "the quoted value has no closing quote (values span one line)"


def read_secret_value(name: str, *, confirm: bool = False, whole: bool = False) -> str:
    """A secret value: a hidden prompt on a terminal, else stdin (one line, or all of it if ``whole``)."""
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"value of {name}: ", stream=sys.stderr)
        if confirm and getpass.getpass(f"repeat {name}: ", stream=sys.stderr) != value:
            raise CliError(f"the two values of {name} differ; try again")
    else:
        value = sys.stdin.read() if whole else sys.stdin.readline()
        if value.endswith("\n"):
            value = value[:-1]
        if value.endswith("\r"):
            value = value[:-1]
    if not value:
        raise CliError(f"no value given for {name}")
    return value


def kind_argument(text: str, *, executions: bool = True) -> str:
    """The kind a KIND argument names (``agents`` -> ``Agent``, ``ex`` -> ``Execution``): the SDK's
    ``resolve_kind``; an unknown one suggests the closest and lists the kinds (runnable first)."""
    from stigmer.cli.output._view import cli_name
    from stigmer.core import APPLY_ORDER, EXECUTION, kind_info
    from stigmer.sdk._kinds import UnknownKind, resolve_kind

    try:
        return resolve_kind(text, executions=executions)
    except UnknownKind as exc:
        shown = sorted(
            (k for k in exc.kinds if k in APPLY_ORDER),
            key=lambda k: (not kind_info(k).runner, APPLY_ORDER[k]),
        )
        if EXECUTION in exc.kinds:
            shown.append(EXECUTION)
        names = ", ".join(cli_name(k) for k in shown)
        raise CliError(f"unknown kind '{text}'{exc.hint} (kinds: {names})") from None
