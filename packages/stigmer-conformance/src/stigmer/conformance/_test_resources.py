"""Conformance: Apply, Get, List (selectors, pagination), Delete, ListVersions, references."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from stigmer.conformance._builders import (
    agent,
    apply,
    environment,
    expect_error,
    mcp_server,
    skill,
    unique,
    workflow,
)
from stigmer.core import AlreadyExists, Backend, InvalidArgument, NotFound
from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

__all__ = ["TestApply", "TestGetListDelete", "TestReferences"]

UNCHANGED, UPDATED, CREATED = svc.APPLY_ACTION_UNCHANGED, svc.APPLY_ACTION_UPDATED, svc.APPLY_ACTION_CREATED


def _ref(kind: str = "", name: str = "", id: str = "") -> meta_pb2.ResourceRef:
    return meta_pb2.ResourceRef(kind=kind, name=name, id=id)


@pytest.mark.asyncio
class TestApply:
    """Apply is an idempotent upsert by kind + slug that versions the spec."""

    async def test_create_assigns_identity(self, backend: Backend) -> None:
        name = unique("Support Bot")
        out = await apply(backend, agent(name))
        assert out.action == CREATED
        md = out.resource.agent.metadata
        assert md.name == name
        assert md.slug == name.lower().replace(" ", "-")
        assert md.id.startswith("agt_")
        assert md.version == 1
        assert md.created_at.seconds > 0 and md.updated_at.seconds > 0
        assert out.resource.agent.kind == "Agent"
        assert out.resource.agent.api_version == "stigmer.ai/v1"

    async def test_same_manifest_twice_changes_nothing(self, backend: Backend) -> None:
        name = unique("agent")
        first = await apply(backend, agent(name, labels={"team": "a"}))
        second = await apply(backend, agent(name, labels={"team": "a"}))
        assert second.action == UNCHANGED
        assert second.resource.agent.metadata.version == 1
        assert second.resource.agent.metadata.id == first.resource.agent.metadata.id
        assert second.resource.agent.metadata.updated_at == first.resource.agent.metadata.updated_at
        versions = await backend.list_versions(svc.ListVersionsRequest(ref=_ref("Agent", name)))
        assert [v.version for v in versions.versions] == [1]

    async def test_changed_spec_bumps_version_keeps_id_and_slug(self, backend: Backend) -> None:
        name = unique("agent")
        first = await apply(backend, agent(name, instructions="one"))
        second = await apply(backend, agent(name, instructions="two"))
        assert second.action == UPDATED
        new, old = second.resource.agent, first.resource.agent
        assert new.metadata.version == 2
        assert (new.metadata.id, new.metadata.slug) == (old.metadata.id, old.metadata.slug)
        assert new.spec.instructions == "two"
        assert second.previous.agent.spec.instructions == "one"
        assert second.previous.agent.metadata.version == 1
        third = await apply(backend, agent(name, instructions="two", labels={"tier": "gold"}))
        assert third.action == UPDATED and third.resource.agent.metadata.version == 3
        got = await backend.get(svc.GetRequest(ref=_ref("Agent", name)))
        assert got.agent.spec.instructions == "two"
        assert dict(got.agent.metadata.labels) == {"tier": "gold"}

    async def test_distinct_names_never_share_a_resource(self, backend: Backend) -> None:
        # Names that share a slug (cut at 63 characters, full-width letters, case) are refused with
        # an error naming the resource that owns the slug; the owner is left as it was.
        stem = unique("w") + "-" + "x" * 52
        staging, production = f"{stem}-staging", f"{stem}-production"
        width = unique("wf")
        fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in width)
        for owner, intruder in ((staging, production), (width, fullwidth), (width, width.upper())):
            first = await apply(backend, workflow(owner))
            await expect_error(AlreadyExists, apply(backend, workflow(intruder)), owner)
            await expect_error(AlreadyExists, apply(backend, workflow(intruder), dry_run=True), owner)
            got = await backend.get(svc.GetRequest(ref=_ref(id=first.resource.workflow.metadata.id)))
            assert got.workflow.metadata.name == owner and got.workflow.metadata.version == 1
        # The same name, however it is encoded (NFC or NFD), still updates its resource.
        cafe = unique("café")
        await apply(backend, agent(cafe, instructions="one"))
        again = await apply(backend, agent(unicodedata.normalize("NFD", cafe), instructions="two"))
        assert again.action == UPDATED and again.resource.agent.metadata.version == 2

    async def test_client_status_is_ignored(self, backend: Backend) -> None:
        res = agent(unique("agent"))
        res.agent.status.CopyFrom(agent_pb2.AgentStatus(execution_count=99, last_execution_id="aex_forged"))
        out = await apply(backend, res)
        assert out.resource.agent.status.execution_count == 0
        assert out.resource.agent.status.last_execution_id == ""
        again = await apply(backend, res)
        assert again.action == UNCHANGED
        got = await backend.get(svc.GetRequest(ref=_ref(id=out.resource.agent.metadata.id)))
        assert got.agent.status.execution_count == 0

    async def test_list_versions_newest_first(self, backend: Backend) -> None:
        name = unique("agent")
        for text in ("v1", "v2", "v3"):
            await apply(backend, agent(name, instructions=text))
        out = await backend.list_versions(svc.ListVersionsRequest(ref=_ref("Agent", name)))
        assert [v.version for v in out.versions] == [3, 2, 1]
        assert [v.resource.agent.spec.instructions for v in out.versions] == ["v3", "v2", "v1"]
        assert all(v.resource.agent.metadata.version == v.version for v in out.versions)
        assert all(v.created_at.seconds > 0 for v in out.versions)

    async def test_dry_run_writes_nothing(self, backend: Backend) -> None:
        name = unique("agent")
        out = await apply(backend, agent(name), dry_run=True)
        assert out.action == CREATED
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Agent", name))), name)
        await apply(backend, agent(name, instructions="one"))
        out = await apply(backend, agent(name, instructions="two"), dry_run=True)
        assert out.action == UPDATED and out.resource.agent.metadata.version == 2
        got = await backend.get(svc.GetRequest(ref=_ref("Agent", name)))
        assert got.agent.spec.instructions == "one" and got.agent.metadata.version == 1
        versions = await backend.list_versions(svc.ListVersionsRequest(ref=_ref("Agent", name)))
        assert [v.version for v in versions.versions] == [1]

    async def test_every_definition_kind_round_trips(self, backend: Backend) -> None:
        env_name, mcp_name, skill_name, wf_name = (unique(k) for k in ("env", "mcp", "skill", "wf"))
        for res in (
            environment(env_name, variables={"REGION": "eu-west-1"}),
            mcp_server(mcp_name),
            skill(skill_name),
            workflow(wf_name),
        ):
            out = await apply(backend, res)
            assert out.action == CREATED
            field = res.WhichOneof("kind")
            assert field is not None
            got = await backend.get(svc.GetRequest(ref=_ref(id=getattr(out.resource, field).metadata.id)))
            assert getattr(got, field).spec == getattr(res, field).spec
        wf = await backend.get(svc.GetRequest(ref=_ref("Workflow", wf_name)))
        assert wf.workflow.spec.fields["document"].struct_value.fields["name"].string_value == wf_name

    async def test_bad_input_is_invalid_argument(self, backend: Backend) -> None:
        await expect_error(InvalidArgument, apply(backend, resource_pb2.Resource()))
        await expect_error(InvalidArgument, apply(backend, agent("")), "name")
        await expect_error(InvalidArgument, apply(backend, agent("!!!")), "name")
        bad_labels = agent(unique("agent"), labels={"bad key!": "x"})
        await expect_error(InvalidArgument, apply(backend, bad_labels), "label")
        await expect_error(InvalidArgument, apply(backend, agent(unique("agent"), secrets=["1BAD"])), "1BAD")


@pytest.mark.asyncio
class TestGetListDelete:
    async def test_get_by_id_name_and_slug(self, backend: Backend) -> None:
        name = unique("My Agent")
        out = await apply(backend, agent(name))
        md = out.resource.agent.metadata
        for ref in (_ref(id=md.id), _ref("Agent", name), _ref("Agent", md.slug), _ref("Agent", id=md.id)):
            got = await backend.get(svc.GetRequest(ref=ref))
            assert got.agent.metadata.id == md.id
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Agent", unique("nope")))))
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Workflow", name))))
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Skill", id=md.id))))
        await expect_error(
            NotFound, backend.get(svc.GetRequest(ref=_ref(id="agt_00000000000000000000000000")))
        )

    async def test_label_selectors(self, backend: Backend) -> None:
        scope = unique("scope")
        names = {
            "a": {"env": "prod", "tier": "1"},
            "b": {"env": "dev"},
            "c": {},
        }
        ids = {}
        for key, labels in names.items():
            out = await apply(backend, agent(f"{scope}-{key}", labels={"scope": scope, **labels}))
            ids[out.resource.agent.metadata.id] = key

        async def select(selector: str) -> list[str]:
            out = await backend.list(
                svc.ListRequest(kind="Agent", label_selector=f"scope={scope},{selector}")
            )
            return [ids[r.agent.metadata.id] for r in out.resources]

        assert await select("env=prod") == ["a"]
        assert await select("env!=prod") == ["b", "c"]
        assert await select("env") == ["a", "b"]
        assert await select("!env") == ["c"]
        assert await select("env!=prod,!tier") == ["b", "c"]
        assert await select("tier=1,env=prod") == ["a"]
        assert await select("env=staging") == []
        every = await backend.list(svc.ListRequest(kind="Agent", label_selector=f"scope={scope}"))
        assert [ids[r.agent.metadata.id] for r in every.resources] == ["a", "b", "c"]
        for bad in ("=x", "a==b==c", "a,,b", "bad key=x"):
            await expect_error(
                InvalidArgument, backend.list(svc.ListRequest(kind="Agent", label_selector=bad))
            )
        await expect_error(InvalidArgument, backend.list(svc.ListRequest(kind="Nope")), "Nope")

    async def test_pagination_neither_skips_nor_repeats_while_others_insert(
        self, backend: Backend, backend_peer: Backend
    ) -> None:
        scope = unique("page")
        original = set()
        for i in range(11):
            out = await apply(backend, agent(f"{scope}-{i:02d}", labels={"scope": scope}))
            original.add(out.resource.agent.metadata.id)
        seen: list[str] = []
        token = ""
        extra = 0
        while True:
            page = await backend.list(
                svc.ListRequest(kind="Agent", label_selector=f"scope={scope}", page_size=3, page_token=token)
            )
            assert len(page.resources) <= 3
            seen.extend(r.agent.metadata.id for r in page.resources)
            if extra < 4:  # another client inserts while we page
                await apply(backend_peer, agent(f"{scope}-new-{extra}", labels={"scope": scope}))
                extra += 1
            token = page.next_page_token
            if not token:
                break
        assert len(seen) == len(set(seen)), "an item was returned twice"
        assert original <= set(seen), "an item present before paging started was skipped"
        with pytest.raises(InvalidArgument):
            await backend.list(svc.ListRequest(kind="Agent", page_token="not-a-token"))

    async def test_delete(self, backend: Backend) -> None:
        name = unique("agent")
        await apply(backend, agent(name, instructions="one"))
        await apply(backend, agent(name, instructions="two"))
        deleted = await backend.delete(svc.DeleteRequest(ref=_ref("Agent", name)))
        assert deleted.agent.metadata.name == name and deleted.agent.spec.instructions == "two"
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Agent", name))), name)
        await expect_error(NotFound, backend.delete(svc.DeleteRequest(ref=_ref("Agent", name))), name)
        await expect_error(NotFound, backend.list_versions(svc.ListVersionsRequest(ref=_ref("Agent", name))))
        again = await apply(backend, agent(name))
        assert again.action == CREATED and again.resource.agent.metadata.version == 1
        assert again.resource.agent.metadata.id != deleted.agent.metadata.id


@pytest.mark.asyncio
class TestReferences:
    """A resource naming one that does not exist is refused with NotFound naming the reference."""

    @pytest.mark.parametrize("field", ["environments", "skills", "mcp_servers"])
    async def test_missing_reference_is_refused(self, backend: Backend, field: str) -> None:
        missing = unique("missing")
        name = unique("agent")
        refs: dict[str, Any] = {field: [missing]}
        await expect_error(NotFound, apply(backend, agent(name, **refs)), missing)
        await expect_error(NotFound, backend.get(svc.GetRequest(ref=_ref("Agent", name))))
        builder: Any = {"environments": environment, "skills": skill, "mcp_servers": mcp_server}[field]
        await apply(backend, builder(missing))
        out = await apply(backend, agent(name, **refs))
        assert out.action == CREATED

    async def test_missing_reference_in_dry_run_is_refused_too(self, backend: Backend) -> None:
        missing = unique("missing")
        await expect_error(
            NotFound, apply(backend, agent(unique("agent"), environments=[missing]), True), missing
        )
