"""Reaching Temporal in another namespace, over TLS and mutual TLS, and with an API key.

A real Temporal dev server runs with an extra namespace. It has no TLS, so TLS is a real
TLS-terminating TCP proxy in front of it (Python ``ssl``, ALPN ``h2``, certificates from a CA made
here with ``cryptography``); the mutual-TLS proxy refuses clients without a certificate of that CA.
A real ``stigmer server`` (``stigmer-server``) and a real ``stigmer-workflow-runner`` connect through
it with the ``--temporal-*`` options (or their ``STIGMER_TEMPORAL_*`` variables) and run a workflow
to success. API keys: a real gRPC server over TLS standing in for the Temporal frontend records
the ``authorization`` header the worker sends (it does not check what Temporal Cloud would).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import json_format
from stigmer.backend.cloud import CloudBackend
from stigmer.core import load_manifests
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2
from stigmer.server import ServerProcess, server_script
from stigmer.testing import TemporalServers, free_port, temporal_binary, wait_for

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "stigmer-connect"
SERVER_NAME = "temporal.test"  # the only name in the proxy's certificate
P = execution_pb2

pytestmark = pytest.mark.timeout(240)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------------ certificates
@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _make_pki(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("stigmer test CA")
    _other_key, other_cert = ca("another CA")

    def leaf(common_name: str, usage: Any, sans: list[x509.GeneralName]) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    server_cert, server_key = leaf(SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH, [x509.DNSName(SERVER_NAME)])
    client_cert, client_key = leaf("stigmer worker", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    files = {
        "ca": ca_cert.public_bytes(serialization.Encoding.PEM),
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
        "other_ca": other_cert.public_bytes(serialization.Encoding.PEM),
    }
    paths = {}
    for key_name, data in files.items():
        path = directory / f"{key_name}.pem"
        path.write_bytes(data)
        path.chmod(0o600)
        paths[key_name] = path
    return Pki(**paths)


# ------------------------------------------------------------------------------ TLS proxy
class TlsProxy:
    """A TLS-terminating TCP proxy (ALPN h2) on 127.0.0.1 in front of a plaintext port."""

    def __init__(self, pki: Pki, upstream: int, *, require_client_cert: bool) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        context.set_alpn_protocols(["h2"])
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(pki.ca))
        self.context = context
        self.upstream = upstream
        self.handshakes = 0  # connections that completed the TLS handshake
        self.client_certs: list[str] = []  # subjects of the client certificates presented
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self._ready.wait(10), "the TLS proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(lambda _loop, _ctx: None)  # refused handshakes are expected
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.context)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        peer = writer.get_extra_info("peercert")
        if peer:
            self.client_certs.append(str(peer.get("subject")))
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ------------------------------------------------------------------------------ processes
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def temporal(temporal_servers: TemporalServers) -> int:
    """A Temporal dev server with the extra namespace (shared by the session); its frontend port."""
    return temporal_servers(namespaces=[NAMESPACE]).port


@pytest.fixture
def tls_proxy(pki: Pki, temporal: int) -> Iterator[TlsProxy]:
    proxy = TlsProxy(pki, temporal, require_client_cert=False)
    yield proxy
    proxy.close()


@pytest.fixture
def mtls_proxy(pki: Pki, temporal: int) -> Iterator[TlsProxy]:
    proxy = TlsProxy(pki, temporal, require_client_cert=True)
    yield proxy
    proxy.close()


def worker_argv(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "stigmer-workflow-runner"), *args]


def clean_env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """A ``stigmer-workflow-runner`` process, its output in a file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_polling(self) -> None:
        wait_for(lambda: "polling" in self.output() or self.process.poll() is not None, 60, "the worker")
        assert self.process.poll() is None, self.output()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


class CliServer:
    """``stigmer server`` (the CLI command) in a process, on a free port; stops like ``ServerProcess``."""

    def __init__(self, home: Path, *args: str, env: dict[str, str]) -> None:
        self.home = home
        self.address = f"127.0.0.1:{free_port()}"
        self.log_path = home / "cli-server.log"
        self.argv = [
            sys.executable,
            "-m",
            "stigmer.cli",
            "server",
            "--listen",
            self.address,
            "--database",
            f"sqlite:///{home / 'stigmer.db'}",
            *args,
        ]
        self.env = {**env, "STIGMER_HOME": str(home), "NO_COLOR": "1"}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"grpc://{self.address}"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        process = self.process
        wait_for(
            lambda: "stigmer server listening on" in self.log() or process.poll() is not None,
            60,
            "stigmer server",
        )
        assert process.poll() is None, self.log()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


@pytest_asyncio.fixture
async def started() -> AsyncIterator[list[Any]]:
    """Servers and workers a test starts; stopped at its end."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, Worker):
            thing.stop()
        else:
            await asyncio.to_thread(thing.stop)


async def run_hello(server: ServerProcess | CliServer, home: Path) -> execution_pb2.Execution:
    client = CloudBackend(server.endpoint, home=home)
    try:
        [hello] = load_manifests([ROOT / "examples" / "hello.yaml"])
        assert isinstance(hello.resource, resource_pb2.Resource)
        await client.apply(svc.ApplyRequest(resource=hello.resource))
        created = await client.create_execution(
            svc.CreateExecutionRequest(
                spec=P.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="hello"))
            )
        )
        deadline = time.monotonic() + 90
        while True:
            done = await client.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
            if done.status.phase in (P.PHASE_SUCCEEDED, P.PHASE_FAILED, P.PHASE_CANCELLED):
                return done
            assert time.monotonic() < deadline, f"execution still {P.Phase.Name(done.status.phase)}"
            await asyncio.sleep(0.2)
    finally:
        await client.close()


def describe_workflow(port: int, namespace: str, workflow_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "describe",
            "-w",
            workflow_id,
            "--namespace",
            namespace,
            "--address",
            f"127.0.0.1:{port}",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# ------------------------------------------------------------------------------ tests
async def test_server_and_worker_in_another_namespace(
    temporal: int, tmp_path: Path, started: list[Any]
) -> None:
    server = CliServer(
        tmp_path, "--temporal", f"127.0.0.1:{temporal}", "--temporal-namespace", NAMESPACE, env=clean_env()
    )
    await asyncio.to_thread(server.start)
    started.append(server)
    worker = Worker(
        worker_argv(
            "--backend",
            server.endpoint,
            "--token-file",
            str(tmp_path / "tokens" / "admin"),
            "--temporal",
            f"127.0.0.1:{temporal}",
            "--namespace",
            NAMESPACE,
        ),
        tmp_path / "worker.log",
        clean_env(),
    )
    started.append(worker)
    worker.wait_polling()
    assert f"(namespace {NAMESPACE})" in worker.output()

    done = await run_hello(server, tmp_path)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output)["greeting"] == "Hello, world!"
    # The workflow lives in that namespace, not in `default`.
    assert describe_workflow(temporal, NAMESPACE, done.metadata.id).returncode == 0
    assert describe_workflow(temporal, "default", done.metadata.id).returncode != 0


async def test_server_and_worker_over_mutual_tls(
    pki: Pki, temporal: int, mtls_proxy: TlsProxy, tmp_path: Path, started: list[Any]
) -> None:
    address = f"127.0.0.1:{mtls_proxy.port}"
    # The server takes the options from its environment, the worker from its command line.
    server = ServerProcess(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'stigmer.db'}",
        env=clean_env(
            STIGMER_TEMPORAL_ADDRESS=address,
            STIGMER_TEMPORAL_NAMESPACE=NAMESPACE,
            STIGMER_TEMPORAL_TLS_CA=str(pki.ca),
            STIGMER_TEMPORAL_TLS_CERT=str(pki.client_cert),
            STIGMER_TEMPORAL_TLS_KEY=str(pki.client_key),
            STIGMER_TEMPORAL_TLS_SERVER_NAME=SERVER_NAME,
        ),
    )
    await asyncio.to_thread(server.start)
    started.append(server)
    worker = Worker(
        worker_argv(
            "--backend",
            server.endpoint,
            "--token-file",
            str(tmp_path / "tokens" / "admin"),
            "--temporal",
            address,
            "--namespace",
            NAMESPACE,
            "--temporal-tls-ca",
            str(pki.ca),
            "--temporal-tls-cert",
            str(pki.client_cert),
            "--temporal-tls-key",
            str(pki.client_key),
            "--temporal-tls-server-name",
            SERVER_NAME,
        ),
        tmp_path / "worker.log",
        clean_env(),
    )
    started.append(worker)
    worker.wait_polling()
    assert "mutual TLS" in worker.output()

    done = await run_hello(server, tmp_path)
    assert done.status.phase == P.PHASE_SUCCEEDED, done.status.error
    assert json_format.MessageToDict(done.status.output)["greeting"] == "Hello, world!"
    assert describe_workflow(temporal, NAMESPACE, done.metadata.id).returncode == 0
    # Both reached Temporal through the proxy, each with the client certificate.
    assert mtls_proxy.handshakes >= 2
    assert all("stigmer worker" in subject for subject in mtls_proxy.client_certs)
    assert len(mtls_proxy.client_certs) == mtls_proxy.handshakes


def run_worker_until_exit(
    tmp_path: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        worker_argv("--token", "unused", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        cwd=tmp_path,
        check=False,
    )


def test_a_server_certificate_of_an_unknown_ca_is_refused(
    pki: Pki, tls_proxy: TlsProxy, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{tls_proxy.port}"
    for extra in (
        ["--temporal-tls"],  # the system's roots do not know the test CA
        ["--temporal-tls-ca", str(pki.other_ca)],  # nor does another CA
    ):
        done = run_worker_until_exit(
            tmp_path, "--temporal", address, "--temporal-tls-server-name", SERVER_NAME, *extra
        )
        assert done.returncode == 1, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"stigmer-workflow-runner: cannot reach Temporal at {address} (")
        assert "not trusted: pass its CA with --temporal-tls-ca" in lines[0]
        assert "Traceback" not in done.stderr
    # With the right CA but without the name the certificate holds, it does not match either.
    done = run_worker_until_exit(tmp_path, "--temporal", address, "--temporal-tls-ca", str(pki.ca))
    assert done.returncode == 1, done
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "does not name this host: pass the name it holds with --temporal-tls-server-name" in done.stderr
    # Plain gRPC to a TLS endpoint.
    done = run_worker_until_exit(tmp_path, "--temporal", address)
    assert done.returncode == 1, done
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "if this Temporal endpoint uses TLS, add --temporal-tls" in done.stderr


def test_mutual_tls_proxy_refuses_a_worker_without_a_client_certificate(
    pki: Pki, mtls_proxy: TlsProxy, tmp_path: Path
) -> None:
    done = run_worker_until_exit(
        tmp_path,
        "--temporal",
        f"127.0.0.1:{mtls_proxy.port}",
        "--temporal-tls-ca",
        str(pki.ca),
        "--temporal-tls-server-name",
        SERVER_NAME,
    )
    assert done.returncode == 1, done
    assert "stigmer-workflow-runner: cannot reach Temporal at" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "pass a client certificate with --temporal-tls-cert and --temporal-tls-key" in done.stderr
    assert mtls_proxy.client_certs == []
    # A client certificate the proxy's CA did not sign is refused too.
    done = run_worker_until_exit(
        tmp_path,
        "--temporal",
        f"127.0.0.1:{mtls_proxy.port}",
        "--temporal-tls-ca",
        str(pki.ca),
        "--temporal-tls-server-name",
        SERVER_NAME,
        "--temporal-tls-cert",
        str(pki.server_cert),  # signed by the CA, but not for client authentication
        "--temporal-tls-key",
        str(pki.server_key),
    )
    assert done.returncode == 1, done
    assert "cannot reach Temporal" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert mtls_proxy.client_certs == []


# ------------------------------------------------------------------------------ option errors
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temporal-tls-cert", "{client_cert}"], "--temporal-tls-cert needs --temporal-tls-key too"),
        (["--temporal-tls-key", "{client_key}"], "--temporal-tls-key needs --temporal-tls-cert too"),
        (["--temporal-tls-ca", "{missing}"], "--temporal-tls-ca: cannot read {missing}: No such file"),
        (["--temporal-tls-ca", "{not_pem}"], "is not a PEM file"),
        (["--temporal-api-key-file", "{missing}"], "--temporal-api-key-file: cannot read"),
        (["--temporal-api-key-file", "{empty}"], "--temporal-api-key-file: {empty} is empty"),
        (["--temporal", "temporal.example"], "expected HOST:PORT"),
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(
    pki: Pki, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "not.pem").write_text("hello\n")
    (tmp_path / "empty").write_text("\n")
    names = {
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
        "missing": str(tmp_path / "missing.pem"),
        "not_pem": str(tmp_path / "not.pem"),
        "empty": str(tmp_path / "empty"),
    }
    args = [a.format(**names) for a in args]
    message = message.format(**names)
    home = tmp_path / "home"
    commands = {
        "worker": worker_argv(*args),
        "agent worker": [str(Path(sys.executable).parent / "stigmer-agent-runner"), *args],
        "server": [
            server_script(),
            "--home",
            str(home),
            *(args if "--temporal" in args else ["--temporal", "127.0.0.1:1", *args]),
        ],
        "stigmer server": [
            sys.executable,
            "-m",
            "stigmer.cli",
            "server",
            *(args if "--temporal" in args else ["--temporal", "127.0.0.1:1", *args]),
        ],
    }
    for what, argv in commands.items():
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(STIGMER_HOME=str(home), NO_COLOR="1"),
            check=False,
        )
        assert done.returncode == 2, (what, done)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (what, done.stderr)
        assert message in lines[0], (what, done.stderr)
        assert "Traceback" not in done.stderr
    assert not home.exists() or not any(home.iterdir()), "nothing may start on bad options"


# ------------------------------------------------------------------------------ API keys
class RecordingFrontend:
    """A real gRPC server over TLS answering ``GetSystemInfo`` and recording each call's metadata."""

    def __init__(self, pki: Pki) -> None:
        import grpc
        from temporalio.api.workflowservice.v1 import request_response_pb2 as rr

        self.metadata: list[dict[str, str]] = []

        def get_system_info(request: Any, context: Any) -> Any:
            self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
            return rr.GetSystemInfoResponse(server_version="test")

        handler = grpc.method_handlers_generic_handler(
            "temporal.api.workflowservice.v1.WorkflowService",
            {
                "GetSystemInfo": grpc.unary_unary_rpc_method_handler(
                    get_system_info,
                    request_deserializer=rr.GetSystemInfoRequest.FromString,
                    response_serializer=rr.GetSystemInfoResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        credentials = grpc.ssl_server_credentials(
            [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())]
        )
        self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()

    def close(self) -> None:
        self.server.stop(0)


def test_the_api_key_from_a_file_or_the_environment_reaches_temporal(pki: Pki, tmp_path: Path) -> None:
    frontend = RecordingFrontend(pki)
    key_file = tmp_path / "temporal.key"
    key_file.write_text("key-from-file\n")
    key_file.chmod(0o600)
    common = [
        "--temporal",
        f"127.0.0.1:{frontend.port}",
        "--temporal-tls-ca",
        str(pki.ca),
        "--temporal-tls-server-name",
        SERVER_NAME,
        "--namespace",
        "team.acct123",
    ]
    try:
        for extra, env, expected in (
            (["--temporal-api-key-file", str(key_file)], {}, "key-from-file"),
            ([], {"STIGMER_TEMPORAL_API_KEY": "key-from-env"}, "key-from-env"),
        ):
            seen = len(frontend.metadata)
            worker = Worker(
                worker_argv("--token", "unused", *common, *extra),
                tmp_path / f"worker-{expected}.log",
                clean_env(**env),
            )
            try:
                wait_for(
                    lambda s=seen, w=worker: len(frontend.metadata) > s or w.process.poll() is not None,  # type: ignore[misc]
                    60,
                    "the worker to call the frontend",
                )
            finally:
                worker.stop()
            assert len(frontend.metadata) > seen, worker.output()
            assert frontend.metadata[seen].get("authorization") == f"Bearer {expected}"
            assert expected not in worker.output()  # the key is never printed
    finally:
        frontend.close()


async def test_the_server_sends_the_api_key_from_its_environment(pki: Pki, tmp_path: Path) -> None:
    """The server connects when it starts an execution's workflow; the stand-in then refuses the start."""
    frontend = RecordingFrontend(pki)
    server = ServerProcess(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'stigmer.db'}",
        env=clean_env(
            STIGMER_TEMPORAL_ADDRESS=f"127.0.0.1:{frontend.port}",
            STIGMER_TEMPORAL_NAMESPACE="team.acct123",
            STIGMER_TEMPORAL_TLS_CA=str(pki.ca),
            STIGMER_TEMPORAL_TLS_SERVER_NAME=SERVER_NAME,
            STIGMER_TEMPORAL_API_KEY="server-key",
        ),
    )
    try:
        await asyncio.to_thread(server.start)
        done = await run_hello(server, tmp_path)
        # Only GetSystemInfo is answered: starting the workflow fails, and the execution says so.
        assert done.status.phase == P.PHASE_FAILED
        assert "Temporal" in done.status.error.detail
        assert [m.get("authorization") for m in frontend.metadata] == ["Bearer server-key"]
        log = server.log_path.read_text()
        assert "(namespace team.acct123; TLS, own CA, server name temporal.test; API key)" in log
        assert "server-key" not in log
    finally:
        await asyncio.to_thread(server.stop)
        frontend.close()
