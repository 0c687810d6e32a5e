"""``stigmer-agent-runner``: the agent worker process of the full stack (not available yet)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

NOT_YET = (
    "stigmer-agent-runner: the Temporal worker mode arrives with the full-stack work; "
    "today agents run in-process (Lite): `stigmer agent execute AGENT MESSAGE`"
)


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="stigmer-agent-runner",
        description=(
            "Stigmer agent runner worker. The Temporal worker mode (polling a task queue and running "
            "agent executions for a shared `stigmer server`) arrives with the full-stack work; until "
            "then agents run in-process with `stigmer agent execute AGENT MESSAGE`."
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``--help`` works; any other invocation exits 2 saying the worker mode is not there yet."""
    _parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    print(NOT_YET, file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
