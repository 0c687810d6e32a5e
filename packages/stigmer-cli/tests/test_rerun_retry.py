"""``stigmer execution rerun|retry`` in a local context (issue 21)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stigmer.testing import HttpWorld, Request, Response, json_response

Cli = Callable[..., Any]


def test_retry_continues_at_the_failed_call_and_rerun_starts_over(cli: Cli, tmp_path: Path) -> None:
    healed = {"3": False}

    def answer(request: Request) -> Response:
        if request.path == "/step/3" and not healed["3"]:
            return json_response({"error": "down"}, status=503)
        return json_response({"ok": request.path})

    with HttpWorld(answer) as world:
        steps = "\n".join(
            f"    - call{n}: {{call: http, with: {{method: get, endpoint: '{world.url}/step/{n}'}}}}"
            for n in range(1, 5)
        )
        manifest = tmp_path / "four.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: four}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: four, version: 1.0.0}\n  do:\n" + steps + "\n"
        )
        assert cli("apply", "-f", str(manifest)).code == 0
        failed = cli("run", "four", "-o", "json")
        assert failed.code == 1
        first = json.loads(failed.out)["id"]
        assert [r.path for r in world.received] == ["/step/1", "/step/2", "/step/3"]

        refused = cli("execution", "rerun", "wex_nope")
        assert refused.code == 1 and "no execution with id 'wex_nope'" in refused.err

        healed["3"] = True
        retried = cli("execution", "retry", first, "-o", "json")
        assert retried.code == 0, retried.err
        data = json.loads(retried.out)
        assert data["phase"] == "SUCCEEDED" and data["resumedFrom"] == first
        assert [r.path for r in world.received][3:] == ["/step/3", "/step/4"]

        again = cli("execution", "retry", data["id"])
        assert again.code == 1 and "only a FAILED or CANCELLED run is retried" in again.err

        rerun = cli("execution", "rerun", data["id"], "-o", "json")
        assert rerun.code == 0, rerun.err
        assert json.loads(rerun.out)["rerunOf"] == data["id"]
        assert [r.path for r in world.received][5:] == ["/step/1", "/step/2", "/step/3", "/step/4"]


def test_retry_asks_for_run_time_secrets_again(cli: Cli, tmp_path: Path) -> None:
    state = {"healed": False}

    def answer(request: Request) -> Response:
        if request.path == "/b" and not state["healed"]:
            return json_response({"error": "down"}, status=503)
        return json_response({"auth": request.headers.get("authorization", "")})

    with HttpWorld(answer) as world:
        header = "{Authorization: '${ \"Bearer \" + $secrets.RT }'}"
        manifest = tmp_path / "authed.yaml"
        manifest.write_text(
            "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: authed}\nspec:\n"
            "  document: {dsl: 1.0.0, namespace: t, name: authed, version: 1.0.0}\n"
            "  use: {secrets: [RT]}\n  do:\n"
            f"    - a: {{call: http, with: {{method: get, endpoint: '{world.url}/a', headers: {header}}}}}\n"
            f"    - b: {{call: http, with: {{method: get, endpoint: '{world.url}/b', headers: {header}}}}}\n"
        )
        secrets = tmp_path / "rt.env"
        secrets.write_text("RT=rt-value-0123456789\n")
        assert cli("apply", "-f", str(manifest)).code == 0
        failed = cli("run", "authed", "--secret-file", str(secrets), "-o", "json")
        first = json.loads(failed.out)["id"]
        state["healed"] = True
        refused = cli("execution", "retry", first)
        assert refused.code == 1
        assert refused.err.strip().splitlines() == [
            f"error: execution {first} was given run-time secret(s) RT, which are not kept after a run "
            f"ends: give them again; `stigmer execution retry {first} --secret NAME`"
        ]
        done = cli("execution", "retry", first, "--secret-file", str(secrets), "-o", "json")
        assert done.code == 0, done.err
        assert json.loads(done.out)["output"] == {"auth": "Bearer ***"}  # sent, and masked in the output
        assert "rt-value-0123456789" not in done.out
