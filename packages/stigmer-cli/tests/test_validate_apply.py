"""`stigmer apply` (also `--dry-run`) refuses a broken workflow with a located error before
storing anything; `stigmer validate` checks manifests without a backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Result

HEAD = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  document: {{dsl: 1.0.0, namespace: t, name: {name}, version: 1.0.0}}
"""
# Each broken document of issue 17 (item 6), the line and field of its problem, and the message.
BROKEN = {
    "typo": (
        "  do:\n    - greet:\n        sett: {hello: world}\n",
        "7: spec.do[0].greet: the task has no type",
        "did you mean 'set' for 'sett'?",
    ),
    "badjq": (
        "  do:\n    - greet:\n        set:\n          hello: '${ .name + }'\n",
        "9: spec.do[0].greet.set.hello: invalid jq expression",
        "syntax error",
    ),
    "secret": (
        "  do:\n    - greet:\n        set:\n          token: '${ $secrets.GH_TOKEN }'\n",
        "9: spec.do[0].greet.set.token: secret(s) GH_TOKEN used but not declared in use.secrets",
        "",
    ),
    "agent": (
        "  do:\n    - ask:\n        call: agent\n        with:\n          agent: nobody\n          message: hi\n",
        "10: spec.do[0].ask.with.agent: agent 'nobody' does not exist",
        "neither stored nor among the resources applied",
    ),
}
GOOD = HEAD.format(name="good") + "  do:\n    - a: {set: {x: 1}}\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("dry_run", [False, True], ids=["apply", "dry-run"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_apply_refuses_each_broken_document_with_a_located_error(
    cli: Callable[..., Result], tmp_path: Path, case: str, dry_run: bool
) -> None:
    body, located, detail = BROKEN[case]
    path = write(tmp_path, f"{case}.yaml", HEAD.format(name=case) + body)
    result = cli("apply", "-f", str(path), *(["--dry-run"] if dry_run else []))
    assert result.code == 1, result
    assert result.err.startswith(f"error: {path}:{located}"), result.err
    assert detail in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert cli("get", "workflows", "-o", "json").out.strip() in ("[]", "")


def test_a_folder_with_one_broken_document_stores_nothing(cli: Callable[..., Result], tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder, "a-good.yaml", GOOD)
    write(folder, "b-bad.yaml", HEAD.format(name="bad") + BROKEN["badjq"][0])
    result = cli("apply", "-f", str(folder))
    assert result.code == 1
    assert "b-bad.yaml:9: spec.do[0].greet.set.hello: invalid jq expression" in result.err
    assert "good" not in cli("get", "workflows").out


def test_an_agent_in_the_same_batch_or_the_backend_satisfies_call_agent(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    agent = "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: nobody}\nspec: {instructions: hi}\n"
    workflow = HEAD.format(name="agent") + BROKEN["agent"][0]
    both = write(tmp_path, "both.yaml", workflow + "---\n" + agent)
    assert cli("apply", "-f", str(both)).code == 0
    alone = write(tmp_path, "alone.yaml", workflow.replace("message: hi", "message: again"))
    result = cli("apply", "-f", str(alone))
    assert result.code == 0, result.err
    assert "workflow/agent updated" in result.out


def test_duplicate_task_names_apply_with_a_warning(cli: Callable[..., Result], tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.yaml",
        HEAD.format(name="dup") + "  do:\n    - a: {set: {x: 1}}\n    - a: {set: {x: 2}}\n",
    )
    result = cli("apply", "-f", str(path))
    assert result.code == 0, result.err
    assert result.err.startswith(f"warning: {path}:8: spec.do[1].a: task name 'a' is used twice")
    assert "workflow/dup created" in result.out


def test_validate_reports_one_line_per_problem_and_exits_1(
    cli: Callable[..., Result], tmp_path: Path, home: Path
) -> None:
    stream = "---\n".join(HEAD.format(name=name) + body for name, (body, _, _) in sorted(BROKEN.items()))
    path = write(tmp_path, "all.yaml", stream)
    result = cli("validate", "-f", str(path))
    assert result.code == 1
    lines = result.out.strip().splitlines()
    assert len(lines) == 4
    assert "agent 'nobody' is not among the given manifests" in result.out
    assert "looked up in the given manifests only" in result.out
    assert not home.exists()  # no backend: nothing was created
    data = json.loads(cli("validate", "-f", str(path), "-o", "json").out)
    assert [(p["name"], p["severity"]) for p in data] == [
        ("agent", "error"),
        ("badjq", "error"),
        ("secret", "error"),
        ("typo", "error"),
    ]
    assert {"file", "line", "path", "message", "kind"} <= set(data[0])


def test_validate_passes_every_example(cli: Callable[..., Result]) -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    result = cli("validate", "-f", str(examples))
    assert result.code == 0, result.out
    assert result.out.startswith("valid: ")
    assert "looked up in these files only" in result.out


def test_apply_refuses_what_the_runner_cannot_run_saying_so(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "box.yaml",
        HEAD.format(name="box") + "  do:\n    - box:\n        run:\n          container: {image: alpine}\n",
    )
    result = cli("apply", "-f", str(path))
    assert result.code == 1
    assert result.err.startswith(f"error: {path}:7: spec.do[0].box: run: container is not supported")
    assert "README" in result.err
    assert cli("validate", "-f", str(path)).code == 1


@pytest.mark.parametrize(
    ("policy", "located", "says"),
    [
        (
            "oauth2: {authority: 'http://idp', grant: authorization_code, client: {id: c}}",
            "14: spec.do[0].fetch.with.endpoint.authentication.oauth2.grant",
            "grant 'authorization_code' is not supported: it needs a person to sign in at a browser",
        ),
        (
            "digest: {username: u, password: p}",
            "14: spec.do[0].fetch.with.endpoint.authentication.digest",
            "digest authentication is not supported: the runner does not answer HTTP Digest challenges",
        ),
        (
            "oauth2: {authority: 'http://idp', grant: password, username: u, client: {id: c}}",
            "14: spec.do[0].fetch.with.endpoint.authentication.oauth2",
            "grant password needs username and password",
        ),
    ],
)
def test_apply_refuses_authentication_the_runner_cannot_carry_out(
    cli: Callable[..., Result], tmp_path: Path, policy: str, located: str, says: str
) -> None:
    body = (
        "  do:\n    - fetch:\n        call: http\n        with:\n          method: get\n"
        "          endpoint:\n            uri: http://api/x\n            authentication:\n"
        f"              {policy}\n"
    )
    path = write(tmp_path, "auth.yaml", HEAD.format(name="auth") + body)
    result = cli("apply", "-f", str(path))
    assert result.code == 1
    assert result.err.startswith(f"error: {path}:{located}: {says}"), result.err
    assert cli("validate", "-f", str(path)).code == 1
