"""A real OTLP receiver for the telemetry tests: Arize Phoenix (``phoenix serve``), which no one
here wrote, on free ports of 127.0.0.1 with its own working directory.

Phoenix is installed by the workspace's dev dependency group (not by this distribution: it is
large); :func:`phoenix_binary` says what to install when it is missing. Spans sent to
:attr:`OtlpReceiver.endpoint` (OTLP over HTTP, the value for ``OTEL_EXPORTER_OTLP_ENDPOINT``) are
read back with :meth:`OtlpReceiver.spans` (Phoenix's REST API).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._ports import free_port

__all__ = ["OtlpReceiver", "otlp_receiver", "phoenix_binary"]


def phoenix_binary() -> str:
    """The ``phoenix`` command of ``arize-phoenix`` (next to this Python), else on PATH."""
    found = shutil.which("phoenix", path=str(Path(sys.executable).parent)) or shutil.which("phoenix")
    if not found:
        raise RuntimeError("the OTLP receiver `phoenix` is missing: pip install arize-phoenix (uv sync does)")
    return found


@dataclass(frozen=True)
class OtlpReceiver:
    """A running Phoenix: ``endpoint`` takes OTLP/HTTP, ``url`` is its UI and REST API."""

    url: str
    log: Path

    @property
    def endpoint(self) -> str:
        return self.url

    def spans(self, project: str = "default", limit: int = 1000) -> list[dict[str, Any]]:
        """Every span Phoenix stored for ``project`` (name, context, parent_id, attributes, events...)."""
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            with urllib.request.urlopen(f"{self.url}/v1/projects/{project}/spans?{query}", timeout=10) as r:
                page = json.loads(r.read())
            out.extend(page.get("data") or [])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return out

    def wait_for_spans(
        self, predicate: Any, *, timeout: float = 30.0, project: str = "default"
    ) -> list[dict[str, Any]]:
        """Spans once ``predicate(spans)`` holds (Phoenix stores what it receives asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(urllib.error.URLError, urllib.error.HTTPError, OSError):
                spans = self.spans(project)
                if predicate(spans):
                    return spans
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the receiver did not get the expected spans in {timeout:.0f} s; it has: "
                    + ", ".join(sorted({s["name"] for s in self.spans(project)}))
                )
            time.sleep(0.3)


@contextlib.contextmanager
def otlp_receiver(workdir: Path, *, startup_timeout: float = 120.0) -> Iterator[OtlpReceiver]:
    """Start Phoenix in ``workdir`` (its SQLite database there) and stop it on exit."""
    port, grpc_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "phoenix.log"
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    for name in [k for k in env if k.startswith("OTEL_")]:
        env.pop(name)  # Phoenix traces itself when told to: not into itself
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [phoenix_binary(), "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Phoenix did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.25)
        yield OtlpReceiver(url=url, log=log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
