"""Screenshots of the web console's main pages for the docs (docs/console/*.png).

Starts a real `stigmer server` with its HTTP listener in a temporary home, applies an agent (the
stand-in model of stigmer-testing answers it) and a workflow with a `for` loop, runs them (one
run paused for an approval), then opens each page in headless Chromium (Debian's `chromium`,
driven by Playwright) and saves it.

Run: uv run python scripts/console_screenshots.py [--out docs/console]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from stigmer.core import phase_number
from stigmer.sdk import Stigmer
from stigmer.server import ServerProcess
from stigmer.testing import ScriptedLLM, call, chromium, free_port, text, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

MANIFESTS = """
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: planner, labels: {{team: research}}}}
spec:
  description: Plans a piece of work, then reports.
  instructions: Plan the work with write_todos, then answer in one sentence.
  model: {{provider: openai-compatible, name: stand-in, baseUrl: "{base_url}"}}
  tools:
    - {{name: todos, requireApproval: [write_todos]}}
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: nightly-report, labels: {{team: data}}}}
spec:
  document: {{dsl: 1.0.3, namespace: demo, name: nightly-report, version: 1.0.0}}
  input:
    schema:
      format: json
      document:
        type: object
        properties:
          regions: {{type: array, items: {{type: string}}}}
  do:
    - prepare:
        set:
          regions: '${{ .regions }}'
    - each:
        for: {{each: region, in: '${{ .regions }}'}}
        do:
          - collect:
              wait: {{milliseconds: 300}}
          - summarise:
              set:
                region: '${{ $region }}'
    - publish:
        set: {{published: true}}
"""


def wait_phase(client: Stigmer, run_id: str, phases: set[str], timeout: float = 60) -> None:
    wanted = {phase_number(p) for p in phases}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get_execution(run_id).status.phase in wanted:
            return
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not reach {', '.join(sorted(phases))}")


def seed(server: ServerProcess, home: Path, llm: ScriptedLLM, tmp: Path) -> dict[str, str]:
    runs: dict[str, str] = {}
    first = tmp / "v1.yaml"
    first.write_text(MANIFESTS.format(base_url=llm.base_url))
    second = tmp / "v2.yaml"  # a second version of the agent, for the diff
    second.write_text(first.read_text().replace("answer in one sentence", "answer in two sentences"))
    with Stigmer(endpoint=server.endpoint, home=home) as client:
        client.apply(first)
        client.apply(second)
        client.set_secret("OPENAI_API_KEY", "sk-screenshot-not-a-real-key", "the model provider's key")
        done = client.run("nightly-report", input={"regions": ["emea", "apac", "amer"]})
        wait_phase(client, done.id, {"SUCCEEDED", "FAILED"})
        runs["workflow"] = done.id
        llm.add(
            call(
                "write_todos",
                todos=[
                    {"id": "1", "content": "Collect the sales figures", "status": "completed"},
                    {"id": "2", "content": "Compare with last quarter", "status": "in_progress"},
                    {"id": "3", "content": "Write the summary", "status": "pending"},
                ],
            ),
            text("The plan is in place: figures first, then the comparison and the summary."),
        )
        agent = client.run("planner", message="Plan the quarterly sales report.")
        wait_phase(client, agent.id, {"WAITING_APPROVAL"})
        client.execution(agent.id, in_process=False).approve("looks right")
        wait_phase(client, agent.id, {"SUCCEEDED", "FAILED"})
        runs["agent"] = agent.id
        llm.add(call("write_todos", todos=[{"id": "1", "content": "Draft the outline", "status": "pending"}]))
        waiting = client.run("planner", message="Plan the launch announcement.")
        wait_phase(client, waiting.id, {"WAITING_APPROVAL"})
        runs["waiting"] = waiting.id
    return runs


def shoot(url: str, admin: str, runs: dict[str, str], out: Path) -> list[Path]:
    saved: list[Path] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1360, "height": 860}, device_scale_factor=1)
        page = context.new_page()

        def save(name: str, full: bool = False) -> None:
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=full)
            saved.append(path)

        page.goto(f"{url}/login")
        page.fill("#token", "tok_example")
        save("login")
        page.fill("#token", admin)
        page.click("#login")
        page.wait_for_url("**/console/runs")
        save("runs")
        page.goto(f"{url}/runs/{runs['agent']}")
        save("run-agent", full=True)
        page.goto(f"{url}/runs/{runs['waiting']}")
        page.wait_for_selector("#approval")
        save("run-approval")
        page.goto(f"{url}/runs/{runs['workflow']}")
        save("run-workflow", full=True)
        page.goto(f"{url}/definitions/agent/planner?a=1&b=2")
        save("definition", full=True)
        page.goto(f"{url}/secrets")
        save("secrets")
        page.goto(f"{url}/tokens")
        save("tokens")
        context.close()
    return saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM() as llm:
        home = Path(tmp) / "server-home"
        port = free_port()
        server = ServerProcess(
            home=home,
            database_url=f"sqlite:///{home / 'stigmer.db'}",
            args=["--http-listen", f"127.0.0.1:{port}"],
        )
        server.start()
        try:
            wait_for_port(port)
            runs = seed(server, home, llm, Path(tmp))
            admin = (home / "tokens" / "admin").read_text().strip()
            for path in shoot(f"http://127.0.0.1:{port}/console", admin, runs, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
