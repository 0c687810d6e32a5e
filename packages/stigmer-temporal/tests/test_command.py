"""The runner workers' shared command line, driven with a stand-in worker module."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.temporal import WorkerCommand


def _command(module: str) -> WorkerCommand:
    return WorkerCommand(
        prog="stigmer-test-runner",
        description="a test worker",
        default_queue="test-queue",
        default_concurrency=7,
        concurrency_help="things at once",
        package="stigmer-runner-test",
        worker_module=module,
    )


@pytest.fixture
def worker_module(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "fake_worker_mod.py").write_text(
        "CALLS = []\ndef run_worker(**options):\n    CALLS.append(options)\n    return 3\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield "fake_worker_mod"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fake_worker_mod", None)


def test_defaults_and_help() -> None:
    parser = _command("x").build_parser()
    args = parser.parse_args([])
    assert (args.task_queue, args.concurrency) == ("test-queue", 7)
    text = parser.format_help()
    assert "things at once (default: 7)" in text
    assert "--backend" in text and "--token-file" in text
    for option in ("--namespace", "--temporal-namespace", "--temporal-tls-ca", "--temporal-api-key-file"):
        assert option in text


def test_token_precedence_and_options_reach_the_worker(
    worker_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setenv("STIGMER_TOKEN", "from-env")
    command = _command(worker_module)
    command.main(["--backend", "grpc://h:1", "--concurrency", "2"])
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    command.main(["--token-file", str(token_file)])
    calls: list[dict[str, Any]] = sys.modules[worker_module].CALLS
    assert [(c["token"], c["endpoint"], c["max_concurrent"]) for c in calls] == [
        ("from-env", "grpc://h:1", 2),
        ("from-file", "grpc://127.0.0.1:7234", 7),
    ]
    assert exits == [3, 3]
    assert [c["temporal"].describe() for c in calls] == ["127.0.0.1:7233 (namespace default)"] * 2


def test_temporal_options_reach_the_worker(
    worker_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "_exit", lambda code: None)
    monkeypatch.setenv("STIGMER_TEMPORAL_NAMESPACE", "from-env")
    monkeypatch.setenv("STIGMER_TEMPORAL_API_KEY", "key-from-env")
    command = _command(worker_module)
    command.main(["--temporal", "t.example:7233"])
    command.main(["--namespace", "from-flag", "--temporal-tls-server-name", "t.internal"])
    calls: list[dict[str, Any]] = sys.modules[worker_module].CALLS
    first, second = (c["temporal"] for c in calls)
    assert (first.address, first.namespace, first.api_key, first.tls) == (
        "t.example:7233",
        "from-env",
        "key-from-env",
        True,
    )
    assert (second.namespace, second.server_name) == ("from-flag", "t.internal")


def test_bad_temporal_options_exit_2_with_one_line(
    worker_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    assert _command(worker_module).main(["--temporal-tls-cert", str(cert)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "stigmer-test-runner: error: --temporal-tls-cert needs --temporal-tls-key too: "
        "mutual TLS takes a client certificate and its private key\n"
    )
    assert worker_module not in sys.modules  # the worker was not even imported


def test_unreadable_token_file_and_missing_extra(
    worker_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _command(worker_module).main(["--token-file", "/nonexistent/token"]) == 1
    assert "stigmer-test-runner: cannot read the token file" in capsys.readouterr().err
    assert _command("no_such_worker_module_xyz").main([]) == 1
    assert "pip install 'stigmer-runner-test[temporal]'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_concurrency_must_be_a_positive_number(bad: str) -> None:
    with pytest.raises(SystemExit) as info:
        _command("x").build_parser().parse_args(["--concurrency", bad])
    assert info.value.code == 2


def test_the_one_execution_mode_exists_for_a_runner_command_only() -> None:
    plain = _command("x").build_parser()
    with pytest.raises(SystemExit):
        plain.parse_args(["--execution", "wex_1"])
    runner = WorkerCommand(
        prog="stigmer-test-runner",
        description="a test worker",
        default_queue="q",
        default_concurrency=1,
        concurrency_help="things",
        package="stigmer-runner-test",
        worker_module="x",
        runner="workflow",
    )
    args = runner.build_parser().parse_args(["--execution", "wex_1", "--token-file", "-", "--watch-stdin"])
    assert (args.execution, args.token_file, args.watch_stdin) == ("wex_1", "-", True)


def test_a_token_on_stdin_is_read_up_to_its_line_end_only() -> None:
    import io

    from stigmer.temporal._run_once import read_token_line

    stream = io.BytesIO(b"xtk_abc.secret\nwhat the parent writes later")
    assert read_token_line(stream) == "xtk_abc.secret"
    assert stream.read() == b"what the parent writes later"
    assert read_token_line(io.BytesIO(b"")) == ""
