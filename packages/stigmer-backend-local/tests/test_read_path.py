"""The Get/List read path: the lookups, the row -> message memo, the kept List shapes."""

from __future__ import annotations

import itertools

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.backend.local.tables import _resources as res
from stigmer.backend.local.tables import _schema as s
from stigmer.backend.local.tables._selectors import matches, parse_selector
from stigmer.proto.v1 import agent_pb2, environment_pb2, execution_pb2, meta_pb2, resource_pb2, skill_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

KEY = bytes(range(32))


@pytest.fixture
def backend(store: LocalBackend) -> LocalBackend:
    return store


def _agent(
    name: str, labels: dict[str, str] | None = None, instructions: str = "Be brief."
) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        agent=agent_pb2.Agent(
            metadata=meta_pb2.Metadata(name=name, labels=labels or {}, annotations={"note": "x"}),
            spec=agent_pb2.AgentSpec(
                instructions=instructions,
                model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini"),
            ),
        )
    )


def test_resource_row_has_the_columns_of_the_table_in_order() -> None:
    assert res.ResourceRow._fields == tuple(c.name for c in s.resources.c)


async def test_memoized_conversion_equals_a_fresh_one(backend: LocalBackend) -> None:
    await backend.apply(svc.ApplyRequest(resource=_agent("a", {"team": "x"})))
    await backend.apply(
        svc.ApplyRequest(
            resource=resource_pb2.Resource(
                skill=skill_pb2.Skill(metadata=meta_pb2.Metadata(name="s"), spec=skill_pb2.SkillSpec())
            )
        )
    )
    env = environment_pb2.Environment(
        metadata=meta_pb2.Metadata(name="prod"),
        spec=environment_pb2.EnvironmentSpec(secrets=["A_KEY", "B_KEY"], variables={"REGION": "eu"}),
    )
    await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(environment=env)))
    refs = [("Agent", "a"), ("Skill", "s"), ("Environment", "prod")]
    for kind, name in refs:
        ref = meta_pb2.ResourceRef(kind=kind, name=name)
        first = await backend.get(svc.GetRequest(ref=ref))
        again = await backend.get(svc.GetRequest(ref=ref))
        assert first == again

        def fresh(c: object, ref: meta_pb2.ResourceRef = ref) -> resource_pb2.Resource:
            row = res.require(c, ref)  # type: ignore[arg-type]
            return res._to_message(row, res._missing(c, [row]))  # type: ignore[arg-type]

        assert again == backend._transaction(fresh, False)
    got = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Environment", name="prod")))
    assert list(got.environment.status.missing_secrets) == ["A_KEY", "B_KEY"]
    await backend.set_secret(svc.SetSecretRequest(name="B_KEY", value="v"))
    got = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Environment", name="prod")))
    assert list(got.environment.status.missing_secrets) == ["A_KEY"]


async def test_status_changes_without_a_new_version_are_seen(backend: LocalBackend) -> None:
    await backend.apply(svc.ApplyRequest(resource=_agent("counted")))
    ref = meta_pb2.ResourceRef(kind="Agent", name="counted")
    before = await backend.get(svc.GetRequest(ref=ref))
    assert before.agent.status.execution_count == 0
    spec = execution_pb2.ExecutionSpec(target=ref)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    after = await backend.get(svc.GetRequest(ref=ref))
    assert after.agent.metadata.version == before.agent.metadata.version
    assert after.agent.status.execution_count == 1
    assert after.agent.status.last_execution_id == created.metadata.id
    listed = await backend.list(svc.ListRequest(kind="Agent"))
    assert listed.resources[0] == after


async def test_a_changed_spec_is_seen_by_get_and_list(backend: LocalBackend) -> None:
    await backend.apply(svc.ApplyRequest(resource=_agent("b", instructions="one")))
    ref = meta_pb2.ResourceRef(kind="Agent", name="b")
    assert (await backend.get(svc.GetRequest(ref=ref))).agent.spec.instructions == "one"
    await backend.apply(svc.ApplyRequest(resource=_agent("b", instructions="two")))
    got = await backend.get(svc.GetRequest(ref=ref))
    assert got.agent.spec.instructions == "two"
    assert got.agent.metadata.version == 2
    by_id = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(id=got.agent.metadata.id)))
    assert by_id == got
    listed = await backend.list(svc.ListRequest(kind="Agent"))
    assert list(listed.resources) == [got]
    await backend.delete(svc.DeleteRequest(ref=ref))
    assert list((await backend.list(svc.ListRequest(kind="Agent"))).resources) == []


async def test_list_shapes_beyond_the_cached_ones_still_select_right(backend: LocalBackend) -> None:
    population: dict[str, dict[str, str]] = {}
    for i, (a, b) in enumerate(itertools.product(["1", "2", None], repeat=2)):
        labels = {k: v for k, v in (("a", a), ("b", b)) if v is not None}
        applied = await backend.apply(svc.ApplyRequest(resource=_agent(f"agent-{i}", labels)))
        population[applied.resource.agent.metadata.id] = labels
    terms = ["a=1", "b!=2", "a", "!b"]
    selectors = [",".join(t) for n in (1, 2, 3) for t in itertools.product(terms, repeat=n)]
    assert len({tuple(r.op for r in parse_selector(x)) for x in selectors}) > res._LIST_SHAPES_MAX
    for text in selectors:
        out = await backend.list(svc.ListRequest(kind="Agent", label_selector=text, page_size=2))
        got: list[str] = [r.agent.metadata.id for r in out.resources]
        while out.next_page_token:
            out = await backend.list(
                svc.ListRequest(
                    kind="Agent", label_selector=text, page_size=2, page_token=out.next_page_token
                )
            )
            got.extend(r.agent.metadata.id for r in out.resources)
        want = [rid for rid, labels in population.items() if matches(parse_selector(text), labels)]
        assert got == want, text
    assert res._list_sql.cache_info().currsize <= res._LIST_SHAPES_MAX


def _row(i: int, spec: str = "{}") -> res.ResourceRow:
    return res.ResourceRow(i, f"agt_{i}", "Agent", f"a{i}", f"a{i}", 1, "{}", "{}", spec, "{}", 1, 1)


def test_memo_is_bounded_by_entries_and_bytes() -> None:
    memo = res._Converted()
    memo.MAX_ENTRIES = 3
    for i in range(5):
        memo.put((_row(i), None), b"x")
    assert [memo.get((_row(i), None)) for i in range(5)] == [None, None, b"x", b"x", b"x"]
    memo.get((_row(2), None))  # now the most recent: 3 goes first
    memo.put((_row(5), None), b"y")
    assert memo.get((_row(3), None)) is None
    assert memo.get((_row(2), None)) == b"x"

    memo = res._Converted()
    memo.MAX_BYTES = 1000
    for i in range(10):
        memo.put((_row(i, "x" * 300), None), b"z")
    kept = [i for i in range(10) if memo.get((_row(i, "x" * 300), None)) is not None]
    assert kept and kept == list(range(10 - len(kept), 10)) and len(kept) < 10
    assert memo._bytes <= 1000

    memo = res._Converted()
    memo.put((_row(0, "x" * (memo.MAX_ENTRY_BYTES + 1)), None), b"big")
    assert memo.get((_row(0, "x" * (memo.MAX_ENTRY_BYTES + 1)), None)) is None
    memo.clear()
    assert memo._bytes == 0


def test_memo_keeps_one_entry_per_resource_its_latest_row() -> None:
    """A workflow's status changes with every execution: a server running thousands of them kept
    a dead copy of the workflow (its whole spec) per execution until the bound (issue 18's soak)."""
    memo = res._Converted()
    versions = [_row(7)._replace(status=f'{{"executions": {n}}}') for n in range(50)]
    for n, row in enumerate(versions):
        memo.put((row, None), f"v{n}".encode())
    assert len(memo) == 1
    assert memo.get((versions[-1], None)) == b"v49"
    assert memo.get((versions[0], None)) is None  # an older row of it is converted again
    assert memo._bytes < 1000
    memo.put((_row(8), None), b"other")
    memo.put((_row(8), frozenset({"KEY"})), b"other, KEY missing")  # an Environment's variants
    assert len(memo) == 3
    assert memo.get((_row(8), None)) == b"other"
    assert memo.get((_row(8), frozenset({"KEY"}))) == b"other, KEY missing"
