"""The command line shared by the runner worker scripts (``stigmer-workflow-runner``, ``stigmer-agent-runner``).

Argument parsing, token handling and the Temporal connection options (see ``_connection``) live
here; each runner package supplies its Temporal worker module (imported when the command runs, so
``import stigmer.temporal`` never imports temporalio). Bad options end the command with one line and exit code 2 before
anything connects.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from stigmer.core import InvalidArgument
from stigmer.temporal._connection import TemporalConnection, add_temporal_arguments

__all__ = ["WorkerCommand"]


@dataclass(frozen=True)
class WorkerCommand:
    """One runner's worker script: its name, defaults, and the module holding ``run_worker``."""

    prog: str
    description: str
    default_queue: str
    default_concurrency: int
    concurrency_help: str
    package: str  # the distribution to install with its ``temporal`` extra
    worker_module: str  # a module with ``run_worker(**options) -> int``
    runner: str = ""  # the ``stigmer.runners`` plugin of ``--execution`` (one execution, no Temporal)

    def build_parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description)
        parser.add_argument(
            "--task-queue", default=self.default_queue, help=f"task queue (default: {self.default_queue})"
        )
        parser.add_argument(
            "--endpoint",
            "--backend",
            dest="endpoint",
            metavar="URL",
            default=os.environ.get("STIGMER_ENDPOINT", "grpc://127.0.0.1:7234"),
            help="Stigmer server, grpc://HOST:PORT or grpcs://HOST:PORT; several servers of one database as "
            "grpc://A:PORT,grpc://B:PORT or dns:///NAME:PORT (default: $STIGMER_ENDPOINT)",
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
            help="file holding a runner-role token (- reads its first line from stdin)",
        )
        parser.add_argument(
            "--concurrency",
            "--max-concurrent",
            dest="concurrency",
            metavar="N",
            type=_positive,
            default=self.default_concurrency,
            help=f"{self.concurrency_help} (default: {self.default_concurrency})",
        )
        parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
        if self.runner:
            parser.add_argument(
                "--execution",
                metavar="ID",
                default=None,
                help="run this one execution through the server (no Temporal) and exit; "
                "how `stigmer server` runs executions in child processes (with -: load the runner "
                "first, then read the id from stdin, before the token)",
            )
            parser.add_argument(
                "--watch-stdin",
                action="store_true",
                help="with --execution: exit at once when stdin closes (the parent process is gone)",
            )
        add_temporal_arguments(parser)
        return parser

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = self.build_parser().parse_args(argv)
        if getattr(args, "execution", None):
            return self._run_once(args)
        try:
            temporal = TemporalConnection.from_args(args)
        except InvalidArgument as err:
            print(f"{self.prog}: error: {err}", file=sys.stderr)
            return 2
        try:
            token = self._token(args)
        except OSError as exc:
            print(f"{self.prog}: cannot read the token file: {exc}", file=sys.stderr)
            return 1
        try:
            run_worker = importlib.import_module(self.worker_module).run_worker
        except ImportError as exc:
            print(
                f"{self.prog}: the Temporal worker needs extra packages ({exc}); "
                f"install them with: pip install '{self.package}[temporal]'",
                file=sys.stderr,
            )
            return 1
        code: int = run_worker(
            temporal=temporal,
            task_queue=args.task_queue,
            endpoint=args.endpoint,
            token=token,
            max_concurrent=args.concurrency,
            log_level=args.log_level,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # temporalio's core threads can abort a normal interpreter exit

    def _token(self, args: argparse.Namespace) -> str | None:
        token: str | None = args.token or os.environ.get("STIGMER_TOKEN")
        if args.token_file == "-":
            from stigmer.temporal._run_once import read_token_line

            token = read_token_line(sys.stdin.buffer)
        elif args.token_file:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        return token

    def _run_once(self, args: argparse.Namespace) -> int:
        from stigmer.temporal._run_once import load, prepare, read_token_line, run_once, watch_parent

        execution_id = str(args.execution)
        from stigmer.core import configure_logging

        configure_logging(str(args.log_level))
        runner = load(self.runner)
        if execution_id == "-":  # a warm spare: ready before its execution exists
            prepare(runner)
            execution_id = read_token_line(sys.stdin.buffer)
            if not execution_id:  # the parent went away before handing it anything
                return 0
        try:
            token = self._token(args)
        except OSError as exc:
            print(f"{self.prog}: cannot read the token file: {exc}", file=sys.stderr)
            return 1
        if args.watch_stdin:
            watch_parent(sys.stdin.buffer)
        code = run_once(
            prog=self.prog,
            runner=runner,
            name=self.runner,
            endpoint=args.endpoint,
            token=token,
            execution_id=execution_id,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no interpreter teardown: gRPC's threads can abort it
        return code


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value
