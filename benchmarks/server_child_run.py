"""server_child_run: what running each execution in a child process costs `stigmer server`.

A one-task workflow created through a real `stigmer server` (its own process) runs in a child
process (`python -m stigmer.runner.workflow --execution ID`); the baseline is the same execution
run in-process by the workflow runner through the same server (what the server did before). Both
are measured end to end (create -> SUCCEEDED), median of the rounds: back to back (the spare child
each run leaves behind is still loading when the next arrives) and 1.5 s apart (a spare is ready).
Also prints the cold start of each runner child (imports only) and its RSS.

    uv run python benchmarks/server_child_run.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 7
TARGET_OVERHEAD_S = 1.0  # per workflow execution, over the in-process run

FLOW = {
    "document": {"dsl": "1.0.0", "namespace": "bench", "name": "one", "version": "1.0.0"},
    "do": [{"a": {"set": {"x": 1}}}],
}


def cold_start(imports: str) -> tuple[float, float]:
    """Median seconds and max RSS (MB) of a fresh interpreter importing ``imports``."""
    times: list[float] = []
    rss = 0.0
    for _ in range(5):
        start = time.perf_counter()
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%M", sys.executable, "-c", f"import {imports}"],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        rss = max(rss, int(out.stderr.strip().splitlines()[-1]) / 1024.0)
    return statistics.median(times), rss


async def measure(rounds: int) -> tuple[float, float, float]:
    from stigmer.backend.cloud import CloudBackend
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2, meta_pb2, resource_pb2, workflow_pb2
    from stigmer.runner.workflow import WorkflowRunner
    from stigmer.server import ServerProcess

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server = ServerProcess(home=home, database_url=f"sqlite:///{home / 'stigmer.db'}")
        await asyncio.to_thread(server.start)
        client = CloudBackend(server.endpoint, home=home)
        flow = resource_pb2.Resource(
            workflow=workflow_pb2.Workflow(
                api_version="stigmer.ai/v1", kind="Workflow", metadata=meta_pb2.Metadata(name="one")
            )
        )
        flow.workflow.spec.update(FLOW)
        await client.apply(svc.ApplyRequest(resource=flow))
        runner = WorkflowRunner()

        async def run(child: bool) -> float:
            start = time.perf_counter()
            created = await client.create_execution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(
                        target=meta_pb2.ResourceRef(kind="Workflow", name="one")
                    ),
                    dispatch_by_caller=not child,
                )
            )
            if child:
                async for _ in client.watch_execution(
                    svc.WatchExecutionRequest(execution_id=created.metadata.id)
                ):
                    pass
                done = await client.get_execution(svc.GetExecutionRequest(id=created.metadata.id))
            else:
                done = await runner.execute(client, created.metadata.id)
            assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status
            return time.perf_counter() - start

        await run(False)  # warm up this process's imports
        back_to_back: list[float] = []
        spaced: list[float] = []
        inline: list[float] = []
        for _ in range(rounds):
            back_to_back.append(await run(True))  # the spare started by the previous run is still loading
            inline.append(await run(False))
        for _ in range(rounds):
            await asyncio.sleep(1.5)  # runs that arrive apart find a spare ready
            spaced.append(await run(True))
        await client.close()
        await asyncio.to_thread(server.stop)
    return statistics.median(back_to_back), statistics.median(spaced), statistics.median(inline)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    for name, imports in (
        ("workflow", "stigmer.runner.workflow._main, stigmer.runner.workflow, stigmer.backend.cloud, grpc"),
        (
            "agent",
            "stigmer.runner.agent._worker, stigmer.runner.agent._run, stigmer.backend.cloud, grpc, pydantic_ai",
        ),
    ):
        seconds, rss = cold_start(imports)
        print(f"{name} runner child cold imports: {seconds * 1000:.0f} ms, max RSS {rss:.0f} MB")
    child, spaced, inline = asyncio.run(measure(args.rounds))
    overhead = child - inline
    print(
        f"one-task workflow through the server, child process, back to back: {child * 1000:.0f} ms (median)"
    )
    print(f"the same, runs 1.5 s apart (a spare child is ready):             {spaced * 1000:.0f} ms (median)")
    print(f"the same run in-process through the same server:                 {inline * 1000:.0f} ms (median)")
    verdict = "PASS" if overhead <= TARGET_OVERHEAD_S else "FAIL"
    print(
        f"server_child_run: ratio={child / inline:.1f} overhead={overhead:.2f}s "
        f"target<={TARGET_OVERHEAD_S:.1f}s {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
