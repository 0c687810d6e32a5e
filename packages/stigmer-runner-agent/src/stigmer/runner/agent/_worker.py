"""``stigmer-agent-runner``: a Temporal worker for Stigmer agent executions.

What a worker machine runs after ``pip install 'stigmer-runner-agent[temporal]'``::

    stigmer-agent-runner --temporal 127.0.0.1:7233 --task-queue stigmer-agents \\
        --endpoint grpc://127.0.0.1:7234 --token-file runner.token
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

DEFAULT_QUEUE = "stigmer-agents"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stigmer-agent-runner",
        description=(
            "Temporal worker for Stigmer agent executions: runs each agent execution as a Temporal "
            "workflow (approvals arrive as signals) and reports to a Stigmer server with a runner token."
        ),
    )
    parser.add_argument(
        "--temporal",
        "--temporal-address",
        dest="temporal",
        metavar="HOST:PORT",
        default=os.environ.get("STIGMER_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        help="Temporal frontend address (default: $STIGMER_TEMPORAL_ADDRESS or 127.0.0.1:7233)",
    )
    parser.add_argument("--namespace", default="default", help="Temporal namespace (default: default)")
    parser.add_argument("--task-queue", default=DEFAULT_QUEUE, help=f"task queue (default: {DEFAULT_QUEUE})")
    parser.add_argument(
        "--endpoint",
        "--backend",
        dest="endpoint",
        metavar="URL",
        default=os.environ.get("STIGMER_ENDPOINT", "grpc://127.0.0.1:7234"),
        help="Stigmer server, grpc://HOST:PORT or grpcs://HOST:PORT (default: $STIGMER_ENDPOINT)",
    )
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token",
        metavar="TOKEN",
        default=None,
        help="a runner-role token (default: $STIGMER_TOKEN; --token-file keeps it out of ps)",
    )
    tokens.add_argument(
        "--token-file",
        metavar="FILE",
        default=None,
        help="file holding a runner-role token",
    )
    parser.add_argument(
        "--concurrency",
        "--max-concurrent",
        dest="concurrency",
        metavar="N",
        type=_positive,
        default=50,
        help="agent runs and workflow tasks run at once (default: 50)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    token = args.token or os.environ.get("STIGMER_TOKEN")
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            print(f"stigmer-agent-runner: cannot read the token file: {exc}", file=sys.stderr)
            return 1
    try:
        from stigmer.runner.agent._temporal_worker import run_worker
    except ImportError as exc:
        print(
            f"stigmer-agent-runner: the Temporal worker needs extra packages ({exc}); "
            "install them with: pip install 'stigmer-runner-agent[temporal]'",
            file=sys.stderr,
        )
        return 1
    code = run_worker(
        temporal=args.temporal,
        namespace=args.namespace,
        task_queue=args.task_queue,
        endpoint=args.endpoint,
        token=token,
        max_concurrent=args.concurrency,
        log_level=args.log_level,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # temporalio's core threads can abort a normal interpreter exit


if __name__ == "__main__":
    sys.exit(main())
