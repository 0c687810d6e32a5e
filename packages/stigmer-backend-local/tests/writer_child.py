"""Child process of the concurrency and durability tests (run as a script, not collected).

usage: writer_child.py DATABASE_URL EXECUTION_ID COUNT [TAG]
Appends COUNT events (sequence 0 = next) to the execution, one UpdateExecutionStatus each, and
prints the acknowledged sequence number of each, flushed, as soon as the call returns.
"""

from __future__ import annotations

import asyncio
import sys

from stigmer.backend.local import LocalBackend
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex


async def main(url: str, eid: str, count: int, tag: str) -> int:
    backend = LocalBackend(url, home=".", master_key=bytes(32))
    errors = 0
    for i in range(count):
        event = ex.ExecutionEvent(type="log", subject=tag, text=f"{tag}-{i}")
        try:
            out = await backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(execution_id=eid, events=[event])
            )
        except Exception as exc:  # report, keep going: the parent counts errors
            errors += 1
            print(f"ERROR {type(exc).__name__}: {exc}", flush=True)
            continue
        print(f"ACK {out.status.last_sequence} {tag}-{i}", flush=True)
    await backend.close()
    return 1 if errors else 0


if __name__ == "__main__":
    tag = sys.argv[4] if len(sys.argv) > 4 else "w"
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), tag)))
