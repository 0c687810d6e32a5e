"""``stigmer-workflow-runner``: the worker-process entry point (Temporal mode is not built yet)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

NOT_YET = (
    "stigmer-workflow-runner: the Temporal worker mode arrives with the full-stack work and is not "
    "available in this version. Workflows run in-process today: use `stigmer run NAME` (Lite mode), "
    "or `stigmer server`, which runs executions with the workflow runner plugin."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stigmer-workflow-runner",
        description=(
            "Worker process for Stigmer workflow executions (Serverless Workflow 1.0). "
            "The Temporal worker mode arrives with the full-stack work; until then this command "
            "only prints this help. Lite mode runs workflows in-process through `stigmer run`."
        ),
    )
    parser.add_argument(
        "--temporal-address", metavar="HOST:PORT", help="Temporal frontend (not available yet)"
    )
    parser.add_argument(
        "--task-queue", default="stigmer-workflows", help="Temporal task queue (not available yet)"
    )
    parser.add_argument("--backend", metavar="URL", help="Stigmer server to report to (not available yet)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)  # --help exits 0; bad options exit 2
    print(NOT_YET, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
