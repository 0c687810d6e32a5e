"""Attacks on secrets through definitions, replayed against a real shared ``stigmer server``.

A ``user`` token (mallory) tries to read a secret an admin set, by declaring it in a workflow, an
agent, an Environment or an MCP server, by overwriting the admin's definitions, by overwriting
or granting the secret itself. Each attempt must be refused, and nothing recorded may hold the
value in any encoding. A grant makes the use possible (the documented boundary: whoever may author
a definition that uses a secret can read it); a revocation takes it back for runs started later.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from stigmer.backend.cloud import CloudBackend
from stigmer.core import NotFound, PermissionDenied, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2, secret_pb2
from stigmer.testing import cli_env

from .conftest import SharedServer, find_leaks

SECRET = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx-admin-only"

EXFIL_WORKFLOW = """
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {{name: {name}}}
spec:
  document: {{dsl: 1.0.0, namespace: attack, name: {name}, version: 1.0.0}}
  use: {{secrets: [{secret}]}}
  do:
    - grab:
        set: {{stolen: '${{ $secrets.{secret} | @base64 }}'}}
"""

ENV_AND_AGENT = """
apiVersion: stigmer.ai/v1
kind: Environment
metadata: {{name: {name}-env}}
spec: {{secrets: [{secret}]}}
"""

AGENT = """
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {{name: {name}}}
spec:
  instructions: hi
  model: {{provider: openai, name: m}}
  environments: [{env}]
"""

MCP = """
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {{name: {name}}}
spec:
  http: {{url: 'http://127.0.0.1:9/mcp', headers: {{Authorization: '${{ "Bearer " + $secrets.{secret} }}'}}}}
  secrets: [{secret}]
"""


def resource(text: str) -> svc.ApplyRequest:
    [loaded] = parse_manifest(text, "attack.yaml")
    return svc.ApplyRequest(resource=loaded.resource)  # type: ignore[arg-type]


async def run(client: CloudBackend, name: str, kind: str = "Workflow") -> execution_pb2.Execution:
    created = await client.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind=kind, name=name))
        )
    )
    return await finished(client, created.metadata.id)


async def finished(client: CloudBackend, execution_id: str, timeout: float = 60) -> execution_pb2.Execution:
    terminal = (execution_pb2.PHASE_SUCCEEDED, execution_pb2.PHASE_FAILED, execution_pb2.PHASE_CANCELLED)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        execution = await client.get_execution(svc.GetExecutionRequest(id=execution_id))
        if execution.status.phase in terminal:
            return execution
        assert asyncio.get_running_loop().time() < deadline, f"{execution_id} did not finish"
        await asyncio.sleep(0.1)


async def admin_secret(server: SharedServer) -> CloudBackend:
    admin = server.admin()
    await admin.set_secret(svc.SetSecretRequest(name="OPENAI_KEY", value=SECRET))
    return admin


async def test_a_user_cannot_declare_an_admin_secret_anywhere(shared_server: SharedServer) -> None:
    admin = await admin_secret(shared_server)
    user = shared_server.user()
    attempts = [
        EXFIL_WORKFLOW.format(name="steal", secret="OPENAI_KEY"),
        ENV_AND_AGENT.format(name="mine", secret="OPENAI_KEY"),
        MCP.format(name="mine-mcp", secret="OPENAI_KEY"),
    ]
    for text in attempts:
        with pytest.raises(PermissionDenied, match=r"OPENAI_KEY.*not granted to token 'mallory'"):
            await user.apply(resource(text))
    # An Environment the admin wrote grants the secret to agents; a user's agent naming it is refused.
    await admin.apply(resource(ENV_AND_AGENT.format(name="prod", secret="OPENAI_KEY")))
    with pytest.raises(PermissionDenied, match="OPENAI_KEY"):
        await user.apply(resource(AGENT.format(name="spy", env="prod-env")))
    for kind, name in (("Workflow", "steal"), ("Environment", "mine-env"), ("Agent", "spy")):
        with pytest.raises(NotFound):
            await user.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind=kind, name=name)))
    await asyncio.to_thread(shared_server.process.stop)
    assert find_leaks(SECRET, paths=shared_server.recorded()) == []


async def test_a_user_cannot_take_over_the_secret_itself(shared_server: SharedServer) -> None:
    await admin_secret(shared_server)
    user = shared_server.user()
    with pytest.raises(PermissionDenied, match="belongs to the admins"):
        await user.set_secret(svc.SetSecretRequest(name="OPENAI_KEY", value="attacker-controlled"))
    with pytest.raises(PermissionDenied, match="belongs to the admins"):
        await user.delete_secret(svc.DeleteSecretRequest(name="OPENAI_KEY"))
    with pytest.raises(PermissionDenied, match="belongs to the admins"):
        await user.grant_secret(
            svc.GrantSecretRequest(name="OPENAI_KEY", grant=secret_pb2.SecretGrant(token_name="mallory"))
        )
    with pytest.raises(PermissionDenied):
        await shared_server.runner().set_secret(svc.SetSecretRequest(name="OPENAI_KEY", value="x"))
    listed = await user.list_secrets(svc.ListSecretsRequest())
    assert [(s.name, s.owner, len(s.grants)) for s in listed.secrets] == [("OPENAI_KEY", "", 0)]


async def test_overwriting_an_admin_definition_makes_it_the_users(shared_server: SharedServer) -> None:
    admin = await admin_secret(shared_server)
    user = shared_server.user()
    applied = await admin.apply(resource(EXFIL_WORKFLOW.format(name="report", secret="OPENAI_KEY")))
    assert applied.resource.workflow.metadata.author == "admin"
    # Running the admin's definition as it is is fine: the author holds the secret; the output is masked.
    done = await run(user, "report")
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    # Rewriting it to exfiltrate needs a grant the user does not have.
    changed = EXFIL_WORKFLOW.format(name="report", secret="OPENAI_KEY").replace("stolen", "mine")
    with pytest.raises(PermissionDenied, match="not granted to token 'mallory'"):
        await user.apply(resource(changed))
    # Rewriting it without secrets is allowed, and the new version is the user's.
    harmless = changed.replace("  use: {secrets: [OPENAI_KEY]}\n", "").replace("$secrets.OPENAI_KEY", '"x"')
    rewritten = await user.apply(resource(harmless))
    assert rewritten.resource.workflow.metadata.author == "mallory"
    got = await admin.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Workflow", name="report")))
    assert (got.workflow.metadata.version, got.workflow.metadata.author) == (2, "mallory")
    versions = await admin.list_versions(
        svc.ListVersionsRequest(ref=meta_pb2.ResourceRef(kind="Workflow", name="report"))
    )
    assert [v.resource.workflow.metadata.author for v in versions.versions] == ["mallory", "admin"]
    # A run pinned to the admin's version 1 still works; the user cannot pin a version to bypass grants
    # either, since version 1 is the admin's and its use is the admin's intent.
    await asyncio.to_thread(shared_server.process.stop)
    assert find_leaks(SECRET, paths=shared_server.recorded()) == []


async def test_grant_then_revoke(shared_server: SharedServer) -> None:
    admin = await admin_secret(shared_server)
    user = shared_server.user()
    meta = await admin.grant_secret(
        svc.GrantSecretRequest(name="OPENAI_KEY", grant=secret_pb2.SecretGrant(token_name="mallory"))
    )
    assert [g.token_name for g in meta.grants] == ["mallory"]
    applied = await user.apply(resource(EXFIL_WORKFLOW.format(name="granted", secret="OPENAI_KEY")))
    assert applied.resource.workflow.metadata.author == "mallory"
    done = await run(user, "granted")
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    await admin.revoke_secret(
        svc.RevokeSecretRequest(name="OPENAI_KEY", grant=secret_pb2.SecretGrant(token_name="mallory"))
    )
    with pytest.raises(PermissionDenied, match=r"OPENAI_KEY.*its author 'mallory'"):
        await run(user, "granted")
    # A grant to a role counts for every token of the role.
    await admin.grant_secret(
        svc.GrantSecretRequest(name="OPENAI_KEY", grant=secret_pb2.SecretGrant(role="user"))
    )
    assert (await run(user, "granted")).status.phase == execution_pb2.PHASE_SUCCEEDED


async def test_a_users_own_secret_is_theirs(shared_server: SharedServer, tmp_path: Path) -> None:
    user = shared_server.user()
    await user.set_secret(svc.SetSecretRequest(name="MY_KEY", value="mallory-own-value-123"))
    await user.apply(resource(EXFIL_WORKFLOW.format(name="own", secret="MY_KEY")))
    assert (await run(user, "own")).status.phase == execution_pb2.PHASE_SUCCEEDED
    from stigmer.server import TokenStore

    store = TokenStore(database_url=shared_server.process.database_url)
    other = store.create("user", "eve").token
    store.close()
    eve = shared_server.client(other)
    with pytest.raises(PermissionDenied, match=r"MY_KEY.*token 'eve'"):
        await eve.apply(resource(EXFIL_WORKFLOW.format(name="eves", secret="MY_KEY")))
    with pytest.raises(PermissionDenied, match="belongs to token 'mallory'"):
        await eve.set_secret(svc.SetSecretRequest(name="MY_KEY", value="overwrite"))


def test_grants_from_the_cli(shared_server_sync: SharedServer, tmp_path: Path) -> None:
    server = shared_server_sync
    homes: dict[str, Path] = {}

    def cli(*args: str, token: str = server.admin_token, stdin: str = "") -> subprocess.CompletedProcess[str]:
        home = homes.get(token)
        if home is None:
            home = homes[token] = tmp_path / f"home{len(homes)}"
            home.mkdir()
            login = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "stigmer.cli",
                    "login",
                    "--endpoint",
                    server.endpoint,
                    "--token",
                    token,
                ],
                capture_output=True,
                text=True,
                env=cli_env(home),
                timeout=60,
            )
            assert login.returncode == 0, login.stderr
        return subprocess.run(
            [sys.executable, "-m", "stigmer.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=cli_env(home),
            timeout=60,
        )

    assert cli("secret", "set", "OPENAI_KEY", stdin=SECRET).returncode == 0
    granted = cli("secret", "grant", "OPENAI_KEY", "--to", "mallory")
    assert granted.returncode == 0, granted.stderr
    assert "granted to mallory" in granted.stdout
    assert cli("secret", "grant", "OPENAI_KEY", "--role", "runner").returncode == 0
    listed = cli("secret", "list")
    assert "(admins)" in listed.stdout and "role:runner, mallory" in listed.stdout, listed.stdout
    usage = cli("secret", "grant", "OPENAI_KEY")
    assert usage.returncode == 2 and "--to TOKEN_NAME or --role ROLE" in usage.stderr
    refused = cli("secret", "grant", "OPENAI_KEY", "--to", "eve", token=server.user_token)
    assert refused.returncode == 1 and "belongs to the admins" in refused.stderr
    assert cli("secret", "revoke", "OPENAI_KEY", "--to", "mallory").returncode == 0
    assert "mallory" not in cli("secret", "list").stdout
