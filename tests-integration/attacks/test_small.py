"""The small attacks of the shared-server review, replayed through the real ``stigmer`` command
and a real ``stigmer server``: colliding names, a skill's symlinked key, file modes, a wrong
master key, run-time secrets left behind, the admin token sent to another loopback port, and two
MCP servers offering one tool name. Each asserts the attack failed and nothing leaked.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.testing import MCP_SERVER, ScriptedLLM, call, free_port, text

from .conftest import SharedServer, StigmerCli, find_leaks

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  document: {{dsl: 1.0.0, namespace: attacks, name: wf, version: 1.0.0}}
  do:
    - greet:
        set: {{greeting: {greeting}}}
"""


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line of a refused command (exit 1, no traceback)."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _greeting(stigmer: StigmerCli, name: str) -> str:
    got = stigmer("get", "workflow", name, "-o", "json")
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    item = data[0] if isinstance(data, list) else data
    assert item["metadata"]["name"] == name
    return str(item["spec"]["do"][0]["greet"]["set"]["greeting"])


# ------------------------------------------------------------------------------- colliding names


def test_a_name_sharing_a_slug_does_not_replace_its_owner(stigmer: StigmerCli, tmp_path: Path) -> None:
    stem = "quarterly-revenue-reconciliation-pipeline-for-the-emea-region-eu"  # 64 characters
    assert len(stem) > 63
    pairs = [(f"{stem}-staging", f"{stem}-production"), ("wf", "ｗｆ"), ("wf", "WF")]
    for owner, intruder in pairs:
        path = tmp_path / "owner.yaml"
        path.write_text(WORKFLOW.format(name=json.dumps(owner), greeting="owner"))
        assert stigmer("apply", "-f", str(path)).returncode == 0
        path = tmp_path / "intruder.yaml"
        path.write_text(WORKFLOW.format(name=json.dumps(intruder), greeting="intruder"))
        line = _error_line(stigmer("apply", "-f", str(path)))
        assert repr(owner) in line and "slug" in line
        assert _greeting(stigmer, owner) == "owner"
    # Re-applying the same name still updates it.
    path.write_text(WORKFLOW.format(name="wf", greeting="again"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    assert _greeting(stigmer, "wf") == "again"


# ------------------------------------------------------------------------- a skill's symlinked key


def test_a_skill_cannot_pack_a_linked_key(stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path) -> None:
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    secret_file = tmp_path / "id_ed25519"
    secret_file.write_text(key)
    skill = tmp_path / "skills" / "faq"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("# FAQ\nAnswer briefly.\n")
    (skill / "notes.md").symlink_to(secret_file)
    manifest = tmp_path / "skill.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: faq}\nspec: {path: ./skills/faq}\n"
    )
    line = _error_line(stigmer("apply", "-f", str(manifest)))
    assert "'notes.md'" in line and "outside" in line
    assert stigmer("get", "skill", "-o", "json").stdout.strip() == "[]"
    assert find_leaks(key, paths=[stigmer_home]) == []
    # The same link through `..` is refused too; a copy of the file inside the folder is fine.
    (skill / "notes.md").unlink()
    (skill / "notes.md").symlink_to("../../id_ed25519")
    assert "'notes.md'" in _error_line(stigmer("apply", "-f", str(manifest)))
    (skill / "notes.md").unlink()
    (skill / "notes.md").write_text("Opening hours: 9 to 5.\n")
    assert stigmer("apply", "-f", str(manifest)).returncode == 0
    assert find_leaks(key, paths=[stigmer_home]) == []


# ----------------------------------------------------------------------------------- file modes


def _loose(home: Path) -> list[str]:
    """Every path under ``home`` (and ``home`` itself) that is not 0700 (folder) or 0600 (file)."""
    found = []
    for path in [home, *home.rglob("*")]:
        try:
            info = path.lstat()
        except FileNotFoundError:  # a journal the store removed between the listing and the look
            continue
        if stat.S_ISLNK(info.st_mode):
            continue
        mode = stat.S_IMODE(info.st_mode)
        want = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if mode != want:
            found.append(f"{path.relative_to(home.parent)} {mode:o}")
    return found


def test_a_lite_home_is_private_after_a_run(stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path) -> None:
    stigmer_home.chmod(0o755)  # as an older version left it
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.format(name="hello", greeting="hi"))
    assert stigmer("apply", "-f", str(path)).returncode == 0
    assert stigmer("secret", "set", "TOKEN", input="a-value-of-the-token\n").returncode == 0
    run = stigmer("run", "hello", "-o", "json")
    assert run.returncode == 0, run.stderr
    names = {p.name for p in stigmer_home.rglob("*")}
    assert {"stigmer.db", "master.key"} <= names, names
    assert _loose(stigmer_home) == []
    # A home an older version left wide (0755, files 0644) is tightened on the next open.
    entries = [stigmer_home, *stigmer_home.rglob("*")]
    for path in entries:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert len(_loose(stigmer_home)) == len(entries)
    assert stigmer("get", "workflow").returncode == 0
    assert _loose(stigmer_home) == []


async def test_a_server_home_is_private(shared_server: SharedServer) -> None:
    admin = shared_server.admin()
    try:
        await admin.set_secret(svc.SetSecretRequest(name="TOKEN", value="a-value-of-the-token"))
    finally:
        await admin.close()
    home = shared_server.home
    names = {p.name for p in home.rglob("*")}
    assert {"stigmer.db", "admin", "server.log", "master.key"} <= names, names
    assert _loose(home) == []


# ------------------------------------------------------------------------------ a wrong master key


def test_a_wrong_master_key_cannot_write_secrets(stigmer: StigmerCli, stigmer_home: Path) -> None:
    assert stigmer("secret", "set", "GH_TOKEN", input="the-first-value-0123\n").returncode == 0
    wrong = {"STIGMER_MASTER_KEY": base64.b64encode(bytes(range(32))).decode()}
    line = _error_line(stigmer("secret", "set", "OTHER", input="the-other-value-4567\n", env=wrong))
    assert "does not open the secrets already stored" in line and "STIGMER_MASTER_KEY" in line
    line = _error_line(stigmer("secret", "set", "GH_TOKEN", input="an-overwrite-89ab\n", env=wrong))
    assert "does not open the secrets already stored" in line
    listed = json.loads(stigmer("secret", "list", "-o", "json").stdout)
    assert [(item["name"], item["version"]) for item in listed] == [("GH_TOKEN", 1)]
    # The store still has one key, so it can be rotated (it could not once two keys were mixed).
    rotated = stigmer("secret", "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert find_leaks("the-other-value-4567", paths=[stigmer_home]) == []


# ------------------------------------------------------------------- run-time secrets left behind

SECRET_WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  document: {{dsl: 1.0.0, namespace: attacks, name: {name}, version: 1.0.0}}
  use: {{secrets: [RUN_TOKEN]}}
  do:
    - measure:
        set: {{length: '${{ $secrets.RUN_TOKEN | length }}'}}
{extra}"""
FAIL_TASK = """\
    - fail:
        raise:
          error: {type: https://example.com/errors/stop, status: 400, title: stop here}
"""


def _execution_secrets(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "stigmer.db") as conn:
        return list(conn.execute("SELECT execution_id, name FROM execution_secrets"))


def test_run_time_secrets_are_gone_when_the_run_ends(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path
) -> None:
    value = "run-only-" + secrets.token_hex(12)
    path = tmp_path / "wf.yaml"
    path.write_text(
        SECRET_WORKFLOW.format(name="measure", extra="")
        + "---\n"
        + SECRET_WORKFLOW.format(name="measure-and-fail", extra=FAIL_TASK)
    )
    assert stigmer("apply", "-f", str(path)).returncode == 0
    secret_file = tmp_path / "run.env"
    secret_file.write_text(f"RUN_TOKEN={value}\n")
    run = stigmer("run", "measure", "--secret-file", str(secret_file), "-o", "json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["phase"] == "SUCCEEDED" and out["output"]["length"] == len(value)
    failed = stigmer("run", "measure-and-fail", "--secret-file", str(secret_file), "-o", "json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["phase"] == "FAILED"
    assert _execution_secrets(stigmer_home) == []
    texts = [run.stdout, run.stderr, failed.stdout, failed.stderr]
    assert find_leaks(value, paths=[stigmer_home], texts=texts) == []


def test_a_local_stack_home_is_private(stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path) -> None:
    stigmer_home.chmod(0o755)
    ports = ["--port", str(free_port()), "--temporal-port", str(free_port())]
    try:
        started = stigmer("local", "start", *ports, "--timeout", "90", timeout=150)
        assert started.returncode == 0, started.stderr
        path = tmp_path / "wf.yaml"
        path.write_text(WORKFLOW.format(name="hello", greeting="hi"))
        assert stigmer("apply", "-f", str(path)).returncode == 0
        run = stigmer("run", "hello", "-o", "json", timeout=120)
        assert run.returncode == 0, run.stderr
        running = _loose(stigmer_home)  # while Temporal, the server and the workers write
    finally:
        stopped = stigmer("local", "stop", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    names = {p.name for p in stigmer_home.rglob("*")}
    expected = {"temporal.db", "stigmer.db", "supervisor.log", "server.log", "temporal.log", "admin"}
    assert expected <= names, names
    assert running == [] and _loose(stigmer_home) == []


# --------------------------------------------------------- `stigmer server`: one log line per call


@contextlib.contextmanager
def _cli_server(env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """``stigmer server --listen 127.0.0.1:0`` (the CLI command) in ``env``'s home: its address and
    the lines of its stderr, complete once the block has exited (the server stopped)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "server", "--listen", "127.0.0.1:0", "--log-level", "debug"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()
    assert proc.stderr is not None
    stream = proc.stderr

    def read() -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))
            if "stigmer server listening on " in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(60), "the server did not start"
        found = [line for line in lines if "stigmer server listening on " in line]
        assert found, "\n".join(lines)
        yield found[-1].split("listening on ")[1].split()[0], lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
        stream.close()
    assert proc.returncode == 0, "\n".join(lines)


def _use_contexts(home: Path, **endpoints: str) -> None:
    """Contexts ``name: endpoint`` in ``home``'s config.yaml, with no token: like a fresh user."""
    items = ", ".join(f"{{name: {name}, endpoint: '{url}'}}" for name, url in endpoints.items())
    (home / "config.yaml").write_text(f"contexts: [{items}]\n")


def test_the_cli_server_logs_one_line_per_call_and_no_value(
    stigmer: StigmerCli, stigmer_env: dict[str, str], stigmer_home: Path, tmp_path: Path
) -> None:
    value = "log-probe-" + secrets.token_hex(12)
    with _cli_server(stigmer_env) as (address, lines):
        _use_contexts(stigmer_home, here=f"grpc://{address}")
        here = {"STIGMER_CONTEXT": "here"}
        path = tmp_path / "wf.yaml"
        path.write_text(WORKFLOW.format(name="hello", greeting="hi"))
        assert stigmer("apply", "-f", str(path), env=here).returncode == 0
        assert stigmer("secret", "set", "PROBE", input=value + "\n", env=here).returncode == 0
        assert stigmer("get", "workflow", "nope", env=here).returncode == 1
    calls = [line for line in lines if " rpc method=" in line]
    token_id = (stigmer_home / "tokens" / "admin").read_text().split(".")[0]
    for method, code in (("Apply", "OK"), ("SetSecret", "OK"), ("Get", "NOT_FOUND")):
        assert any(
            f"rpc method={method} code={code} " in line and f"token={token_id}" in line for line in calls
        ), (
            method,
            lines,
        )
    assert all(line.split()[2] == "DEBUG" and "duration_ms=" in line for line in calls), calls
    admin_token = (stigmer_home / "tokens" / "admin").read_text().strip()
    assert find_leaks(value, paths=[stigmer_home], texts=lines) == []
    assert find_leaks(admin_token, texts=lines) == []


# ----------------------------------------------------- the admin token sent to another loopback port


class _Recorder(grpc.GenericRpcHandler):
    """A gRPC server anyone could start on a free loopback port: records every call's metadata."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[tuple[str, str | bytes], ...]]] = []

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> None:
        details: Any = handler_call_details
        self.calls.append((details.method, tuple(details.invocation_metadata)))
        return None  # UNIMPLEMENTED


def test_the_admin_token_is_not_sent_to_another_loopback_port(
    stigmer: StigmerCli, stigmer_env: dict[str, str], stigmer_home: Path
) -> None:
    recorder = _Recorder()
    listener = grpc.server(concurrent.futures.ThreadPoolExecutor(2), handlers=[recorder])
    port = listener.add_insecure_port("127.0.0.1:0")
    listener.start()
    try:
        with _cli_server(stigmer_env) as (address, _lines):
            admin_token = (stigmer_home / "tokens" / "admin").read_text().strip()
            _use_contexts(
                stigmer_home,
                here=f"grpc://{address}",
                elsewhere=f"grpc://127.0.0.1:{port}",
                localhost=f"grpc://localhost:{address.rsplit(':', 1)[1]}",
            )
            # The server's own endpoint gets the token (no login needed on this machine) ...
            assert stigmer("get", "workflow", env={"STIGMER_CONTEXT": "here"}).returncode == 0
            # ... another port does not, while the server runs or after it stopped.
            assert stigmer("get", "workflow", env={"STIGMER_CONTEXT": "elsewhere"}).returncode == 1
            refused = stigmer("get", "workflow", env={"STIGMER_CONTEXT": "localhost"})
            assert refused.returncode == 1 and "login" in refused.stderr
        assert stigmer("get", "workflow", env={"STIGMER_CONTEXT": "elsewhere"}).returncode == 1
    finally:
        listener.stop(None)
    assert [method for method, _ in recorder.calls].count("/stigmer.v1.BackendService/List") == 2
    metadata = [f"{key}={value!r}" for _, items in recorder.calls for key, value in items]
    assert not any(item.startswith("authorization=") for item in metadata), metadata
    assert find_leaks(admin_token, texts=metadata) == []


async def _calls_without_a_token(endpoint: str, home: Path) -> None:
    from stigmer.backend.cloud import CloudBackend
    from stigmer.core import StigmerError

    client = CloudBackend(endpoint, home=home, retries=0)
    for _ in range(20):
        with contextlib.suppress(StigmerError):
            await client.list(svc.ListRequest(kind="Workflow"))
            raise AssertionError("a call without a token was answered")
    await client.close()


def test_the_admin_token_is_not_sent_to_a_list_of_servers_holding_the_servers_own_address(
    stigmer: StigmerCli, stigmer_env: dict[str, str], stigmer_home: Path
) -> None:
    """Issue 24: an endpoint may name several servers. One of them being the local server does not
    make the list its endpoint: the admin token of ``tokens/admin`` goes to no server of a list."""
    recorder = _Recorder()
    listener = grpc.server(concurrent.futures.ThreadPoolExecutor(2), handlers=[recorder])
    port = listener.add_insecure_port("127.0.0.1:0")
    listener.start()
    try:
        with _cli_server(stigmer_env) as (address, _lines):
            admin_token = (stigmer_home / "tokens" / "admin").read_text().strip()
            _use_contexts(
                stigmer_home,
                pair=f"grpc://{address},grpc://127.0.0.1:{port}",
                twice=f"grpc://{address},{address}",  # the same server twice is still that server
            )
            for _ in range(3):
                refused = stigmer("get", "workflow", env={"STIGMER_CONTEXT": "pair"})
                assert refused.returncode == 1
            # Many calls through one client, so round_robin surely reaches the recorder too.
            asyncio.run(_calls_without_a_token(f"grpc://{address},grpc://127.0.0.1:{port}", stigmer_home))
            assert stigmer("get", "workflow", env={"STIGMER_CONTEXT": "twice"}).returncode == 0
    finally:
        listener.stop(None)
    assert [method for method, _ in recorder.calls].count("/stigmer.v1.BackendService/List") >= 2
    metadata = [f"{key}={value!r}" for _, items in recorder.calls for key, value in items]
    assert not any(item.startswith("authorization=") for item in metadata), metadata
    assert find_leaks(admin_token, texts=metadata) == []


# ------------------------------------------------------------ two MCP servers offering one tool name


def test_two_mcp_servers_offering_one_tool_name(stigmer: StigmerCli, tmp_path: Path) -> None:
    model = ScriptedLLM(
        [
            call("first_delete_item", item="1"),
            call("second_delete_item", item="2"),
            text("Both are gone."),
        ]
    ).start()
    try:
        server = f"spec: {{stdio: {{command: {sys.executable!r}, args: [{MCP_SERVER!r}]}}}}\n"
        manifest = tmp_path / "agent.yaml"
        manifest.write_text(
            f"apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {{name: first}}\n{server}---\n"
            f"apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {{name: second}}\n{server}---\n"
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
            "spec:\n  instructions: Be brief.\n"
            f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {model.base_url!r}}}\n"
            "  mcpServers: [{name: first, tools: [delete_item]}, {name: second, tools: [delete_item]}]\n"
        )
        assert stigmer("apply", "-f", str(manifest)).returncode == 0
        run = stigmer("run", "bot", "--message", "delete 1 and 2", "-o", "json", timeout=120)
    finally:
        model.close()
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["phase"] == "SUCCEEDED"
    offered = sorted(tool["function"]["name"] for tool in model.requests[0]["tools"])
    assert offered == ["first_delete_item", "second_delete_item"]
    results = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert results == ["deleted 1", "deleted 2"]
