"""Two `stigmer server` processes on one PostgreSQL database, behind one address (issue 24).

Each server has its own ``$STIGMER_HOME`` (its own admin token and server id) and the same master
key; the tests shorten the servers' lease on the executions they run to a few seconds
(``STIGMER_SERVER_LEASE_SECONDS``) so that a take-over happens within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from stigmer.backend.cloud import CloudBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2, workflow_pb2
from stigmer.server import ServerProcess, TokenStore
from stigmer.testing import HttpWorld, Request, Response, json_response, postgres_schema

pytestmark = pytest.mark.postgres

P = execution_pb2
StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
LEASE_SECONDS = 3
MASTER_KEY = base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, empty schema of its own for each test (the servers start on an empty database)."""
    with postgres_schema() as url:
        yield url


def pair_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(STIGMER_SERVER_LEASE_SECONDS=str(LEASE_SECONDS), STIGMER_MASTER_KEY=MASTER_KEY)
    return env


def servers(
    database: str, base: Path, names: tuple[str, ...] = ("a", "b"), *args: str
) -> list[ServerProcess]:
    return [
        ServerProcess(home=base / name, database_url=database, args=list(args), env=pair_env())
        for name in names
    ]


def start_together(group: list[ServerProcess]) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(len(group)) as pool:
        return list(pool.map(lambda s: s.start(), group))


def test_two_servers_started_together_on_a_fresh_database_both_come_up(database: str, tmp_path: Path) -> None:
    group = servers(database, tmp_path, ("a", "b", "c"), "--no-run-executions")
    try:
        started = start_together(group)
        assert len(set(started)) == len(group)
        for server in group:
            assert server.running()
            assert (server.home / "tokens" / "admin").is_file()
            assert "revoke it first" not in server.log_path.read_text()
        # Every admin token works on every server: tokens live in the shared database.
        store = TokenStore(database_url=database)
        admins = [t for t in store.list() if t.role == "admin" and not t.revoked]
        store.close()
        assert len(admins) == len(group) and [t.name for t in admins].count("admin") == 1
        # The schema was migrated once: each version recorded once, whoever migrated it.
        import sqlalchemy as sa

        engine = sa.create_engine(database)
        with engine.connect() as conn:
            versions = [row[0] for row in conn.execute(sa.text("SELECT version FROM schema_version"))]
        engine.dispose()
        assert sorted(versions) == list(range(1, max(versions) + 1))

        async def check() -> None:
            for server in group:
                token = (server.home / "tokens" / "admin").read_text().strip()
                for other in group:
                    client = CloudBackend(other.endpoint, token=token)
                    await client.list(svc.ListRequest(kind="Workflow"))
                    await client.close()

        asyncio.run(check())
    finally:
        for server in group:
            server.stop()


# -- take-over of a run hosted by a server that is killed ---------------------------------------


class Steps(HttpWorld):
    """``GET /step/N`` answers ``{"n": N}`` after ``delay`` seconds; every request is counted."""

    delay = 0.8

    def handle(self, request: Request) -> Response:
        time.sleep(self.delay)
        return json_response({"n": int(request.path.rsplit("/", 1)[1])})


def stepped_workflow(name: str, url: str, steps: int) -> resource_pb2.Resource:
    flow = resource_pb2.Resource(
        workflow=workflow_pb2.Workflow(
            api_version="stigmer.ai/v1", kind="Workflow", metadata=meta_pb2.Metadata(name=name)
        )
    )
    flow.workflow.spec.update(
        {
            "document": {"dsl": "1.0.0", "namespace": "test", "name": name, "version": "1.0.0"},
            "do": [
                {
                    f"step{i}": {
                        "call": "http",
                        "with": {"method": "get", "endpoint": f"{url}/step/{i}"},
                        "export": {"as": f'${{ $context + {{"s{i}": .n}} }}'},
                    }
                }
                for i in range(1, steps + 1)
            ]
            + [{"done": {"set": {"total": "${ [$context[]] | add }"}}}],
        }
    )
    return flow


def user_token(database: str, name: str) -> str:
    store = TokenStore(database_url=database)
    token = store.create("user", name).token
    store.close()
    return token


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


async def test_a_run_of_a_killed_server_is_finished_by_the_other_from_its_checkpoint(
    database: str, tmp_path: Path
) -> None:
    a, b = servers(database, tmp_path)
    await asyncio.to_thread(start_together, [a, b])
    token = user_token(database, "pair-user")
    on_a = CloudBackend(a.endpoint, token=token)
    try:
        with Steps() as world:
            await on_a.apply(svc.ApplyRequest(resource=stepped_workflow("steps", world.url, 5)))
            created = await on_a.create_execution(
                svc.CreateExecutionRequest(
                    spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="steps"))
                )
            )
            execution_id = created.metadata.id
            # Steps 1 and 2 are finished (and checkpointed) once step 3 is called: kill A then.
            await wait_for(lambda: world.count("/step/3") == 1, 60, "step 3 to be called")
            first = await on_a.get_execution(svc.GetExecutionRequest(id=execution_id))
            await asyncio.to_thread(a.kill)
            killed_at = time.monotonic()

            on_b = CloudBackend(b.endpoint, token=token)
            events = [
                e async for e in on_b.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))
            ]
            took = time.monotonic() - killed_at
            done = await on_b.get_execution(svc.GetExecutionRequest(id=execution_id))
            await on_b.close()
            assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
            assert json_format.MessageToDict(done.status.output) == {"total": 15}
            # No finished call was made again; the one in flight at the kill may have been.
            assert [world.count(f"/step/{i}") for i in (1, 2, 4, 5)] == [1, 1, 1, 1]
            assert world.count("/step/3") in (1, 2)
        assert done.status.runner != first.status.runner
        assert [e.sequence for e in events] == list(range(1, done.status.last_sequence + 1))
        log = b.log_path.read_text()
        assert f"taking over execution {execution_id} from server srv_" in log
        assert (a.home / "server.id").read_text().strip() in log
        # The lease (3 s), a heartbeat (1 s), the runner's start and three steps of 0.8 s.
        assert took < LEASE_SECONDS + 1 + 15, took
    finally:
        await on_a.close()
        a.stop()
        b.stop()


# -- a context with both addresses, while one server is killed and restarted --------------------

ROOT = Path(__file__).resolve().parent.parent


def ticking_workflow(ticks: int) -> str:
    steps = "\n".join(
        f"    - tick{i}: {{set: {{n: {i}}}}}\n    - pause{i}: {{wait: {{milliseconds: 300}}}}"
        for i in range(ticks)
    )
    return (
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: ticks}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: test, name: ticks, version: 1.0.0}\n"
        f"  do:\n{steps}\n"
    )


def test_a_context_with_both_addresses_keeps_working_while_one_server_is_killed_and_restarted(
    database: str, tmp_path: Path, stigmer: StigmerCli, stigmer_env: dict[str, str]
) -> None:
    a, b = servers(database, tmp_path)
    start_together([a, b])
    watch: subprocess.Popen[str] | None = None
    stop = threading.Event()
    results: list[tuple[tuple[str, ...], int, str]] = []
    try:
        token = user_token(database, "pair-cli")
        both = f"{a.endpoint},{b.endpoint}"
        login = stigmer("login", "--endpoint", both, "--token", token, "--name", "pair")
        assert login.returncode == 0, login.stderr
        manifest = tmp_path / "ticks.yaml"
        manifest.write_text(ticking_workflow(24))
        for path in (str(manifest), str(ROOT / "examples" / "hello.yaml")):
            applied = stigmer("apply", "-f", path)
            assert applied.returncode == 0, applied.stderr
        started = stigmer("run", "ticks", "--detach", "-o", "json")
        assert started.returncode == 0, started.stderr
        execution_id = json.loads(started.stdout)["id"]
        watch = subprocess.Popen(
            [sys.executable, "-m", "stigmer.cli", "execution", "logs", "-f", execution_id, "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=stigmer_env,
        )

        def keep_asking() -> None:
            commands = (
                ("get", "workflow", "ticks", "-o", "json"),
                ("execution", "get", execution_id, "-o", "json"),
                ("execution", "list", "-o", "json"),
            )
            while not stop.is_set():
                for command in commands:
                    done = stigmer(*command)
                    results.append((command, done.returncode, done.stderr))

        asker = threading.Thread(target=keep_asking, daemon=True)
        asker.start()
        # Kill the server that runs the execution (the other takes it over), then restart it.
        wait_until(
            lambda: f"running execution {execution_id}" in a.log_path.read_text() + b.log_path.read_text()
        )
        host, other = (a, b) if f"running execution {execution_id}" in a.log_path.read_text() else (b, a)
        time.sleep(1.0)
        host.kill()
        ran = stigmer("run", "hello", "--input", '{"name": "pair"}', "-o", "json")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["output"] == {"greeting": "Hello, pair!"}
        # The other server takes the run over (its lease expires), then the killed one comes back.
        wait_until(lambda: f"taking over execution {execution_id}" in other.log_path.read_text())
        host.start()
        ran = stigmer("run", "hello", "--input", '{"name": "again"}', "-o", "json")
        assert ran.returncode == 0, ran.stderr
        out, err = watch.communicate(timeout=120)
        assert watch.returncode == 0, err
        stop.set()
        asker.join(120)

        final = json.loads(stigmer("execution", "get", execution_id, "-o", "json").stdout)
        assert final["phase"] == "SUCCEEDED", final
        sequences = [json.loads(line)["sequence"] for line in out.splitlines() if line.strip()]
        assert sequences == list(range(1, sequences[-1] + 1))  # nothing lost, nothing twice
        assert len(results) >= 6
        assert [r for r in results if r[1] != 0] == []
    finally:
        stop.set()
        if watch is not None and watch.poll() is None:
            watch.kill()
        a.stop()
        b.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s")
        time.sleep(0.05)


@pytest.mark.parametrize("first_host", ["127.0.0.1", "localhost"])
async def test_several_servers_with_tls_and_a_token(
    database: str, tmp_path: Path, tls_files: tuple[Path, Path], first_host: str
) -> None:
    from stigmer.core import Unauthenticated

    cert, key = tls_files
    group = servers(
        database, tmp_path, ("a", "b"), "--no-run-executions", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    await asyncio.to_thread(start_together, group)
    try:
        token = user_token(database, "tls-user")
        ports = [server.address.rsplit(":", 1)[1] for server in group if server.address]
        endpoint = f"grpcs://{first_host}:{ports[0]},grpcs://127.0.0.1:{ports[1]}"
        client = CloudBackend(endpoint, token=token, tls_ca=cert)
        for _ in range(6):
            assert list((await client.list(svc.ListRequest(kind="Workflow"))).resources) == []
        await client.close()
        refused = CloudBackend(endpoint, token=token + "x", tls_ca=cert)
        with pytest.raises(Unauthenticated):
            await refused.list(svc.ListRequest(kind="Workflow"))
        await refused.close()
        # Without the CA, the servers' certificates are not trusted: one clear error, no call made.
        untrusted = CloudBackend(endpoint, token=token, timeout=3, retries=0)
        with pytest.raises(Exception, match="any Stigmer server of grpcs://"):
            await untrusted.list(svc.ListRequest(kind="Workflow"))
        await untrusted.close()
    finally:
        for server in group:
            server.stop()


async def test_a_server_that_lost_a_lease_stops_its_copy_of_the_run(database: str, tmp_path: Path) -> None:
    """A server that did not renew a lease in time (here: another holder is written into it) stops
    its run of that execution without failing it; the run is finished by whoever holds it — here
    the same server, once the other holder's lease expires in turn."""
    import sqlalchemy as sa

    (a,) = servers(database, tmp_path, ("a",))
    await asyncio.to_thread(a.start)
    token = user_token(database, "lease-user")
    client = CloudBackend(a.endpoint, token=token)
    engine = sa.create_engine(database)
    try:
        with Steps() as world:
            await client.apply(svc.ApplyRequest(resource=stepped_workflow("lost", world.url, 6)))
            created = await client.create_execution(
                svc.CreateExecutionRequest(
                    spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="lost"))
                )
            )
            execution_id = created.metadata.id
            await wait_for(lambda: world.count("/step/2") == 1, 60, "step 2 to be called")
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE execution_leases SET holder = 'srv_elsewhere', renewed_at = :now "
                        "WHERE execution_id = :id"
                    ),
                    {"now": time.time_ns() // 1000, "id": execution_id},
                )
            await wait_for(
                lambda: "was taken over by another server" in a.log_path.read_text(), 30, "the loss"
            )
            paused = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
            assert paused.status.phase == P.PHASE_RUNNING, paused.status  # stopped here, not failed
            events = [
                e async for e in client.watch_execution(svc.WatchExecutionRequest(execution_id=execution_id))
            ]
            done = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
            assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
            assert json_format.MessageToDict(done.status.output) == {"total": 21}
            assert all(1 <= world.count(f"/step/{i}") <= 2 for i in range(1, 7))
            assert world.count("/step/1") == 1
        assert f"taking over execution {execution_id} from server srv_elsewhere" in a.log_path.read_text()
        assert [e.sequence for e in events] == list(range(1, done.status.last_sequence + 1))
    finally:
        engine.dispose()
        await client.close()
        a.stop()


def test_a_runner_given_both_addresses_runs_an_execution_of_the_pair(database: str, tmp_path: Path) -> None:
    """The workers' --endpoint takes several servers too (here a one-shot run, `--execution ID`)."""
    from stigmer.server._process import find_script

    group = servers(database, tmp_path, ("a", "b"), "--no-run-executions")
    start_together(group)
    try:
        store = TokenStore(database_url=database)
        runner_token = store.create("runner", "pair-runner").token
        store.close()
        token_file = tmp_path / "runner.token"
        token_file.write_text(runner_token + "\n")
        token = user_token(database, "pair-starter")
        both = f"{group[0].endpoint},{group[1].endpoint}"
        runner = find_script("stigmer-workflow-runner")
        assert runner is not None
        with Steps() as world:

            async def create() -> str:
                client = CloudBackend(both, token=token)
                await client.apply(svc.ApplyRequest(resource=stepped_workflow("worked", world.url, 2)))
                created = await client.create_execution(
                    svc.CreateExecutionRequest(
                        spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="worked"))
                    )
                )
                await client.close()
                return str(created.metadata.id)

            execution_id = asyncio.run(create())
            done = subprocess.run(
                [runner, "--execution", execution_id, "--endpoint", both, "--token-file", str(token_file)],
                capture_output=True,
                text=True,
                timeout=120,
                env={k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")},
            )
            assert done.returncode == 0, done.stderr
            assert [world.count("/step/1"), world.count("/step/2")] == [1, 1]

        async def result() -> execution_pb2.Execution:
            client = CloudBackend(f"{group[1].endpoint},{group[0].endpoint}", token=token)
            found = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
            await client.close()
            return found

        final = asyncio.run(result())
        assert final.status.phase == P.PHASE_SUCCEEDED, final.status.error
    finally:
        for server in group:
            server.stop()
