"""Secrets at rest: AES-256-GCM bound to the name, master key sources, rotation, no plaintext on disk."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.backend.local._crypto import SecretBox
from stigmer.backend.local._keys import decode_master_key, resolve_master_key
from stigmer.core import FailedPrecondition, InvalidArgument
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2 as ex

PLAIN = "hunter2-plaintext-" + os.urandom(6).hex()
RUNTIME = "runtime-plaintext-" + os.urandom(6).hex()


def test_seal_and_open_round_trip_with_fresh_nonces() -> None:
    box = SecretBox(os.urandom(32))
    a, b = box.seal(PLAIN, "stigmer/secret/A"), box.seal(PLAIN, "stigmer/secret/A")
    assert a != b, "every value gets a fresh nonce"
    assert PLAIN.encode() not in a
    assert box.open(a, "stigmer/secret/A", "secret A") == PLAIN


def test_ciphertext_is_bound_to_its_name() -> None:
    box = SecretBox(os.urandom(32))
    sealed = box.seal(PLAIN, "stigmer/secret/A")
    with pytest.raises(FailedPrecondition, match="cannot decrypt secret B"):
        box.open(sealed, "stigmer/secret/B", "secret B")


def test_wrong_key_is_a_clear_error_never_garbage() -> None:
    sealed = SecretBox(os.urandom(32)).seal(PLAIN, "ctx")
    with pytest.raises(FailedPrecondition, match="master key does not match"):
        SecretBox(os.urandom(32)).open(sealed, "ctx", "secret X")
    with pytest.raises(FailedPrecondition, match="damaged"):
        SecretBox(os.urandom(32)).open(b"\x01short", "ctx", "secret X")


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(InvalidArgument, match="32 bytes"):
        SecretBox(b"short")


def test_master_key_from_environment_base64_or_hex(tmp_path: Path) -> None:
    key = os.urandom(32)
    for text in (
        base64.b64encode(key).decode(),
        key.hex(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
    ):
        got, source = resolve_master_key(tmp_path, {"STIGMER_MASTER_KEY": text})
        assert got == key and source == "STIGMER_MASTER_KEY"
    with pytest.raises(InvalidArgument, match="STIGMER_MASTER_KEY must be 32 bytes"):
        resolve_master_key(tmp_path, {"STIGMER_MASTER_KEY": "too-short"})
    assert not (tmp_path / "master.key").exists()


def test_master_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    key, source = resolve_master_key(tmp_path / "home", {})
    path = tmp_path / "home" / "master.key"
    assert source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, _ = resolve_master_key(tmp_path / "home", {})
    assert again == key
    assert decode_master_key(path.read_text(), "file") == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"], "no temporary file is left behind"


def test_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "master.key").write_text("not a key")
    with pytest.raises(InvalidArgument, match=r"master key file .* must be 32 bytes"):
        resolve_master_key(tmp_path, {})


async def _session(backend: LocalBackend) -> str:
    """Set a secret, run an execution that reads it and a run-time secret; returns the execution id."""
    await backend.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value=PLAIN))
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name="bot"), spec=agent_pb2.AgentSpec(secrets=["GH_TOKEN"])
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
    run = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot")),
            runtime_secrets={"RUN_TOKEN": RUNTIME},
        )
    )
    eid = run.metadata.id
    await backend.update_execution_status(
        svc.UpdateExecutionStatusRequest(execution_id=eid, phase=ex.PHASE_RUNNING)
    )
    ctx = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    assert dict(ctx.secrets) == {"GH_TOKEN": PLAIN, "RUN_TOKEN": RUNTIME}
    return eid


async def test_no_plaintext_in_database_files_wal_included(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path)  # master key from a new $STIGMER_HOME/master.key
    await _session(backend)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("stigmer.db")]
    assert any(p.name.endswith("-wal") for p in files), "the WAL is checked while the database is open"
    for path in files:
        raw = path.read_bytes()
        for value in (PLAIN, RUNTIME):
            assert value.encode() not in raw, f"plaintext found in {path.name}"
            assert value.encode("utf-16-le") not in raw
    await backend.close()
    paths = list(tmp_path.iterdir())
    assert paths, "found no files to check"
    for path in paths:
        assert PLAIN.encode() not in path.read_bytes() and RUNTIME.encode() not in path.read_bytes()


async def test_wrong_master_key_cannot_read_secrets(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path, master_key=os.urandom(32))
    eid = await _session(backend)
    await backend.close()
    other = LocalBackend(home=tmp_path, master_key=os.urandom(32))
    with pytest.raises(FailedPrecondition, match="master key does not match"):
        await other.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    await other.close()


async def test_a_wrong_master_key_cannot_write(tmp_path: Path) -> None:
    right, wrong = os.urandom(32), os.urandom(32)
    empty = LocalBackend(home=tmp_path / "empty", master_key=wrong)
    # An empty store takes any key (there is nothing it would have to open).
    stored = await empty.set_secret(svc.SetSecretRequest(name="FIRST", value="first-value"))
    assert stored.version == 1
    await empty.close()
    backend = LocalBackend(home=tmp_path / "store", master_key=right)
    await _session(backend)
    await backend.close()
    other = LocalBackend(home=tmp_path / "store", master_key=wrong)
    with pytest.raises(FailedPrecondition, match="does not open the secrets already stored") as refused:
        await other.set_secret(svc.SetSecretRequest(name="GH_TOKEN", value="overwritten"))
    assert "the master_key argument" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(FailedPrecondition, match="does not open the secrets already stored"):
        await other.set_secret(svc.SetSecretRequest(name="NEW_ONE", value="mixed-in"))
    with pytest.raises(FailedPrecondition, match="does not open the secrets already stored"):
        await other.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot")),
                runtime_secrets={"RUN_TOKEN": "mixed-in"},
            )
        )
    listed = await other.list_secrets(svc.ListSecretsRequest())
    assert [(m.name, m.version) for m in listed.secrets] == [("GH_TOKEN", 1)]
    await other.close()
    # Everything still opens under the right key, so a rotation still works.
    again = LocalBackend(home=tmp_path / "store", master_key=right)
    await again.rotate_master_key(os.urandom(32))
    await again.set_secret(svc.SetSecretRequest(name="NEW_ONE", value="fine"))
    await again.close()


async def test_rotate_master_key_re_encrypts_everything(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path)
    eid = await _session(backend)
    old_key = (tmp_path / "master.key").read_text()
    before = (tmp_path / "stigmer.db").read_bytes() + (tmp_path / "stigmer.db-wal").read_bytes()
    new_key = await backend.rotate_master_key()
    assert len(new_key) == 32
    assert decode_master_key((tmp_path / "master.key").read_text(), "file") == new_key
    assert (tmp_path / "master.key").read_text() != old_key
    ctx = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    assert dict(ctx.secrets) == {"GH_TOKEN": PLAIN, "RUN_TOKEN": RUNTIME}
    await backend.close()
    reopened = LocalBackend(home=tmp_path)  # reads the rotated key file
    ctx = await reopened.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    assert dict(ctx.secrets) == {"GH_TOKEN": PLAIN, "RUN_TOKEN": RUNTIME}
    await reopened.close()
    stale = LocalBackend(home=tmp_path, master_key=decode_master_key(old_key, "old"))
    with pytest.raises(FailedPrecondition, match="cannot decrypt"):
        await stale.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    await stale.close()
    assert before  # the old ciphertexts existed; the stale key above proves they were replaced


async def test_logs_never_hold_secret_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    backend = LocalBackend(home=tmp_path)
    await _session(backend)
    await backend.rotate_master_key()
    await backend.delete_secret(svc.DeleteSecretRequest(name="GH_TOKEN"))
    await backend.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GH_TOKEN" in text, "secret operations are logged, by name"
    assert PLAIN not in text and RUNTIME not in text


async def test_rotation_interrupted_after_commit_keeps_the_new_key(tmp_path: Path) -> None:
    from stigmer.backend.local._keys import write_key_file
    from stigmer.backend.local.tables import _secrets

    backend = LocalBackend(home=tmp_path)
    eid = await _session(backend)
    old_box, new_key = backend._box(), os.urandom(32)
    # What rotate_master_key does, up to a crash right after the commit:
    write_key_file(tmp_path / "master.key.new", new_key, replace=True)
    backend._transaction(lambda c: _secrets.reencrypt_all(c, old_box, SecretBox(new_key)), True)
    await backend.close()
    reopened = LocalBackend(home=tmp_path)
    ctx = await reopened.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    assert dict(ctx.secrets) == {"GH_TOKEN": PLAIN, "RUN_TOKEN": RUNTIME}
    assert decode_master_key((tmp_path / "master.key").read_text(), "file") == new_key
    assert not (tmp_path / "master.key.new").exists()
    await reopened.close()


async def test_rotation_interrupted_before_commit_keeps_the_old_key(tmp_path: Path) -> None:
    from stigmer.backend.local._keys import write_key_file

    backend = LocalBackend(home=tmp_path)
    eid = await _session(backend)
    old_text = (tmp_path / "master.key").read_text()
    write_key_file(tmp_path / "master.key.new", os.urandom(32), replace=True)  # crash before the commit
    await backend.close()
    reopened = LocalBackend(home=tmp_path)
    ctx = await reopened.get_execution_context(svc.GetExecutionContextRequest(execution_id=eid))
    assert dict(ctx.secrets) == {"GH_TOKEN": PLAIN, "RUN_TOKEN": RUNTIME}
    assert (tmp_path / "master.key").read_text() == old_text
    assert not (tmp_path / "master.key.new").exists()
    await reopened.close()


def _runtime_rows(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "stigmer.db") as conn:
        rows = conn.execute("SELECT execution_id, count(*) FROM execution_secrets GROUP BY execution_id")
        return {eid: n for eid, n in rows}


async def test_runtime_secrets_are_deleted_when_their_run_ends(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path, master_key=os.urandom(32))
    first = await _session(backend)  # RUNNING, with RUN_TOKEN

    async def another() -> str:
        run = await backend.create_execution(
            svc.CreateExecutionRequest(
                spec=ex.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Agent", name="bot")),
                runtime_secrets={"RUN_TOKEN": RUNTIME, "OTHER": "x" * 12},
            )
        )
        return run.metadata.id

    async def phase(eid: str, to: ex.Phase.ValueType, **fields: object) -> None:
        await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=eid, phase=to, **fields)  # type: ignore[arg-type]
        )

    cancelled, failed, pending = await another(), await another(), await another()
    assert _runtime_rows(tmp_path) == {first: 1, cancelled: 2, failed: 2, pending: 2}
    # Paused for an approval: kept, and the run still gets them after the decision.
    await phase(first, ex.PHASE_WAITING_APPROVAL, pending_approval=ex.ApprovalRequest(id="call_1", tool="t"))
    assert _runtime_rows(tmp_path)[first] == 1
    await backend.submit_approval(svc.SubmitApprovalRequest(execution_id=first, approved=True))
    ctx = await backend.get_execution_context(svc.GetExecutionContextRequest(execution_id=first))
    assert ctx.secrets["RUN_TOKEN"] == RUNTIME
    await phase(first, ex.PHASE_SUCCEEDED)
    await backend.cancel_execution(svc.CancelExecutionRequest(id=cancelled, reason="no"))
    await phase(failed, ex.PHASE_RUNNING)
    await phase(failed, ex.PHASE_FAILED, error=ex.ExecutionError(detail="boom"))
    assert _runtime_rows(tmp_path) == {pending: 2}, "only the unfinished run keeps its secrets"
    await backend.close()
    # Rows an older version left behind for finished runs are deleted when the store is opened.
    with sqlite3.connect(tmp_path / "stigmer.db") as conn:
        conn.execute(
            "INSERT INTO execution_secrets (execution_id, name, ciphertext) VALUES (?, 'OLD', x'00')",
            (first,),
        )
    assert _runtime_rows(tmp_path) == {pending: 2, first: 1}
    reopened = LocalBackend(home=tmp_path, master_key=os.urandom(32))
    assert _runtime_rows(tmp_path) == {pending: 2}
    await reopened.close()
    paths = list(tmp_path.iterdir())
    assert paths, "found no files to check"
    for path in paths:
        assert RUNTIME.encode() not in path.read_bytes()
