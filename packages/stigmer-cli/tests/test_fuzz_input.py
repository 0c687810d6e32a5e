"""Bad user input gives a one-line error (or usage error), never a traceback or a hang."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.cli._app import main
from stigmer.cli._options import OPTIONS

_YAMLISH = st.text(
    alphabet=st.sampled_from(list("abcdefgkmnprstvw:-[]{}'\"#&*!|>%@`, \n\t0123456789.")), max_size=120
)
_MANIFESTISH = st.builds(
    lambda kind, body: f"apiVersion: stigmer.ai/v1\nkind: {kind}\nmetadata: {{name: x}}\n{body}",
    st.sampled_from(["Agent", "Workflow", "Skill", "Agnet", "", "McpServer"]),
    _YAMLISH,
)


@contextlib.contextmanager
def _home(tmp: str) -> Iterator[None]:
    saved = os.environ.get("STIGMER_HOME")
    os.environ["STIGMER_HOME"] = str(Path(tmp) / "home")
    try:
        yield None
    finally:
        if saved is None:
            os.environ.pop("STIGMER_HOME", None)
        else:
            os.environ["STIGMER_HOME"] = saved


def _run(args: list[str], out: io.StringIO | None = None) -> tuple[int, str]:
    OPTIONS.debug = False
    OPTIONS.context = ""
    err = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out or io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_YAMLISH, _MANIFESTISH))
def test_apply_of_arbitrary_text_is_a_clear_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp, _home(tmp):
        path = Path(tmp) / "m.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _run(["apply", "-f", str(path), "--dry-run"])
    assert "Traceback" not in err
    if code != 0:
        assert code == 1, err
        # one line per problem (a workflow's validation can find several), warnings aside
        lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
        assert lines and all(line.startswith("error: ") for line in lines), err
        assert not any(line.startswith("error: unexpected ") for line in lines), err


_WORKFLOWISH = st.builds(
    lambda tasks: (
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: x}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: x, version: 1.0.0}\n  do:\n" + tasks
    ),
    _YAMLISH,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_YAMLISH, _MANIFESTISH, _WORKFLOWISH))
def test_validate_of_arbitrary_text_is_one_line_per_problem(text: str) -> None:
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, _home(tmp):
        path = Path(tmp) / "m.yaml"
        path.write_text(text, encoding="utf-8")
        code, err = _run(["validate", "-f", str(path)], out)
        assert not (Path(tmp) / "home").exists()  # no backend was opened
    assert "Traceback" not in err + out.getvalue()
    assert code in (0, 1), err
    if code == 0:
        assert out.getvalue().splitlines()[-1].startswith("valid: ")
    else:
        lines = [*err.strip().splitlines(), *out.getvalue().strip().splitlines()]
        assert lines and not any(line.startswith("error: unexpected ") for line in lines), lines


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=4))
def test_arbitrary_arguments_never_crash(args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, _home(tmp):
        code, err = _run(["get", *args])
    assert "Traceback" not in err
    assert code in (0, 1, 2), err
    if code == 1:
        assert err.startswith("error: ") and not err.startswith("error: unexpected "), err
