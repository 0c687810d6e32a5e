"""``stigmer-workflow-runner``: a Temporal worker for Stigmer workflow executions.

What a worker machine runs after ``pip install 'stigmer-runner-workflow[temporal]'``::

    stigmer-workflow-runner --temporal 127.0.0.1:7233 --task-queue stigmer-workflows \\
        --endpoint grpc://127.0.0.1:7234 --token-file runner.token

It polls the task queue for ``stigmer.workflow`` workflows (one per execution) and runs their
activities, talking to the Stigmer server with a runner-role token.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stigmer.temporal import WorkerCommand

__all__ = ["build_parser", "main"]

DEFAULT_QUEUE = "stigmer-workflows"

COMMAND = WorkerCommand(
    prog="stigmer-workflow-runner",
    description=(
        "Temporal worker for Stigmer workflow executions (Serverless Workflow 1.0): runs the "
        "workflow interpreter in Temporal workflows and its effects as activities, reporting "
        "to a Stigmer server with a runner token."
    ),
    default_queue=DEFAULT_QUEUE,
    default_concurrency=100,
    concurrency_help="activities and workflow tasks run at once",
    package="stigmer-runner-workflow",
    worker_module="stigmer.runner.workflow.temporal._worker",
    runner="workflow",
)


def build_parser() -> argparse.ArgumentParser:
    return COMMAND.build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    return COMMAND.main(argv)


if __name__ == "__main__":
    sys.exit(main())
