"""Attacks on the web console (``/console`` on the server's HTTP listener), each against a real
``stigmer server`` process: forms posted without (or with a wrong) CSRF token, the session
cookie's flags (HttpOnly, SameSite=Strict, Secure under TLS), a secret's value in any page (also
when the model repeats it into the run), a user reaching the admin's token pages, HTML injection
through labels, and the login's redirect target."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.testing import ScriptedLLM, free_port, self_signed_cert, text, wait_for_port

from .conftest import SharedServer, find_leaks, start_shared_server

SECRET = "sk-attack-console-9e8d7c6b5a"

pytestmark = pytest.mark.timeout(120)


@pytest_asyncio.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[SharedServer, str]]:
    port = free_port()
    server = await start_shared_server(tmp_path / "server-home", "--http-listen", f"127.0.0.1:{port}")
    await asyncio.to_thread(wait_for_port, port)
    try:
        yield server, f"http://127.0.0.1:{port}/console"
    finally:
        await asyncio.to_thread(server.process.stop)


async def log_in(client: httpx.AsyncClient, url: str, token: str) -> str:
    """Log ``client`` in with ``token``; the session's CSRF token (read from a page's form)."""
    form = await client.get(f"{url}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = await client.post(f"{url}/login", data={"csrf": csrf.group(1), "token": token})
    assert answer.status_code == 303, answer.text
    page = await client.get(f"{url}/runs")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


async def pending_run(server: SharedServer, labels: dict[str, str] | None = None) -> str:
    backend = server.admin()
    try:
        agent = agent_pb2.Agent(
            metadata=meta_pb2.Metadata(name="idle"), spec=agent_pb2.AgentSpec(instructions="x")
        )
        await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
        ex = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="idle")),
                labels=labels or {},
                dispatch_by_caller=True,  # nobody runs it: it stays pending
            )
        )
        return str(ex.metadata.id)
    finally:
        await backend.close()


async def test_forms_without_the_csrf_token_are_refused(console: tuple[SharedServer, str]) -> None:
    server, url = console
    run_id = await pending_run(server)
    async with httpx.AsyncClient(timeout=30) as client:
        csrf = await log_in(client, url, server.admin_token)
        for data in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}):
            refused = await client.post(f"{url}/runs/{run_id}/cancel", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
            refused = await client.post(f"{url}/tokens", data={**data, "role": "admin", "name": "evil"})
            assert refused.status_code == 403
        page = await client.get(f"{url}/runs/{run_id}")
        assert 'id="phase">PENDING' in page.text  # not cancelled
        tokens = await client.get(f"{url}/tokens")
        assert "evil" not in tokens.text  # no token created
        # With the session's token the same form works: the check is the token, nothing else.
        done = await client.post(f"{url}/runs/{run_id}/cancel", data={"csrf": csrf})
        assert done.status_code == 303
        assert 'id="phase">CANCELLED' in (await client.get(f"{url}/runs/{run_id}")).text
    # A login form posted from elsewhere (no login cookie) is refused too.
    async with httpx.AsyncClient(timeout=30) as stranger:
        refused = await stranger.post(f"{url}/login", data={"csrf": "x", "token": server.admin_token})
        assert refused.status_code == 403 and "set-cookie" not in refused.headers


async def test_session_cookie_flags_and_headers(console: tuple[SharedServer, str]) -> None:
    server, url = console
    async with httpx.AsyncClient(timeout=30) as client:
        form = await client.get(f"{url}/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        answer = await client.post(f"{url}/login", data={"csrf": csrf.group(1), "token": server.admin_token})
        cookies = [c for c in answer.headers.get_list("set-cookie") if c.startswith("stigmer_console=")]
        assert len(cookies) == 1
        flags = [part.strip().lower() for part in cookies[0].split(";")]
        assert "httponly" in flags and "samesite=strict" in flags and "path=/console/" in flags
        assert "secure" not in flags  # plain HTTP on loopback: a Secure cookie would never come back
        session_id = cookies[0].split(";")[0].split("=", 1)[1]
        assert server.admin_token not in answer.headers.get("set-cookie", "")  # the token stays server-side
        assert session_id and session_id not in server.admin_token
        page = await client.get(f"{url}/runs")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        # logging out ends the session on the server: the old cookie no longer works
        out_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert out_csrf
        await client.post(f"{url}/logout", data={"csrf": out_csrf.group(1)})
    async with httpx.AsyncClient(timeout=30, cookies={"stigmer_console": session_id}) as replay:
        assert (await replay.get(f"{url}/runs")).status_code == 303


async def test_session_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    server = await start_shared_server(
        tmp_path / "server-home",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--http-listen",
        f"127.0.0.1:{port}",
    )
    try:
        await asyncio.to_thread(wait_for_port, port)
        async with httpx.AsyncClient(
            timeout=30, verify=ssl.create_default_context(cafile=str(cert))
        ) as client:
            url = f"https://127.0.0.1:{port}/console"
            form = await client.get(f"{url}/login")
            login_cookie = form.headers["set-cookie"].lower()
            assert "secure" in login_cookie and "httponly" in login_cookie
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            answer = await client.post(
                f"{url}/login", data={"csrf": csrf.group(1), "token": server.admin_token}
            )
            [cookie] = [c for c in answer.headers.get_list("set-cookie") if c.startswith("stigmer_console=")]
            assert "secure" in [p.strip().lower() for p in cookie.split(";")]
    finally:
        await asyncio.to_thread(server.process.stop)


async def test_a_user_cannot_reach_the_token_pages(console: tuple[SharedServer, str]) -> None:
    server, url = console
    async with httpx.AsyncClient(timeout=30) as client:
        csrf = await log_in(client, url, server.user_token)
        listing = await client.get(f"{url}/tokens")
        assert listing.status_code == 403 and "requires the admin role" in listing.text
        admin_id = server.admin_token.split(".", 1)[0]
        assert admin_id not in listing.text  # no other token is listed
        created = await client.post(f"{url}/tokens", data={"csrf": csrf, "role": "admin", "name": "escalate"})
        assert created.status_code == 403
        revoked = await client.post(f"{url}/tokens/{admin_id}/revoke", data={"csrf": csrf})
        assert revoked.status_code == 403
    # nothing happened: the admin token still works, and no admin token named "escalate" exists
    async with httpx.AsyncClient(timeout=30) as admin:
        await log_in(admin, url, server.admin_token)
        page = await admin.get(f"{url}/tokens")
        assert page.status_code == 200 and "escalate" not in page.text


async def test_no_secret_value_in_any_page(console: tuple[SharedServer, str]) -> None:
    server, url = console
    with ScriptedLLM() as llm:
        backend = server.admin()
        try:
            await backend.set_secret(svc.SetSecretRequest(name="API_KEY", value=SECRET))
            agent = agent_pb2.Agent(
                metadata=meta_pb2.Metadata(name="leaky"),
                spec=agent_pb2.AgentSpec(
                    instructions="Repeat what you know.",
                    model=agent_pb2.ModelConfig(
                        provider="openai-compatible", name="stand-in", base_url=llm.base_url
                    ),
                    secrets=["API_KEY"],
                ),
            )
            await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
            llm.add(text(f"the key is {SECRET}"))
            ex = await backend.create_execution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(
                        target=meta_pb2.ResourceRef(kind="Agent", name="leaky"), message="what is the key?"
                    )
                )
            )
            run_id = ex.metadata.id
            for _ in range(200):
                ex = await backend.get_execution(svc.GetExecutionRequest(id=run_id))
                if ex.status.phase in (execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED):
                    break
                await asyncio.sleep(0.2)
            assert ex.status.phase == execution_pb2.PHASE_SUCCEEDED, ex.status.error
        finally:
            await backend.close()
    pages: list[str] = []
    async with httpx.AsyncClient(timeout=30) as client:
        await log_in(client, url, server.admin_token)
        for path in (
            "/runs",
            f"/runs/{run_id}",
            f"/runs/{run_id}?partial=1",
            "/secrets",
            "/definitions/agent/leaky",
            "/tokens",
        ):
            answer = await client.get(url + path)
            assert answer.status_code == 200, path
            pages.append(answer.text)
    assert "the key is" in pages[1]  # the model's answer is shown, the value masked
    assert "API_KEY" in pages[3]
    assert find_leaks(SECRET, texts=pages) == []


async def test_labels_cannot_inject_html(console: tuple[SharedServer, str]) -> None:
    server, url = console
    run_id = await pending_run(server, {"note": "<script>alert(1)</script>"})
    async with httpx.AsyncClient(timeout=30) as client:
        await log_in(client, url, server.admin_token)
        for path in ("/runs", f"/runs/{run_id}"):
            page = (await client.get(url + path)).text
            assert "<script>alert(1)</script>" not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_login_redirects_only_inside_the_console(console: tuple[SharedServer, str]) -> None:
    server, url = console
    for target in ("https://evil.example/", "//evil.example/x", "/console/../../evil", "/\\evil.example"):
        async with httpx.AsyncClient(timeout=30) as client:
            form = await client.get(f"{url}/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            answer = await client.post(
                f"{url}/login", data={"csrf": csrf.group(1), "token": server.admin_token, "next": target}
            )
            assert answer.status_code == 303
            location = answer.headers["location"]
            assert location.startswith("/console/") and "evil" not in location, (target, location)
