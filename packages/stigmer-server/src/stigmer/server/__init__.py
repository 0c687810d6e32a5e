"""``stigmer server``: serve any Stigmer Backend over gRPC (``stigmer.v1.BackendService``).

API tokens with roles (:class:`TokenStore`), TLS, health and reflection; executions the server
creates run in child processes (:class:`ChildDispatcher`) or, with Temporal, as Temporal workflows.
:func:`serve` serves any ``Backend``; :func:`run_server` (and the ``stigmer-server`` console
script) serves the local store. :class:`ServerProcess` runs ``stigmer-server`` as a child process.

``import stigmer.server`` is cheap: grpcio and SQLAlchemy load when a server starts or a token
store is opened.
"""

from stigmer.server._dispatch import ChildDispatcher, ExecutionDispatcher, NoDispatcher
from stigmer.server._process import ServerProcess, find_script, server_script
from stigmer.server._server import (
    DEFAULT_LISTEN,
    GRACE_SECONDS,
    MAX_CONCURRENT_RPCS,
    MAX_MESSAGE_BYTES,
    run_server,
    serve,
)
from stigmer.server._tokens import (
    ROLES,
    IssuedToken,
    TokenInfo,
    TokenStore,
    admin_endpoint_path,
    admin_token_path,
    ensure_admin_token,
)
from stigmer.temporal import DEV_SERVER_ARGS as TEMPORAL_DEV_SERVER_ARGS  # the local stack's dev server
from stigmer.temporal import TemporalConnection  # what run_server(temporal=...) takes

__all__ = [
    "DEFAULT_LISTEN",
    "GRACE_SECONDS",
    "MAX_CONCURRENT_RPCS",
    "MAX_MESSAGE_BYTES",
    "ROLES",
    "TEMPORAL_DEV_SERVER_ARGS",
    "ChildDispatcher",
    "ExecutionDispatcher",
    "IssuedToken",
    "NoDispatcher",
    "ServerProcess",
    "TemporalConnection",
    "TokenInfo",
    "TokenStore",
    "admin_endpoint_path",
    "admin_token_path",
    "ensure_admin_token",
    "find_script",
    "run_server",
    "serve",
    "server_script",
]
