"""Shell completion (typer's) sees the lazily imported command groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_STIGMER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completes_top_level_commands() -> None:
    assert _complete("stigmer exe", 1) == ["execution"]


def test_completes_inside_a_lazy_group() -> None:
    assert _complete("stigmer execution l", 2) == ["list", "logs"]
    assert _complete("stigmer secret rot", 2) == ["rotate-key"]


def test_sub_commands_do_not_repeat_completion_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "execution", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "list" in result.stdout
    assert "--install-completion" not in result.stdout


# -- names, kinds and ids from the current context ------------------------------------------------


def _complete_in(words: str, cword: int | None = None) -> tuple[list[str], str, float]:
    """Completions of ``words`` (the last word is being completed): (items, stderr, seconds)."""
    import time

    parts = words.split(" ")
    env = {
        **os.environ,
        "_STIGMER_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1 if cword is None else cword),
    }
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), result.stderr, time.monotonic() - began


@pytest.fixture
def project(cli: Callable[..., Any], home: Path, tmp_path: Path) -> list[str]:
    """A store with stigmer init's resources applied, a secret and two workflow runs; returns
    the execution ids, newest first."""
    folder = tmp_path / "proj"
    assert cli("init", str(folder)).code == 0
    assert cli("apply", "-f", str(folder)).code == 0, "apply"
    ids = []
    for _ in range(2):
        result = cli("run", "hello", "-o", "json")
        assert result.code == 0, result.err
        ids.append(json.loads(result.out)["id"])
    env = {**os.environ}
    for name in ("OPENAI_API_KEY", "GH_TOKEN"):
        done = subprocess.run(
            [sys.executable, "-m", "stigmer.cli", "secret", "set", name],
            input="a-long-value\n",
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    return ids[::-1]


def test_run_completes_workflows_and_agents(project: list[str]) -> None:
    assert sorted(_complete_in("stigmer run ")[0]) == ["hello", "helper"]
    assert _complete_in("stigmer run hel")[0] == ["hello", "helper"]
    assert _complete_in("stigmer run hello")[0] == ["hello"]
    assert _complete_in("stigmer agent execute ")[0] == ["helper"]
    assert _complete_in("stigmer workflow run ")[0] == ["hello"]


def test_get_completes_kinds_then_names_of_that_kind(project: list[str]) -> None:
    kinds = _complete_in("stigmer get ")[0]
    assert kinds[:2] == ["workflow", "agent"]
    assert {"skill", "mcpserver", "environment", "session", "execution", "all"} <= set(kinds)
    assert _complete_in("stigmer get a")[0] == ["agent", "all"]
    assert _complete_in("stigmer get agent ")[0] == ["helper"]
    assert _complete_in("stigmer get agents ")[0] == ["helper"]
    assert _complete_in("stigmer get env ")[0] == ["dev"]
    assert _complete_in("stigmer describe workflow ")[0] == ["hello"]
    assert _complete_in("stigmer delete agent ")[0] == ["helper"]
    assert "execution" not in _complete_in("stigmer delete ")[0]
    assert _complete_in("stigmer export environment ")[0] == ["dev"]
    assert _complete_in("stigmer get execution ")[0] == project
    assert _complete_in("stigmer get nosuchkind ")[0] == []


def test_execution_commands_complete_ids_newest_first(project: list[str]) -> None:
    for command in ("logs", "get", "cancel", "resume"):
        assert _complete_in(f"stigmer execution {command} ")[0] == project
    assert _complete_in("stigmer execution logs wex")[0] == project
    assert _complete_in(f"stigmer execution logs {project[1][:-2]}")[0] == [project[1]]
    assert _complete_in("stigmer execution logs aex")[0] == []
    # only executions waiting for an approval can be approved; none is
    assert _complete_in("stigmer execution approve ")[0] == []


def test_zsh_shows_what_each_execution_ran(project: list[str]) -> None:
    env = {
        **os.environ,
        "_STIGMER_COMPLETE": "complete_zsh",
        "_TYPER_COMPLETE_ARGS": "stigmer execution logs wex",
    }
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f'"{project[0]}":"workflow hello SUCCEEDED"' in result.stdout


def test_delete_does_not_offer_a_name_twice(project: list[str]) -> None:
    assert _complete_in("stigmer delete agent helper ")[0] == []
    assert _complete_in("stigmer delete environment ")[0] == ["dev"]


def test_secret_and_context_names(project: list[str], home: Path) -> None:
    assert _complete_in("stigmer secret delete ")[0] == ["GH_TOKEN", "OPENAI_API_KEY"]
    assert _complete_in("stigmer secret delete O")[0] == ["OPENAI_API_KEY"]
    (home / "config.yaml").write_text(
        "contexts:\n  - {name: team, endpoint: 'grpc://127.0.0.1:1'}\n", encoding="utf-8"
    )
    assert _complete_in("stigmer context use ")[0] == ["local", "team"]
    assert _complete_in("stigmer --context t")[0] == ["team"]
    # --context given on the command line chooses where names come from
    assert _complete_in("stigmer --context local run ")[0] == ["hello", "helper"]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung server)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"grpc://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_an_unreachable_server_gives_no_completions_quickly(home: Path, silent_server: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        "currentContext: hung\ncontexts:\n"
        f"  - {{name: hung, endpoint: '{silent_server}'}}\n"
        "  - {name: refused, endpoint: 'grpc://127.0.0.1:1'}\n",
        encoding="utf-8",
    )
    for words in (
        "stigmer run ",
        "stigmer get agent ",
        "stigmer execution logs wex",
        "stigmer secret delete ",
        "stigmer --context refused run ",
    ):
        items, err, seconds = _complete_in(words)
        assert (items, err) == ([], ""), words
        assert seconds < 10, (words, seconds)
    # context names need no server
    assert _complete_in("stigmer context use h")[0] == ["hung"]


def test_a_broken_config_gives_no_completions_and_no_traceback(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("contexts: [{endpoint: x}]\n", encoding="utf-8")
    assert _complete_in("stigmer run ")[:2] == ([], "")
    assert _complete_in("stigmer context use ")[:2] == ([], "")


@pytest.fixture
def hung_grpc_server() -> Iterator[str]:
    """A real gRPC server that accepts every call and never answers it."""
    import threading
    from concurrent import futures

    import grpc

    release = threading.Event()

    def never(request: bytes, context: grpc.ServicerContext) -> bytes:
        release.wait(30)
        return b""

    class Hang(grpc.GenericRpcHandler):
        def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return grpc.unary_unary_rpc_method_handler(never)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((Hang(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"grpc://127.0.0.1:{port}"
    release.set()
    server.stop(None)


def test_a_server_that_never_answers_gives_no_completions_after_the_deadline(
    home: Path, hung_grpc_server: str
) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        f"currentContext: hung\ncontexts:\n  - {{name: hung, endpoint: '{hung_grpc_server}'}}\n",
        encoding="utf-8",
    )
    for words in ("stigmer run ", "stigmer execution logs "):
        items, err, seconds = _complete_in(words)
        assert (items, err) == ([], ""), words
        assert 0.9 < seconds < 10, (words, seconds)  # the 1 s deadline, not a fast refusal


def test_tab_in_a_real_bash(project: list[str], tmp_path: Path) -> None:
    """The bash script `stigmer --show-completion` prints, sourced into bash on a pseudo-terminal.

    (Asked for by its instruction, `_STIGMER_COMPLETE=source_bash`: `--show-completion` finds the
    shell among its parent processes, which a test runner's may not include.)
    """
    import pexpect

    bindir = Path(sys.executable).parent
    script = subprocess.run(
        [str(bindir / "stigmer")],
        env={**os.environ, "_STIGMER_COMPLETE": "source_bash"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0, script.stderr
    rc = tmp_path / "bashrc"
    rc.write_text(script.stdout + "\nPS1='$ '\nbind 'set show-all-if-ambiguous on'\n", encoding="utf-8")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "TERM": "dumb"}
    shell = pexpect.spawn(
        "bash",
        ["--rcfile", str(rc), "--noprofile", "-i"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        shell.expect_exact("$ ")
        shell.send("stigmer run hel\t")
        shell.expect(r"hello\s+helper")  # both offered
        shell.send("p\t")
        shell.expect_exact("stigmer run helper ")  # the unique one filled in
        shell.sendcontrol("c")
        shell.expect_exact("$ ")
        shell.send("stigmer execution logs wex\t")
        shell.expect_exact("wex_")  # the ids' common prefix is filled in first
        shell.send("\t")
        seen = {shell.expect_exact(project), shell.expect_exact(project)}  # bash sorts the list itself
        assert seen == {0, 1}
    finally:
        shell.close(force=True)
