"""secrets: 10,000 encrypt + decrypt of 1 KB secrets through the secret store's sealing layer
(stigmer.backend.local: name-bound AES-256-GCM with a fresh nonce, stored format, UTF-8)
vs raw AES-GCM on the same data.

Run: uv run python benchmarks/secrets.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `secrets`: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from stigmer.backend.local import LocalBackend  # noqa: E402
from stigmer.backend.local._crypto import SecretBox  # noqa: E402
from stigmer.backend.local.tables._secrets import open_secret, seal_secret  # noqa: E402

N = int(os.environ.get("STIGMER_BENCH_N", "10000"))
TARGET = 20.0
ROUNDS = 5


def raw(key: bytes, values: list[bytes]) -> float:
    aead = AESGCM(key)
    start = time.perf_counter()
    for i, value in enumerate(values):
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, value, b"GH_TOKEN")
        assert aead.decrypt(nonce, sealed, b"GH_TOKEN") is not None or i < 0
    return time.perf_counter() - start


def store(key: bytes, values: list[str]) -> float:
    box = SecretBox(key)
    start = time.perf_counter()
    for value in values:
        blob = seal_secret(box, "GH_TOKEN", value)
        if open_secret(box, "GH_TOKEN", blob) != value:
            raise AssertionError("round trip changed the value")
    return time.perf_counter() - start


async def end_to_end(home: Path, n: int) -> float:
    """Informational: SetSecret + GetExecutionContext through LocalBackend (SQLite, fsync per write)."""
    from stigmer.proto.v1 import (
        agent_pb2,
        meta_pb2,
        resource_pb2,
    )
    from stigmer.proto.v1 import (
        backend_service_pb2 as svc,
    )
    from stigmer.proto.v1 import (
        execution_pb2 as ex,
    )

    backend = LocalBackend(home=home, master_key=os.urandom(32))
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bot"), spec=agent_pb2.AgentSpec(secrets=["GH_TOKEN"])
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot"))
        )
    )
    eid = run.metadata.id
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, phase=ex.PHASE_RUNNING)
    )
    value = "x" * 1024
    start = time.perf_counter()
    for _ in range(n):
        await backend.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value=value))
        await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    elapsed = time.perf_counter() - start
    await backend.close()
    return elapsed


def main() -> int:
    key = os.urandom(32)
    text = [os.urandom(512).hex() for _ in range(N)]  # 1 KB each
    data = [t.encode() for t in text]
    base = ours = 0.0
    size = N // ROUNDS
    for r in range(ROUNDS):  # alternate, so load from other processes hits both alike
        part = slice(r * size, (r + 1) * size)
        base += raw(key, data[part])
        ours += store(key, text[part])
    print(f"secrets: raw AES-GCM {N} encrypt+decrypt of 1 KB: {base:.3f} s ({N / base:,.0f}/s)")
    print(f"secrets: secret store sealing {N} encrypt+decrypt of 1 KB: {ours:.3f} s ({N / ours:,.0f}/s)")
    with tempfile.TemporaryDirectory() as tmp:
        n = 500
        e2e = asyncio.run(end_to_end(Path(tmp), n))
    print(
        f"secrets: (info) LocalBackend SetSecret + GetExecutionContext x{n}: {e2e:.3f} s ({n / e2e:,.0f}/s)"
    )
    ratio = ours / base
    print(f"secrets: ratio={ratio:.2f} target<={TARGET:g} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
