"""The web console in a real headless Chromium (Debian's `chromium`, driven by Playwright) against a
real `stigmer server` process: log in, watch a run progress live, approve a pending tool call,
find runs by filter, a user token refused an admin page, a wrong token refused, and no secret
value in any page. Chromium missing is an error (see stigmer.testing.chromium_path), not a skip."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.sdk import Agent, Model, Stigmer
from stigmer.testing import call, chromium, text

from .conftest import ConsoleServer

pytestmark = pytest.mark.timeout(180)

SECRET_VALUE = "sk-console-browser-7a6b5c4d3e"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def log_in(page: Any, server: ConsoleServer, token: str) -> None:
    page.goto(f"{server.url}/runs")
    assert "/console/login" in page.url  # not logged in: sent to the login page
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url(re.compile(r".*/console/runs.*"))


def apply_planner(server: ConsoleServer) -> None:
    agent = Agent(
        "planner",
        instructions="Plan the work, then say so.",
        model=Model("openai-compatible", "stand-in", base_url=server.llm.base_url),
        tools=[{"name": "todos", "requireApproval": ["write_todos"]}],
    )
    with Stigmer(endpoint=server.process.endpoint, home=server.home) as client:
        client.apply(agent)


def test_a_wrong_token_cannot_log_in(console_server: ConsoleServer, page: Any) -> None:
    page.goto(f"{console_server.url}/runs")
    assert "/console/login" in page.url
    page.fill("#token", "stg_nope.not-a-real-token")
    page.click("#login")
    assert page.inner_text("#login-error") == "invalid or revoked token"
    assert "/console/login" in page.url
    page.goto(f"{console_server.url}/runs")
    assert "/console/login" in page.url  # still not logged in
    assert not [c for c in page.context.cookies() if c["name"] == "stigmer_console"]


def test_watch_a_run_live_and_approve_its_tool_call(console_server: ConsoleServer, page: Any) -> None:
    apply_planner(console_server)
    console_server.llm.add(
        call("write_todos", todos=[{"id": "1", "content": "Write the report", "status": "pending"}]),
        text("The plan is written."),
    )
    log_in(page, console_server, console_server.admin)
    page.goto(f"{console_server.url}/definitions/agent/planner")
    assert "kind: Agent" in page.inner_text("#manifest")
    page.fill("#run-message", "Plan the quarterly report")
    page.click("#run")
    page.wait_for_url(re.compile(r".*/console/runs/aex_[0-9a-z]+$"))
    run_id = page.url.rsplit("/", 1)[-1]
    page.evaluate("window.__stillThisPage = true")  # a reload or navigation would drop it
    # The page updates itself: the run reaches the approval without anyone reloading.
    page.wait_for_selector("#approval")
    assert page.inner_text("#phase") == "WAITING_APPROVAL"
    assert page.evaluate("window.__stillThisPage") is True
    assert "write_todos" in page.inner_text("#approval")
    assert "Write the report" in page.inner_text("#approval")
    page.fill("#approve-reason", "looks right")
    page.click("#approve")
    page.wait_for_url(re.compile(rf".*/console/runs/{run_id}$"))
    page.locator("#phase", has_text="SUCCEEDED").wait_for()
    conversation = page.inner_text("#conversation")
    assert "Plan the quarterly report" in conversation
    assert "The plan is written." in conversation
    assert "Write the report" in page.inner_text("main")  # the todo list
    events = page.inner_text("#events")
    assert "approval.resolved" in events and "tool.result" in events
    # The run appears in the list, which shows it as succeeded.
    page.goto(f"{console_server.url}/runs?target=agent/planner")
    row = page.locator(f"tr[data-run='{run_id}']")
    assert "SUCCEEDED" in row.inner_text()


def _create(server: ConsoleServer, agent: str, labels: dict[str, str]) -> str:
    # Created without dispatch (the test plays the caller that would start it): it stays pending.
    ex = server.call(
        "create_execution",
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(
                target=meta_pb2.ResourceRef(kind="Agent", name=agent), message="hi"
            ),
            labels=labels,
            dispatch_by_caller=True,
        ),
    )
    return str(ex.metadata.id)


def test_find_a_run_by_filter(console_server: ConsoleServer, page: Any) -> None:
    apply_planner(console_server)
    nightly = _create(console_server, "planner", {"team": "data", "stigmer.ai/schedule": "nightly"})
    other = _create(console_server, "planner", {"team": "web"})
    log_in(page, console_server, console_server.admin)
    page.fill("input[name=label]", "team=data")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r".*label=team%3Ddata.*"))
    listed = page.inner_text("table.runs")
    assert nightly in listed and other not in listed
    page.goto(f"{console_server.url}/runs")
    page.fill("input[name=schedule]", "nightly")
    page.select_option("select[name=phase]", "PENDING")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r".*schedule=nightly.*"))
    listed = page.inner_text("table.runs")
    assert nightly in listed and other not in listed
    page.goto(f"{console_server.url}/runs?phase=SUCCEEDED&schedule=nightly")
    assert nightly not in page.inner_text("table.runs")
    # The list is live: a new run matching the filter shows up without a reload.
    page.goto(f"{console_server.url}/runs?label=team%3Ddata")
    page.evaluate("window.__stillThisPage = true")
    later = _create(console_server, "planner", {"team": "data"})
    page.wait_for_selector(f"tr[data-run='{later}']")
    assert page.evaluate("window.__stillThisPage") is True


def test_a_user_token_cannot_manage_tokens(console_server: ConsoleServer, page: Any) -> None:
    log_in(page, console_server, console_server.user)
    assert "mallory · user" in page.inner_text("header")
    assert page.locator("nav a", has_text="Tokens").count() == 0
    answer = page.goto(f"{console_server.url}/tokens")
    assert answer is not None and answer.status == 403
    assert "requires the admin role" in page.inner_text("#call-error")


def test_an_admin_creates_and_revokes_a_token(console_server: ConsoleServer, page: Any) -> None:
    log_in(page, console_server, console_server.admin)
    page.goto(f"{console_server.url}/tokens")
    page.fill("#token-name", "ci-bot")
    page.select_option("#token-role", "user")
    page.click("#create-token")
    token = page.inner_text("#new-token").strip()
    assert token.startswith("tok_")
    page.goto(f"{console_server.url}/tokens")
    assert token not in page.content()  # shown once only
    row = page.locator("tr", has_text="ci-bot")
    row.locator("button", has_text="Revoke").click()
    page.wait_for_url(re.compile(r".*/console/tokens$"))
    assert "revoked" in page.locator("tr", has_text="ci-bot").inner_text()


def test_no_secret_value_in_any_page(console_server: ConsoleServer, page: Any) -> None:
    console_server.call("set_secret", svc.SetSecretRequest(name="OPENAI_KEY", value=SECRET_VALUE))
    apply_planner(console_server)
    run_id = _create(console_server, "planner", {"secret": "used"})
    log_in(page, console_server, console_server.admin)
    pages = {}
    for path in (
        "/runs",
        f"/runs/{run_id}",
        "/secrets",
        "/definitions/agent",
        "/definitions/agent/planner",
        "/definitions/environment",
        "/tokens",
    ):
        page.goto(console_server.url + path)
        pages[path] = page.content()
    assert "OPENAI_KEY" in pages["/secrets"]
    leaked = [path for path, html in pages.items() if SECRET_VALUE in html]
    assert leaked == []
