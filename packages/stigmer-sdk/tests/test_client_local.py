"""The sync client against a real local store: apply, read, delete, run in-process, events, errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import InvalidArgument, NotFound
from stigmer.sdk import (
    Agent,
    Environment,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionTimeout,
    Raise,
    Set,
    Skill,
    Stigmer,
    Wait,
    Workflow,
    secret,
)

GREET = Workflow(
    "greet", namespace="t", labels={"team": "a"}, do={"hi": Set({"greeting": '${ "Hi " + .name }'})}
)
SLOW = Workflow("slow", namespace="t", do={"nap": Wait(seconds=30), "after": Set({"woke": True})})


def test_apply_orders_dependencies_and_reports_actions(client: Stigmer, tmp_path: Path) -> None:
    skill_dir = tmp_path / "skills" / "faq"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text("# FAQ\nAnswer from this page.\n")
    faq = Skill("faq", path=skill_dir)
    prod = Environment("prod", variables={"REGION": "eu"})
    bot = Agent("bot", instructions="be brief", model="ollama:llama3.2", skills=[faq], environments=[prod])
    applied = client.apply([GREET, bot], prod, faq)
    assert [(a.kind, a.action) for a in applied] == [
        ("Environment", "created"),
        ("Skill", "created"),
        ("Agent", "created"),
        ("Workflow", "created"),
    ]
    assert all(a.id and a.version == 1 for a in applied)
    stored = client.get("skill", "faq")
    assert stored.spec.artifact.startswith("sha256:")  # type: ignore[attr-defined]
    again = client.apply(GREET, bot, prod, faq)
    assert {a.action for a in again} == {"unchanged"}
    bot.instructions = "be very brief"
    [changed] = [a for a in client.apply(bot) if a.kind == "Agent"]
    assert (changed.action, changed.version) == ("updated", 2)
    assert client.get("agents", "bot").spec.instructions == "be very brief"  # type: ignore[attr-defined]


def test_apply_accepts_messages_dicts_files_and_dry_runs(client: Stigmer, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Environment\nmetadata: {name: from-file}\nspec: {variables: {A: '1'}}\n"
    )
    as_dict = Environment("from-dict").to_manifest()
    as_message = Environment("from-message").to_message()
    dry = client.apply(manifest, as_dict, as_message, dry_run=True)
    assert [a.action for a in dry] == ["created"] * 3
    assert client.list("environment") == []
    client.apply(manifest, as_dict, as_message)
    assert sorted(e.metadata.name for e in client.list("env")) == ["from-dict", "from-file", "from-message"]  # type: ignore[attr-defined]


def test_apply_refuses_duplicates_and_unknown_things(client: Stigmer) -> None:
    with pytest.raises(InvalidArgument, match="declared twice"):
        client.apply(Environment("e"), Environment("e"))
    with pytest.raises(TypeError, match="cannot apply int"):
        client.apply(42)
    with pytest.raises(InvalidArgument, match="nothing to apply"):
        client.apply()


def test_get_list_by_labels_and_delete(client: Stigmer) -> None:
    other = Workflow("other", namespace="t", labels={"team": "b"}, do={"x": Set({"x": 1})})
    client.apply(GREET, other)
    assert [w.metadata.name for w in client.list("workflow", labels={"team": "a"})] == ["greet"]  # type: ignore[attr-defined]
    assert [w.metadata.name for w in client.list("workflows", labels="team=b")] == ["other"]  # type: ignore[attr-defined]
    deleted = client.delete("workflow", "other")
    assert deleted.metadata.name == "other"  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        client.get("workflow", "other")
    with pytest.raises(InvalidArgument, match="unknown kind"):
        client.list("gizmo")


def test_run_streams_events_and_returns_the_output(client: Stigmer) -> None:
    client.apply(GREET)
    run = client.run("greet", input={"name": "Ada"})
    assert run.id.startswith("wex_") and run.kind == "WorkflowExecution"
    events = list(run)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert "task.started" in types and "task.completed" in types
    assert events[-1].type == "phase" and run.phase == "SUCCEEDED"
    assert run.result() == {"greeting": "Hi Ada"}
    assert list(run) == []  # everything was seen already
    assert [e.sequence for e in run.events(after_sequence=0)] == [e.sequence for e in events]
    attached = client.execution(run.id)
    assert attached.wait().status.phase == run.execution.status.phase
    assert attached.output == {"greeting": "Hi Ada"}


def test_a_failed_run_raises_with_the_execution_error(client: Stigmer) -> None:
    boom = Workflow(
        "boom",
        namespace="t",
        do={
            "fail": Raise(type="https://example.com/errors/boom", status=418, title="Boom", detail="it broke")
        },
    )
    client.apply(boom)
    run = client.run("boom")
    with pytest.raises(ExecutionFailed) as info:
        run.result(timeout=30)
    err = info.value
    assert (err.status, err.title, err.instance) == (418, "Boom", "/do/0/fail")
    assert err.type == "https://example.com/errors/boom"
    assert "failed at /do/0/fail: Boom: it broke" in str(err)
    assert run.phase == "FAILED"


def test_wait_times_out_then_cancel_stops_the_run(client: Stigmer) -> None:
    client.apply(SLOW)
    run = client.run("slow")
    with pytest.raises(ExecutionTimeout, match="still"):
        run.wait(timeout=0.5)
    started = time.monotonic()
    run.cancel("no time")
    with pytest.raises(ExecutionCancelled):
        run.result(timeout=20)
    assert time.monotonic() - started < 15
    assert run.phase == "CANCELLED"


def test_run_time_secrets_reach_the_run_and_never_its_output(client: Stigmer) -> None:
    uses = Workflow(
        "uses-secret",
        namespace="t",
        secrets=["API_TOKEN"],
        do={"read": Set({"length": "${ $secrets.API_TOKEN | length }", "raw": secret("API_TOKEN")})},
    )
    client.apply(uses)
    run = client.run("uses-secret", secrets={"API_TOKEN": "s3cr3t-value-123"}, env={"MODE": "test"})
    out = run.result(timeout=30)
    assert out["length"] == len("s3cr3t-value-123") and isinstance(out["length"], int)
    assert "s3cr3t-value-123" not in repr(out) and "s3cr3t-value-123" not in repr(list(run.events(0)))
    assert run.execution.spec.env["MODE"] == "test"


def test_run_refuses_what_cannot_run(client: Stigmer) -> None:
    client.apply(GREET)
    with pytest.raises(NotFound, match="no workflow or agent named 'nope'"):
        client.run("nope")
    with pytest.raises(InvalidArgument, match="for agents"):
        client.run("greet", message="hello")
    with pytest.raises(InvalidArgument, match="JSON"):
        client.run("greet", input={"when": object()})
    with pytest.raises(InvalidArgument, match="only workflows and agents"):
        client.run("greet", kind="environment")
    with pytest.raises(NotFound, match="no workflow named 'gret'; did you mean 'greet'"):
        client.run("gret", kind="wf")


def test_close_waits_for_in_process_runs(home: Path) -> None:
    short = Workflow("short", namespace="t", do={"nap": Wait(milliseconds=300), "done": Set({"ok": True})})
    with Stigmer(home=home) as first:
        first.apply(short)
        run_id = first.run("short").id
    with Stigmer(home=home) as second:
        finished = second.execution(run_id)
        assert finished.phase == "SUCCEEDED" and finished.output == {"ok": True}


def test_the_active_context_is_used_without_arguments(home: Path) -> None:
    with Stigmer(home=home) as explicit:
        explicit.apply(GREET)
    with Stigmer() as default:  # STIGMER_HOME points at the same store
        assert default.local
        assert [w.metadata.name for w in default.list("workflow")] == ["greet"]  # type: ignore[attr-defined]
        assert "local store" in repr(default)


def test_an_interrupted_block_stops_in_process_runs_resumably(home: Path) -> None:
    with pytest.raises(KeyboardInterrupt), Stigmer(home=home) as stigmer:
        stigmer.apply(SLOW)
        run = stigmer.run("slow")
        started = time.monotonic()
        raise KeyboardInterrupt
    assert time.monotonic() - started < 10  # did not sit out the 30 s wait
    with Stigmer(home=home) as again:
        left = again.execution(run.id)
        assert left.phase in ("PENDING", "RUNNING")  # not finished, not failed: resumable
        left.cancel()


def test_iteration_ends_when_another_thread_cancels(client: Stigmer) -> None:
    import threading

    client.apply(SLOW)
    run = client.run("slow")
    canceller = threading.Timer(0.5, run.cancel, kwargs={"reason": "from another thread"})
    canceller.start()
    try:
        events = list(run)
    finally:
        canceller.join()
    assert events[-1].type == "phase" and run.phase == "CANCELLED"
    with pytest.raises(ExecutionCancelled):
        run.result(timeout=10)


def test_builder_classes_name_kinds_and_type_results(client: Stigmer) -> None:
    from stigmer.proto.v1 import agent_pb2, workflow_pb2

    client.apply(GREET, Agent("bot", instructions="hi", model="ollama:llama3.2"))
    agent = client.get(Agent, "bot")
    assert isinstance(agent, agent_pb2.Agent) and agent.spec.instructions == "hi"
    [flow] = client.list(Workflow, labels={"team": "a"})
    assert isinstance(flow, workflow_pb2.Workflow) and flow.metadata.name == "greet"
    assert client.delete(Workflow, "greet").metadata.name == "greet"
    assert client.list(Workflow) == []
    assert isinstance(GREET.to_message(), workflow_pb2.Workflow)


def test_a_closed_client_says_so(home: Path) -> None:
    from stigmer.core import FailedPrecondition

    stigmer = Stigmer(home=home)
    stigmer.close()
    stigmer.close()  # twice is fine
    with pytest.raises(FailedPrecondition, match="closed"):
        stigmer.list("workflow")


def test_grant_and_revoke_secrets(client: Stigmer) -> None:
    from stigmer.core import InvalidArgument

    assert client.set_secret("SHARED_KEY", "shared-value-123").version == 1
    client.grant_secret("SHARED_KEY", to="alice")
    client.grant_secret("SHARED_KEY", role="user")
    revoked = client.revoke_secret("SHARED_KEY", to="alice")
    [meta] = client.list_secrets("SHARED")
    assert (
        [(g.token_name, g.role) for g in meta.grants]
        == [("", "user")]
        == [(g.token_name, g.role) for g in revoked.grants]
    )
    with pytest.raises(InvalidArgument, match="either to="):
        client.grant_secret("SHARED_KEY", to="alice", role="user")
    assert client.delete_secret("SHARED_KEY").name == "SHARED_KEY"
    assert client.list_secrets("SHARED") == ()
    assert "shared-value-123" not in repr(meta)


def test_check_master_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import os

    monkeypatch.delenv("STIGMER_MASTER_KEY", raising=False)
    with Stigmer(home=home) as client:
        assert client.check_master_key() == (None, "", 0)
        assert not (home / "master.key").exists(), "checking creates no key"
        client.set_secret("API_KEY", "value-123456")
        assert client.check_master_key() == (True, str(home / "master.key"), 1)
    monkeypatch.setenv("STIGMER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    with Stigmer(home=home) as client:
        assert client.check_master_key() == (False, "STIGMER_MASTER_KEY", 1)


def test_apply_keeps_the_validated_document_so_a_run_does_not_check_it_again(
    client: Stigmer, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stigmer.runner.workflow import load_workflow

    kept = home / "cache" / "workflows"
    client.apply(GREET, dry_run=True)
    assert not kept.exists() or list(kept.iterdir()) == []  # a dry run keeps nothing
    client.apply(GREET)
    assert len(list(kept.glob("*.json"))) == 1
    validated: list[object] = []

    def counting(source: Any) -> Any:
        validated.append(source)
        return load_workflow(source)

    monkeypatch.setattr("stigmer.runner.workflow._runner.load_workflow", counting)
    run = client.run("greet", input={"name": "Ada"})
    run.wait()
    assert (run.phase, run.output) == ("SUCCEEDED", {"greeting": "Hi Ada"})
    assert validated == []  # the run loaded the form apply kept
