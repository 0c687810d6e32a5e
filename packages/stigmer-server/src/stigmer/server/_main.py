"""``stigmer-server``: run ``stigmer server`` without the CLI (the console script of this distribution).

Used by tests and by the full-stack supervisor. Prints ``stigmer server listening on HOST:PORT``
on stdout once it accepts calls (``--listen 127.0.0.1:0`` picks a free port).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stigmer.core import InvalidArgument, StigmerError, configure_logging
from stigmer.temporal import TemporalConnection, add_temporal_arguments

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stigmer-server", description="Serve the Stigmer backend over gRPC."
    )
    parser.add_argument("--listen", default="127.0.0.1:7234", help="host:port to listen on")
    parser.add_argument(
        "--database",
        default=None,
        help="SQLAlchemy URL (default: $STIGMER_DATABASE_URL, else $STIGMER_HOME/stigmer.db)",
    )
    parser.add_argument("--home", type=Path, default=None, help="STIGMER_HOME (default: ~/.stigmer)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key")
    parser.add_argument("--insecure", action="store_true", help="allow plaintext on a non-loopback address")
    parser.add_argument(
        "--no-run-executions",
        action="store_true",
        help="leave executions PENDING for external runner workers instead of running them here",
    )
    parser.add_argument(
        "--allow-run",
        action="store_true",
        help="let executions start local processes (run: shell|script, stdio MCP servers); "
        "off by default: any user could run commands as the server's OS user",
    )
    parser.add_argument(
        "--http-listen",
        default=None,
        metavar="HOST:PORT",
        help="also serve HTTP here: /metrics (Prometheus), /healthz, webhooks (POST /hooks/NAME) and "
        "CloudEvents (POST /events); same TLS as gRPC",
    )
    parser.add_argument(
        "--metrics-public",
        action="store_true",
        help="serve /metrics without a token (default: any valid token is needed)",
    )
    ceiling = parser.add_argument_group(
        "agent run ceilings", "the most any agent run may spend here; a run's own limits can only be lower"
    )
    ceiling.add_argument(
        "--agent-max-requests", type=int, default=0, metavar="N", help="model requests per run"
    )
    ceiling.add_argument(
        "--agent-max-tool-calls", type=int, default=0, metavar="N", help="tool calls per run"
    )
    ceiling.add_argument(
        "--agent-max-tokens", type=int, default=0, metavar="N", help="input + output tokens per run"
    )
    ceiling.add_argument(
        "--agent-max-cost", type=float, default=0.0, metavar="USD", help="cost per run, in US dollars"
    )
    parser.add_argument(
        "--allow-private-network",
        action="store_true",
        help="let agents' fetch tool reach loopback and private addresses (off by default)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    add_temporal_arguments(
        parser,
        address_help="run executions as Temporal workflows on this frontend (default: $STIGMER_TEMPORAL_ADDRESS)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    agent_limits = {
        "max_requests": args.agent_max_requests,
        "max_tool_calls": args.agent_max_tool_calls,
        "max_tokens": args.agent_max_tokens,
        "max_cost_usd": args.agent_max_cost,
    }
    negative = [name for name, value in agent_limits.items() if value < 0]
    if negative:
        parser.error(f"agent run ceilings must not be negative ({', '.join(negative)})")
    try:
        temporal = TemporalConnection.optional_from_args(args)
    except InvalidArgument as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    # Stigmer's own lines at --log-level; other libraries' warnings only (an HTTP client's INFO
    # lines hold the URLs it requests, which can carry a value); secrets masked.
    configure_logging(str(args.log_level))
    from stigmer.server._server import run_server

    def announce(address: str) -> None:
        print(f"stigmer server listening on {address}", flush=True)

    def announce_http(url: str) -> None:
        print(f"stigmer server HTTP on {url}", flush=True)

    try:
        run_server(
            args.listen,
            args.database,
            args.home,
            args.tls_cert,
            args.tls_key,
            args.insecure,
            run_executions=not args.no_run_executions,
            allow_run=args.allow_run,
            agent_limits={k: v for k, v in agent_limits.items() if v},
            allow_private_network=args.allow_private_network,
            on_ready=announce,
            temporal=temporal,
            http_listen=args.http_listen,
            metrics_public=args.metrics_public,
            on_http_ready=announce_http,
        )
    except StigmerError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
