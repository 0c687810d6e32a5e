"""``run.script.source``: a script fetched from an endpoint (the DSL's ``externalResource``)
instead of inline ``code``, through the HTTP effect (authentication included), size-limited, then
run as inline scripts are, under the same ``run`` capability (a local HTTP stand-in serves it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import InProcessHost, WorkflowError, WorkflowRunner, load_workflow, run_workflow
from stigmer.runner.workflow._grpc import MAX_RESOURCE_BYTES
from stigmer.testing import HttpWorld, Request, Response

SCRIPT = b"import sys\nprint('hello ' + ' '.join(sys.argv[1:]))\n"


@pytest.fixture
def site() -> Iterator[HttpWorld]:
    def handle(request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer s3cret":
            return Response(status=401)
        if request.path == "/scripts/hello.py":
            return Response(body=SCRIPT, content_type="text/x-python")
        if request.path == "/scripts/huge.py":
            return Response(body=b"#" * (MAX_RESOURCE_BYTES + 1), content_type="text/x-python")
        return Response(status=404)

    with HttpWorld(handle) as world:
        yield world


def _document(uri: str, token: str = "${ $secrets.TOKEN }") -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "script-source", "version": "0.1.0"},
        "use": {"secrets": ["TOKEN"]},
        "do": [
            {
                "hello": {
                    "run": {
                        "script": {
                            "language": "python",
                            "source": {
                                "name": "hello",
                                "endpoint": {"uri": uri, "authentication": {"bearer": {"token": token}}},
                            },
                            "arguments": ["${ .who }", "again"],
                        }
                    }
                }
            }
        ],
    }


async def _run(document: dict[str, Any]) -> Any:
    async with InProcessHost(secrets={"TOKEN": "s3cret"}) as host:
        return await run_workflow(load_workflow(document), host, {"who": "world"})


async def test_a_fetched_script_runs_like_inline_code(site: HttpWorld) -> None:
    assert await _run(_document(f"{site.url}/scripts/hello.py")) == "hello world again\n"
    assert site.auth == ["Bearer s3cret"]


async def test_a_script_that_cannot_be_fetched_is_a_communication_error(site: HttpWorld) -> None:
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(f"{site.url}/scripts/missing.py"))
    assert caught.value.type.endswith("/errors/communication")
    assert caught.value.status == 404
    with pytest.raises(WorkflowError) as refused:
        await _run(_document(f"{site.url}/scripts/hello.py", token="wrong"))
    assert refused.value.status == 401


async def test_a_script_over_the_size_limit_is_refused(site: HttpWorld) -> None:
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(f"{site.url}/scripts/huge.py"))
    assert caught.value.type.endswith("/errors/configuration")
    assert f"larger than {MAX_RESOURCE_BYTES} bytes" in str(caught.value.problem["detail"])


async def test_a_fetched_script_needs_the_run_capability_like_inline_code(
    site: HttpWorld, tmp_path: Path
) -> None:
    results = {}
    for allow in (False, True):
        backend = LocalBackend(
            f"sqlite:///{tmp_path / f'{allow}.db'}",
            home=tmp_path / str(allow),
            master_key=b"c" * 32,
            allow_run=allow,
        )
        try:
            name = f"source-{str(allow).lower()}"
            text = (
                f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
                f"  document: {{dsl: 1.0.3, namespace: demo, name: {name}, version: 1.0.0}}\n"
                "  do:\n    - hello:\n        run:\n          script:\n            language: python\n"
                f"            source: {{endpoint: {{uri: '{site.url}/scripts/hello.py', "
                "authentication: {bearer: {token: s3cret}}}}\n"
            )
            for loaded in parse_manifest(text, "test.yaml"):
                await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
            created = await backend.create_execution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
                )
            )
            results[allow] = await WorkflowRunner().execute(backend, created.metadata.id)
        finally:
            await backend.close()
    assert results[False].status.phase == execution_pb2.PHASE_FAILED
    assert results[False].status.error.status == 403
    assert results[False].status.error.detail.startswith("run: script is not allowed on this server")
    assert results[True].status.phase == execution_pb2.PHASE_SUCCEEDED, results[True].status.error
