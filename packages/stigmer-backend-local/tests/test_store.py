"""LocalBackend specifics: where the database lives, bad URLs, label selector parsing."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stigmer.backend.local import LocalBackend
from stigmer.backend.local.tables._selectors import Requirement, matches, parse_selector
from stigmer.core import InvalidArgument, StigmerError, Unavailable
from stigmer.proto.v1 import backend_service_pb2 as svc


async def test_default_database_is_in_stigmer_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STIGMER_DATABASE_URL", raising=False)
    backend = LocalBackend(master_key=bytes(32))
    assert (tmp_path / "home" / "stigmer.db").exists()
    assert backend.home == tmp_path / "home"
    await backend.close()


async def test_database_url_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STIGMER_DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    backend = LocalBackend(master_key=bytes(32))
    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "home" / "stigmer.db").exists()
    await backend.close()


def test_unsupported_url_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="unsupported database URL 'mysql://u:\\*\\*\\*@h/db'"):
        LocalBackend("mysql://u:secretpw@h/db", home="/tmp", master_key=bytes(32))


def test_unopenable_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(Unavailable):
        LocalBackend(f"sqlite:///{tmp_path / 'file' / 'x.db'}", home=tmp_path, master_key=bytes(32))


async def test_in_memory_database_works() -> None:
    backend = LocalBackend("sqlite:///:memory:", home="/nonexistent", master_key=bytes(32))
    meta = await backend.put_artifact(svc.PutArtifactRequest(content=b"x"))
    got = await backend.get_artifact(svc.GetArtifactRequest(key=meta.key))
    assert got.content == b"x"
    await backend.close()


async def test_invalid_artifact_key_is_invalid_argument(tmp_path: Path) -> None:
    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    with pytest.raises(InvalidArgument, match="sha256"):
        await backend.get_artifact(svc.GetArtifactRequest(key="md5:abc"))
    await backend.close()


def test_parse_selector_forms() -> None:
    assert parse_selector("a=1, b!=2,c,!d,e==5") == [
        Requirement("a", "=", "1"),
        Requirement("b", "!=", "2"),
        Requirement("c", "exists"),
        Requirement("d", "!exists"),
        Requirement("e", "=", "5"),
    ]
    assert parse_selector("  ") == []
    labels = {"a": "1", "c": "x"}
    assert matches(parse_selector("a=1,c,!d,b!=2"), labels)
    assert not matches(parse_selector("a!=1"), labels)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "é!=,", max_size=40))
def test_any_selector_text_parses_or_is_invalid_argument(text: str) -> None:
    try:
        reqs = parse_selector(text)
    except InvalidArgument as exc:
        assert "label selector" in str(exc) and "\n" not in str(exc)
        return
    except StigmerError as exc:  # pragma: no cover - would be a bug
        raise AssertionError(f"wrong error type {type(exc).__name__}") from exc
    assert all(r.op in ("=", "!=", "exists", "!exists") for r in reqs)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.sampled_from("abc"), st.sampled_from(["1", "2"]), max_size=3),
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(["=", "!=", "", "!"]), st.sampled_from("12")),
        min_size=1,
        max_size=3,
    ),
)
def test_selector_semantics(labels: dict[str, str], terms: list[tuple[str, str, str]]) -> None:
    text = ",".join(f"{k}{op}{v}" if op in ("=", "!=") else f"{op}{k}" for k, op, v in terms)
    expected = all(
        (op == "=" and labels.get(k) == v)
        or (op == "!=" and labels.get(k) != v)
        or (op == "" and k in labels)
        or (op == "!" and k not in labels)
        for k, op, v in terms
    )
    assert matches(parse_selector(text), labels) == expected


def test_sql_selectors_agree_with_their_definition(tmp_path: Path) -> None:
    """Every selector over keys a/b selects, through SQL, exactly the agents `matches` says it should."""
    import asyncio
    import itertools

    from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2

    loop = asyncio.new_event_loop()
    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    population: dict[str, dict[str, str]] = {}
    for i, (a, b) in enumerate(itertools.product(["1", "2", None], repeat=2)):
        labels = {k: v for k, v in (("a", a), ("b", b)) if v is not None}
        agent = agent_pb2.Agent(metadata=meta_pb2.Metadata(name=f"agent-{i}", labels=labels))
        out = loop.run_until_complete(
            backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent)))
        )
        population[out.resource.agent.metadata.id] = labels

    term = st.tuples(st.sampled_from("ab"), st.sampled_from(["=", "!=", "", "!"]), st.sampled_from("123"))

    @settings(max_examples=120, deadline=None)
    @given(st.lists(term, min_size=1, max_size=3))
    def check(terms: list[tuple[str, str, str]]) -> None:
        text = ",".join(f"{k}{op}{v}" if op in ("=", "!=") else f"{op}{k}" for k, op, v in terms)
        out = loop.run_until_complete(backend.list(svc.ListRequest(kind="Agent", label_selector=text)))
        got = {r.agent.metadata.id for r in out.resources}
        want = {rid for rid, labels in population.items() if matches(parse_selector(text), labels)}
        assert got == want, text

    try:
        check()
    finally:
        loop.run_until_complete(backend.close())
        loop.close()


async def test_environment_status_lists_secrets_without_a_value(tmp_path: Path) -> None:
    from stigmer.proto.v1 import environment_pb2, meta_pb2, resource_pb2

    backend = LocalBackend(home=tmp_path, master_key=bytes(32))
    env = environment_pb2.Environment(
        metadata=meta_pb2.Metadata(name="prod"),
        spec=environment_pb2.EnvironmentSpec(secrets=["A_KEY", "B_KEY"]),
    )
    out = await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(environment=env)))
    assert list(out.resource.environment.status.missing_secrets) == ["A_KEY", "B_KEY"]
    await backend.set_secret(svc.SetSecretRequest(name="A_KEY", value="v"))
    ref = meta_pb2.ResourceRef(kind="Environment", name="prod")
    got = await backend.get(svc.GetRequest(ref=ref))
    assert list(got.environment.status.missing_secrets) == ["B_KEY"]
    listed = await backend.list(svc.ListRequest(kind="Environment"))
    assert list(listed.resources[0].environment.status.missing_secrets) == ["B_KEY"]
    await backend.close()


async def test_a_server_ceiling_lowers_every_agent_runs_limits(tmp_path: Path) -> None:
    """``agent_limits`` (``stigmer server --agent-max-*``) is written into each agent run's spec:
    an unset limit takes it, a higher one is lowered to it, a lower one stays."""
    from stigmer.proto.v1 import execution_pb2, meta_pb2
    from stigmer.testing.agents import agent_resource

    backend = LocalBackend(
        home=tmp_path, master_key=bytes(32), agent_limits={"max_requests": 5, "max_cost_usd": 1.5}
    )
    try:
        await backend.apply(svc.ApplyRequest(resource=agent_resource("bot")))
        target = meta_pb2.ResourceRef(kind="Agent", name="bot")

        async def limits(**given: float) -> tuple[int, float, int]:
            spec = execution_pb2.ExecutionSpec(target=target, message="hi")
            for key, value in given.items():
                setattr(spec.limits, key, value)
            made = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
            return (
                made.spec.limits.max_requests,
                made.spec.limits.max_cost_usd,
                made.spec.limits.max_tool_calls,
            )

        assert await limits() == (5, 1.5, 0)
        assert await limits(max_requests=50, max_cost_usd=9.0, max_tool_calls=7) == (5, 1.5, 7)
        assert await limits(max_requests=2, max_cost_usd=0.25) == (2, 0.25, 0)
        with pytest.raises(InvalidArgument, match="must not be negative"):
            await limits(max_tool_calls=-1)
    finally:
        await backend.close()
