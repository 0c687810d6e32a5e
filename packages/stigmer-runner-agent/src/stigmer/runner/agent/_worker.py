"""``stigmer-agent-runner``: a Temporal worker for Stigmer agent executions.

What a worker machine runs after ``pip install 'stigmer-runner-agent[temporal]'``::

    stigmer-agent-runner --temporal 127.0.0.1:7233 --task-queue stigmer-agents \\
        --endpoint grpc://127.0.0.1:7234 --token-file runner.token
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stigmer.temporal import WorkerCommand

__all__ = ["build_parser", "main"]

DEFAULT_QUEUE = "stigmer-agents"

COMMAND = WorkerCommand(
    prog="stigmer-agent-runner",
    description=(
        "Temporal worker for Stigmer agent executions: runs each agent execution as a Temporal "
        "workflow (approvals arrive as signals) and reports to a Stigmer server with a runner token."
    ),
    default_queue=DEFAULT_QUEUE,
    default_concurrency=50,
    concurrency_help="agent runs and workflow tasks run at once",
    package="stigmer-runner-agent",
    worker_module="stigmer.runner.agent._temporal_worker",
    runner="agent",
)


def build_parser() -> argparse.ArgumentParser:
    return COMMAND.build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    return COMMAND.main(argv)


if __name__ == "__main__":
    sys.exit(main())
