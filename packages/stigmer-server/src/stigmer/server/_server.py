"""``stigmer server``: any Backend over gRPC, with tokens, roles, TLS, health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from stigmer.core import (
    Backend,
    FailedPrecondition,
    InvalidArgument,
    Settings,
    load_backend,
    private_dir,
    tighten_home,
)
from stigmer.server._dispatch import (
    DEFAULT_LEASE_SECONDS,
    ChildDispatcher,
    ExecutionDispatcher,
    NoDispatcher,
    server_lease_seconds,
)
from stigmer.server._tokens import (
    TokenStore,
    admin_token_path,
    ensure_admin_token,
    remove_admin_endpoint,
    write_admin_endpoint,
)
from stigmer.temporal import TemporalConnection

__all__ = [
    "DEFAULT_LISTEN",
    "GRACE_SECONDS",
    "MAX_CONCURRENT_RPCS",
    "MAX_MESSAGE_BYTES",
    "is_loopback",
    "parse_listen",
    "run_server",
    "serve",
    "server_identity",
]

logger = logging.getLogger("stigmer.server")

DEFAULT_LISTEN = "127.0.0.1:7234"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_CONCURRENT_RPCS = 1024
MAX_STREAMS_PER_CONNECTION = 256
GRACE_SECONDS = 10.0


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:7234`` for IPv6) into host and port."""
    text = listen.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        raise InvalidArgument(
            f"cannot listen on {listen!r}: expected host:port, e.g. 127.0.0.1:7234 or [::]:7234", ["listen"]
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = int(port_text)
    if port > 65535:
        raise InvalidArgument(f"cannot listen on {listen!r}: port {port} is out of range", ["listen"])
    return host, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Where a process of this host reaches a server bound to a wildcard address.
_LOOPBACK_OF = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def server_identity(home: Path) -> str:
    """This server's id (``srv_<ulid>``), kept in ``$STIGMER_HOME/server.id`` so a restarted server
    is the same server: it holds the leases of the executions it runs (see ChildDispatcher). Each
    server of a database needs a home of its own."""
    from ulid import ULID

    path = Path(home) / "server.id"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    if text.startswith("srv_") and 4 < len(text) <= 64 and text[4:].isalnum():
        return text
    private_dir(path.parent)
    new = f"srv_{str(ULID()).lower()}"
    tmp = path.with_name(f".server.id.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (new + "\n").encode("ascii"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return new


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _server_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
        ("grpc.so_reuseport", 0),
        # Let clients keep idle connections alive with pings every >= 10 s.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
    ]


def _credentials(tls_cert: Path | None, tls_key: Path | None) -> Any:
    if tls_cert is None and tls_key is None:
        return None
    if tls_cert is None or tls_key is None:
        raise InvalidArgument("TLS needs both a certificate and its key (--tls-cert and --tls-key)", ["tls"])
    import grpc

    try:
        cert = Path(tls_cert).read_bytes()
        key = Path(tls_key).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read TLS file {exc.filename}: {exc.strerror}", ["tls"]) from None
    return grpc.ssl_server_credentials([(key, cert)])


def _check_bind(listen: str, tls_cert: Path | None, tls_key: Path | None, insecure: bool) -> Any:
    """Validate the address and TLS files; the server credentials, or None for plaintext."""
    host, _port = parse_listen(listen)
    credentials = _credentials(tls_cert, tls_key)
    if credentials is None and not is_loopback(host) and not insecure:
        raise InvalidArgument(
            f"refusing to listen on {listen} without TLS: tokens would cross the network in clear text; "
            "pass --tls-cert and --tls-key, or --insecure if a TLS-terminating proxy sits in front",
            ["listen"],
        )
    return credentials


async def serve(
    backend: Backend,
    listen: str = DEFAULT_LISTEN,
    *,
    home: Path,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    insecure: bool = False,
    ready: asyncio.Event | None = None,
    tokens: TokenStore | None = None,
    dispatcher: ExecutionDispatcher | None = None,
    grace: float = GRACE_SECONDS,
    on_ready: Callable[[str], None] | None = None,
    scheduler: Any = None,
    temporal_schedules: Any = None,
    http_listen: str | None = None,
    metrics_public: bool = False,
    on_http_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``backend`` as ``stigmer.v1.BackendService`` until SIGTERM/SIGINT or cancellation.

    With ``http_listen`` (``host:port``), an HTTP listener beside gRPC (``_http``: ``/healthz``,
    ``/metrics`` with a token unless ``metrics_public``; same TLS and loopback rule as gRPC);
    ``on_http_ready`` is called with its URL.

    Every call needs a bearer token (see :class:`TokenStore`); on first start an admin token is
    written to ``$STIGMER_HOME/tokens/admin`` (0600). Listening on a non-loopback address without
    TLS is refused unless ``insecure``. Executions the server creates are run by ``dispatcher``
    (default: a :class:`ChildDispatcher`, one child process per execution with the installed
    runners, which reach the server at its own address, or at an extra loopback port when the
    server uses TLS, with a token scoped to their execution). ``ready`` is set, and ``on_ready`` called with
    the bound ``host:port``, once the server accepts calls. On shutdown, in-flight calls get
    ``grace`` seconds to finish and open watch streams end with UNAVAILABLE (clients resume).
    A ``scheduler`` (``stigmer.backend.local.Scheduler``) fires due Schedules while the server
    runs, handing each execution to the dispatcher (each slot once, however many servers share
    the database); ``temporal_schedules`` (``stigmer.temporal.TemporalSchedules``) keeps
    Temporal Schedules in step and runs the worker that fires their slots.
    """
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection
    from stigmer.proto.v1 import backend_service_pb2, backend_service_pb2_grpc
    from stigmer.server._auth import AuthInterceptor, ExecutionTokens
    from stigmer.server._servicer import BackendServicer

    host, port = parse_listen(listen)
    credentials = _check_bind(listen, tls_cert, tls_key, insecure)
    if http_listen:
        http_host, http_port = parse_listen(http_listen)
        _check_bind(http_listen, tls_cert, tls_key, insecure)

    home = private_dir(home)
    tighten_home(home)  # files an older version left 0644
    owns_tokens = tokens is None
    store = tokens if tokens is not None else TokenStore(home=home)
    await asyncio.to_thread(ensure_admin_token, store, home)

    execution_tokens = ExecutionTokens()
    interceptor = AuthInterceptor(store, execution_tokens)
    http: Any = None
    if http_listen:
        from stigmer.server._http import HttpListener
        from stigmer.server._metrics import MeteredBackend, ServerMetrics

        metrics = ServerMetrics()
        backend = cast(Backend, MeteredBackend(backend, metrics))
        http = HttpListener(
            http_host,
            http_port,
            verify=store.verify,
            metrics=metrics,
            metrics_public=metrics_public,
            tls_cert=tls_cert,
            tls_key=tls_key,
        )
    servicer = BackendServicer(backend, dispatcher if dispatcher is not None else ChildDispatcher(backend))
    if http is not None:  # POST /hooks/{name} and POST /events start runs as CreateExecution does
        from stigmer.server._hooks import Hooks

        http.route(*Hooks(backend, servicer.dispatcher, verify=store.verify).routes())
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=_server_options(),
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    backend_service_pb2_grpc.add_BackendServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = backend_service_pb2.DESCRIPTOR.services_by_name["BackendService"].full_name
    reflection.enable_server_reflection((service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    address = _format_address(host, port)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        if owns_tokens:
            store.close()
        raise FailedPrecondition(
            f"cannot listen on {listen}: {exc}; is another server using the port?"
        ) from None
    if not bound:
        if owns_tokens:
            store.close()
        raise FailedPrecondition(f"cannot listen on {listen}: the address is in use or not available here")
    actual = _format_address(host, bound)
    bind_children = getattr(servicer.dispatcher, "bind", None)
    if bind_children is not None:
        if credentials is None:
            child_address = _format_address(_LOOPBACK_OF.get(host, host), bound)
        else:  # children reach the server on a plaintext loopback port of their own
            child_port = server.add_insecure_port("127.0.0.1:0")
            child_address = f"127.0.0.1:{child_port}"
        bind_children(f"grpc://{child_address}", execution_tokens)

    stop = asyncio.Event()
    scheduling: asyncio.Task[None] | None = None
    firing: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            logger.info("received %s again; still stopping (up to %.0f s)", sig.name, grace)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)

    try:
        await server.start()
        if http is not None:
            await http.start()
            logger.info(
                "stigmer server HTTP on %s (/metrics%s, /healthz)",
                http.url,
                ", public" if metrics_public else " with a token",
            )
            if on_http_ready is not None:
                on_http_ready(http.url)
        write_admin_endpoint(home, actual)  # clients send the admin token to this address only
        for name in ("", service_name):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "stigmer server listening on %s (%s); admin token in %s",
            actual,
            "TLS" if credentials is not None else "plaintext",
            admin_token_path(home),
        )
        recover = getattr(servicer.dispatcher, "recover", None)
        try:
            if recover is not None:
                await recover()
        except Exception:
            logger.warning("could not resume executions left running", exc_info=True)
        if scheduler is not None:
            scheduler.start = servicer.dispatcher.start
            scheduling = asyncio.create_task(scheduler.run(stop), name="stigmer-scheduler")
        if temporal_schedules is not None:
            firing = asyncio.create_task(temporal_schedules.run(stop), name="stigmer-temporal-schedules")
        if on_ready is not None:
            on_ready(actual)
        if ready is not None:
            ready.set()
        await stop.wait()
        if scheduling is not None:
            await scheduling
        if firing is not None:
            with contextlib.suppress(Exception):
                await firing
        logger.info("stopping: finishing in-flight calls (up to %.0f s)", grace)
    finally:
        for task in (scheduling, firing):
            if task is not None and not task.done():
                task.cancel()
        try:
            if http is not None:
                await http.stop()
            await asyncio.shield(_shutdown(server, servicer, health_servicer, grace))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            if owns_tokens:
                store.close()
            remove_admin_endpoint(home, actual)
        logger.info("stigmer server stopped")


async def _shutdown(server: Any, servicer: Any, health_servicer: Any, grace: float) -> None:
    await health_servicer.enter_graceful_shutdown()
    servicer.begin_shutdown()
    # Running executions first: their runner processes talk to this server until they finish.
    await servicer.dispatcher.shutdown(grace)
    await server.stop(grace)
    await servicer.drain()
    # Then what the last in-flight calls handed the dispatcher (e.g. a Temporal workflow start).
    await servicer.dispatcher.shutdown(grace)


def run_server(
    listen: str = DEFAULT_LISTEN,
    database_url: str | None = None,
    home: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    insecure: bool = False,
    *,
    run_executions: bool = True,
    allow_run: bool = False,
    agent_limits: Mapping[str, float] | None = None,
    allow_private_network: bool = False,
    on_ready: Callable[[str], None] | None = None,
    temporal_address: str | None = None,
    temporal: TemporalConnection | None = None,
    schedules: bool = True,
    http_listen: str | None = None,
    metrics_public: bool = False,
    on_http_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve a ``LocalBackend`` (SQLite file or PostgreSQL URL) until SIGTERM/SIGINT; blocking.

    ``database_url`` defaults to ``$STIGMER_DATABASE_URL``. Tokens are kept in that database when
    there is one (table ``auth_tokens``), else in ``$STIGMER_HOME/tokens.db``. With ``run_executions`` (the default, no Temporal) the
    server runs the executions it creates with the installed runners, each in a child process.
    ``allow_run`` grants executions the ``run`` capability (``run: shell|script``, stdio MCP
    servers, an agent's ``shell`` tool): off unless the admin enables it (``--allow-run``).
    ``allow_private_network`` lets an agent's ``fetch`` tool reach loopback and private addresses
    (``--allow-private-network``), off by default.
    ``agent_limits`` is the ceiling of every agent run created here (``--agent-max-*``).

    With ``temporal`` (namespace, TLS, API key), or a ``temporal_address`` / ``$STIGMER_TEMPORAL_ADDRESS``
    completed by the other ``STIGMER_TEMPORAL_*`` variables, executions become Temporal workflows.
    With ``schedules`` (the default) the server fires due Schedules every
    ``$STIGMER_SCHEDULER_TICK`` seconds (default 1), each slot once across servers.
    """
    settings = Settings.load()
    resolved_home = Path(home) if home is not None else settings.home
    # $STIGMER_DATABASE_URL applies to the store and the tokens alike (as in `stigmer token ...`).
    database_url = database_url or settings.database_url or None
    # Check the Temporal options (and read their files) before opening any database.
    connection = temporal if temporal is not None else TemporalConnection.optional(temporal_address)
    # Without Temporal the server runs executions itself, holding a lease on each (several
    # servers may share the database: one takes over the runs of another that is gone).
    runs_itself = run_executions and connection is None
    lease = server_lease_seconds() if runs_itself else DEFAULT_LEASE_SECONDS

    from stigmer.core import setup_telemetry

    setup_telemetry("stigmer-server")  # traces when OTEL_EXPORTER_OTLP_ENDPOINT is set

    async def main() -> None:
        # Validate the address and TLS files before opening any database.
        _check_bind(listen, tls_cert, tls_key, insecure)
        if http_listen:
            _check_bind(http_listen, tls_cert, tls_key, insecure)
        # Runner workers may claim executions only where the server does not run them itself.
        backend: Any = load_backend(
            "local",
            database_url=database_url,
            home=resolved_home,
            allow_run=allow_run,
            offer_to_runners=not runs_itself,
            server_id=server_identity(resolved_home) if runs_itself else "",
            agent_limits=dict(agent_limits or {}),
            allow_private_network=allow_private_network,
        )
        store = TokenStore(database_url=database_url, home=resolved_home)
        dispatcher: ExecutionDispatcher = (
            ChildDispatcher(backend, lease_seconds=lease) if run_executions else NoDispatcher()
        )
        if allow_run:
            logger.warning(
                "executions may run local commands (run: shell|script, stdio MCP servers): --allow-run"
            )
        scheduler = None
        if schedules:
            import os

            from stigmer.backend.local import Scheduler

            scheduler = Scheduler(backend, tick=float(os.environ.get("STIGMER_SCHEDULER_TICK") or 1.0))
        temporal_schedules = None
        if connection is not None:  # full stack: executions become Temporal workflows run by workers
            from stigmer.temporal import TemporalSchedules, temporal_dispatch

            logger.info("executions run as Temporal workflows on %s", connection.describe())
            local = backend
            backend, dispatcher = temporal_dispatch(backend, connection)
            if scheduler is not None:  # Temporal Schedules fire cron/every; the server the `after` ones
                from stigmer.temporal._schedules import on_temporal

                temporal_schedules = TemporalSchedules(local, dispatcher)
                dispatcher.schedules = temporal_schedules
                scheduler.only = lambda schedule: not on_temporal(schedule)
        try:
            await serve(
                backend,
                listen,
                home=resolved_home,
                tls_cert=tls_cert,
                tls_key=tls_key,
                insecure=insecure,
                tokens=store,
                dispatcher=dispatcher,
                on_ready=on_ready,
                scheduler=scheduler,
                temporal_schedules=temporal_schedules,
                http_listen=http_listen,
                metrics_public=metrics_public,
                on_http_ready=on_http_ready,
            )
        finally:
            store.close()
            await backend.close()

    asyncio.run(main())
