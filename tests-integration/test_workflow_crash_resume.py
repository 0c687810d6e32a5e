"""A Lite workflow run killed (SIGKILL) mid-task resumes without repeating completed side effects.

The workflow POSTs to a counting endpoint, then calls a slow endpoint, then POSTs to another
counting endpoint. The real ``stigmer run`` process is killed while the slow call is in flight;
``stigmer execution resume`` must finish the run with each completed call made exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import HttpWorld, Request, Response, json_response

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]
WAIT = 60.0  # bound of every wait below (a loaded machine is slow, never this slow)


class Counter(HttpWorld):
    """``/charge``, ``/slow`` and ``/notify`` count their calls (``hits``: the JSON bodies); the
    first ``/slow`` call hangs until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: dict[str, list[Any]] = {"/charge": [], "/slow": [], "/notify": []}
        self.release = threading.Event()

    @property
    def base(self) -> str:
        return self.url

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.hits[path])

    def handle(self, request: Request) -> Response:
        body = request.json()
        if request.target not in self.hits:
            return Response(status=404)
        with self.lock:
            self.hits[request.target].append(body)
            n = len(self.hits[request.target])
        if request.target == "/slow" and n == 1:
            self.release.wait(WAIT)  # the first call hangs until the test lets it go
        return json_response({"n": n, "got": body})


@pytest.fixture
def counter() -> Iterator[Counter]:
    with Counter() as state:
        try:
            yield state
        finally:
            state.release.set()


def _manifest(base: str) -> str:
    return f"""\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: order}}
spec:
  document: {{dsl: 1.0.0, namespace: t, name: order, version: 1.0.0}}
  do:
    - charge:
        call: http
        with:
          method: post
          endpoint: {base}/charge
          body: {{order: '${{ .order }}', amount: '${{ .amount }}'}}
        output:
          as: '${{ {{order: $input.order, charge: .n}} }}'
    - ship:
        call: http
        with:
          method: get
          endpoint: {base}/slow
        output:
          as: '${{ $input + {{shipped: true}} }}'
    - notify:
        call: http
        with:
          method: post
          endpoint: {base}/notify
          body: '${{ {{order: .order, charge: .charge}} }}'
        output:
          as: '${{ $input + {{notified: .n}} }}'
"""


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_a_sigkilled_run_resumes_without_repeating_completed_calls(
    stigmer: StigmerCli, tmp_path: Path, stigmer_env: dict[str, str], counter: Counter
) -> None:
    path = tmp_path / "order.yaml"
    path.write_text(_manifest(counter.base))
    applied = stigmer("apply", "-f", str(path))
    assert applied.returncode == 0, applied.stderr

    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stigmer.cli", "run", "order", "-i", '{"order": "A-17", "amount": 42}'],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=stigmer_env,
        cwd=tmp_path,
    )
    try:
        _wait_for(lambda: counter.count("/slow") == 1 or proc.poll() is not None, "the slow call")
        assert proc.poll() is None, (tmp_path / "run.log").read_text()
        proc.kill()  # SIGKILL in the middle of the second task: no handover, no cleanup
        proc.wait(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=WAIT)
        log.close()
        counter.release.set()  # let the orphaned request finish on the server side
    assert proc.returncode == -9
    assert (counter.count("/charge"), counter.count("/notify")) == (1, 0)

    [listed] = json.loads(stigmer("execution", "list", "-o", "json").stdout)
    assert listed["phase"] == "RUNNING"
    assert [t["name"] for t in listed["tasks"] if t["phase"] == "SUCCEEDED"] == ["charge"]

    resumed = stigmer("execution", "resume", listed["id"], "-o", "json", timeout=WAIT * 2)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["phase"] == "SUCCEEDED"
    done = json.loads(stigmer("execution", "get", listed["id"], "-o", "json").stdout)
    assert done["phase"] == "SUCCEEDED"
    assert done["output"] == {"order": "A-17", "charge": 1, "shipped": True, "notified": 1}

    assert counter.count("/charge") == 1  # the completed side effect was not repeated
    assert counter.count("/notify") == 1
    assert counter.count("/slow") == 2  # the interrupted call ran again
    assert counter.hits["/charge"] == [{"order": "A-17", "amount": 42}]
    assert counter.hits["/notify"] == [{"order": "A-17", "charge": 1}]
