"""Retry and re-run (issue 21) copy a run's run-time secrets into the new run: a ``user`` token
(mallory) must not get them by retrying or re-running a run another token started with them."""

from __future__ import annotations

import pytest
from stigmer.core import PermissionDenied, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

from .conftest import SharedServer, find_leaks

SECRET = "rt-secret-of-the-admin-6f1c2d9e"
FLOW = """
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: uses-token}
spec:
  document: {dsl: 1.0.0, namespace: attack, name: uses-token, version: 1.0.0}
  do:
    - fail: {raise: {error: {type: https://example.com/boom, status: 500, title: boom}}}
"""


async def test_a_user_cannot_retry_or_rerun_a_run_given_another_tokens_secrets(
    shared_server: SharedServer,
) -> None:
    admin, user = shared_server.admin(), shared_server.user()
    try:
        for loaded in parse_manifest(FLOW, "flow.yaml"):
            await admin.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        target = meta_pb2.ResourceRef(kind="Workflow", name="uses-token")
        run = await admin.create_execution(
            svc.CreateExecutionRequest(
                spec=execution_pb2.ExecutionSpec(target=target), runtime_secrets={"RT_TOKEN": SECRET}
            )
        )
        for link in ("resumed_from", "rerun_of"):
            spec = execution_pb2.ExecutionSpec(target=target)
            setattr(spec, link, run.metadata.id)
            with pytest.raises(PermissionDenied, match="only the token that started it"):
                await user.create_execution(svc.CreateExecutionRequest(spec=spec))
        # the admin who started it may re-run it (its secrets go with it)
        spec = execution_pb2.ExecutionSpec(target=target, rerun_of=run.metadata.id)
        again = await admin.create_execution(svc.CreateExecutionRequest(spec=spec))
        assert "RT_TOKEN" in again.spec.secret_refs
    finally:
        await admin.close()
        await user.close()
    assert find_leaks(SECRET, paths=shared_server.recorded()) == []
