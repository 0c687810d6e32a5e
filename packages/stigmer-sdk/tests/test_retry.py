"""Re-run and retry of finished executions (issue 21), in Lite against a real store and a real
HTTP stand-in that counts the calls."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from stigmer.core import FailedPrecondition
from stigmer.sdk import ExecutionFailed, Stigmer
from stigmer.testing import HttpWorld, Request, Response, json_response


class Flaky:
    """Answers /step/N; /step/3 fails until ``healed``."""

    def __init__(self) -> None:
        self.healed = False
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        if request.path == "/step/3" and not self.healed:
            return json_response({"error": "down"}, status=503)
        return json_response({"step": request.path})


def four_calls(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Workflow",
        "metadata": {"name": "four"},
        "spec": {
            "document": {"dsl": "1.0.0", "namespace": "t", "name": "four", "version": "1.0.0"},
            "do": [
                {f"call{n}": {"call": "http", "with": {"method": "get", "endpoint": f"{url}/step/{n}"}}}
                for n in range(1, 5)
            ],
        },
    }


def calls(world: HttpWorld) -> list[str]:
    return [r.path for r in world.received]


def test_retry_repeats_none_of_the_completed_calls(client: Stigmer) -> None:
    flaky = Flaky()
    with HttpWorld(flaky) as world:
        client.apply(four_calls(world.url))
        first = client.run("four", input={"order": 7})
        with pytest.raises(ExecutionFailed):
            first.result(timeout=60)
        assert calls(world) == ["/step/1", "/step/2", "/step/3"]
        flaky.healed = True
        retried = client.retry(first.id)
        retried.result(timeout=60)
        assert calls(world) == ["/step/1", "/step/2", "/step/3", "/step/3", "/step/4"]
        again = client.get_execution(retried.id)
        assert again.spec.resumed_from == first.id
        assert again.spec.target_version == client.get_execution(first.id).spec.target_version
        # the failed run stays as it ended
        assert client.get_execution(first.id).status.phase == 5  # FAILED


def test_rerun_starts_over_with_the_same_input(client: Stigmer) -> None:
    flaky = Flaky()
    flaky.healed = True
    with HttpWorld(flaky) as world:
        client.apply(four_calls(world.url))
        first = client.run("four", input={"order": 7})
        first.result(timeout=60)
        rerun = client.rerun(first.id)
        rerun.result(timeout=60)
        assert len(world.received) == 8  # all four calls again
        stored = client.get_execution(rerun.id)
        assert stored.spec.rerun_of == first.id and not stored.spec.resumed_from
        assert stored.spec.input == client.get_execution(first.id).spec.input


def test_retry_refuses_a_run_that_succeeded(client: Stigmer) -> None:
    flaky = Flaky()
    flaky.healed = True
    with HttpWorld(flaky) as world:
        client.apply(four_calls(world.url))
        first = client.run("four")
        first.result(timeout=60)
        with pytest.raises(FailedPrecondition, match="only a FAILED or CANCELLED run is retried"):
            client.retry(first.id)


def test_a_retry_needs_the_run_time_secrets_given_again(client: Stigmer) -> None:
    seen: list[str] = []
    state = {"healed": False}

    def answer(request: Request) -> Response:
        seen.append(request.headers.get("authorization", ""))
        if request.path == "/b" and not state["healed"]:
            return json_response({"error": "down"}, status=503)
        return json_response({"ok": True})

    with HttpWorld(answer) as world:
        call = {"method": "get", "headers": {"Authorization": '${ "Bearer " + $secrets.RT_TOKEN }'}}
        client.apply(
            {
                "apiVersion": "stigmer.ai/v1",
                "kind": "Workflow",
                "metadata": {"name": "authed"},
                "spec": {
                    "document": {"dsl": "1.0.0", "namespace": "t", "name": "authed", "version": "1.0.0"},
                    "use": {"secrets": ["RT_TOKEN"]},
                    "do": [
                        {"a": {"call": "http", "with": {**call, "endpoint": f"{world.url}/a"}}},
                        {"b": {"call": "http", "with": {**call, "endpoint": f"{world.url}/b"}}},
                    ],
                },
            }
        )
        first = client.run("authed", secrets={"RT_TOKEN": "tok-runtime-1234567"})
        with pytest.raises(ExecutionFailed):
            first.result(timeout=60)
        state["healed"] = True
        # run-time secrets are not kept after a run ends: the retry needs them again
        with pytest.raises(FailedPrecondition, match=r"run-time secret\(s\) RT_TOKEN, which are not kept"):
            client.retry(first.id)
        retried = client.retry(first.id, secrets={"RT_TOKEN": "tok-runtime-1234567"})
        retried.result(timeout=60)
    assert seen == ["Bearer tok-runtime-1234567"] * 3  # a, b (failed), b again
    assert "RT_TOKEN" in client.get_execution(retried.id).spec.secret_refs
