"""stigmer-proto alone: messages build, serialize and carry the contract's shape without grpcio."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

import pytest
import stigmer.proto.v1 as v1
from google.protobuf import json_format
from stigmer.proto.v1 import agent_pb2, backend_service_pb2, execution_pb2, meta_pb2, resource_pb2


def test_every_generated_message_module_imports_without_grpc() -> None:
    names = [m.name for m in pkgutil.iter_modules(v1.__path__) if m.name.endswith("_pb2")]
    assert len(names) == 15
    for name in names:
        module = importlib.import_module(f"stigmer.proto.v1.{name}")
        assert module.DESCRIPTOR.package == "stigmer.v1"


def test_agent_round_trips_through_bytes_and_json() -> None:
    agent = agent_pb2.Agent(
        api_version="stigmer.ai/v1",
        kind="Agent",
        metadata=meta_pb2.Metadata(name="support-bot", labels={"team": "support"}, version=3),
        spec=agent_pb2.AgentSpec(
            instructions="Answer briefly.",
            model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini"),
            mcp_servers=[agent_pb2.McpServerUsage(name="github", tools=["a", "b"], require_approval=["b"])],
            environments=["prod"],
        ),
    )
    wrapped = resource_pb2.Resource(agent=agent)
    back = resource_pb2.Resource.FromString(wrapped.SerializeToString())
    assert back == wrapped
    assert back.WhichOneof("kind") == "agent"
    as_json = json_format.MessageToDict(agent)
    assert as_json["spec"]["mcpServers"][0]["requireApproval"] == ["b"]
    assert json_format.ParseDict(as_json, agent_pb2.Agent()) == agent


def test_service_descriptor_lists_every_rpc() -> None:
    service = backend_service_pb2.DESCRIPTOR.services_by_name["BackendService"]
    assert service.full_name == "stigmer.v1.BackendService"
    assert [m.name for m in service.methods if m.server_streaming] == ["WatchExecution"]
    assert len(service.methods) == 25


def test_phase_enum_values() -> None:
    assert execution_pb2.Phase.Name(execution_pb2.PHASE_WAITING_APPROVAL) == "PHASE_WAITING_APPROVAL"
    assert [v.name for v in execution_pb2.Phase.DESCRIPTOR.values][1:] == [
        "PHASE_PENDING",
        "PHASE_RUNNING",
        "PHASE_WAITING_APPROVAL",
        "PHASE_SUCCEEDED",
        "PHASE_FAILED",
        "PHASE_CANCELLED",
    ]


def test_grpc_stubs_need_the_grpc_extra() -> None:
    if importlib.util.find_spec("grpc") is None:
        with pytest.raises(ImportError):
            importlib.import_module("stigmer.proto.v1.backend_service_pb2_grpc")
    else:
        stubs = importlib.import_module("stigmer.proto.v1.backend_service_pb2_grpc")
        assert hasattr(stubs, "BackendServiceStub")
        assert hasattr(stubs, "add_BackendServiceServicer_to_server")
