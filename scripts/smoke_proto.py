"""Run in a venv holding only the stigmer-proto wheel: build an Agent and round-trip it through bytes."""

from __future__ import annotations

import importlib.util
import sys

from stigmer.proto.v1 import agent_pb2, meta_pb2, resource_pb2


def main() -> int:
    if importlib.util.find_spec("grpc") is not None:
        print("grpc is installed, but stigmer-proto alone must not pull it in", file=sys.stderr)
        return 1
    agent = agent_pb2.Agent(
        api_version="stigmer.ai/v1",
        kind="Agent",
        metadata=meta_pb2.Metadata(name="support-bot", labels={"team": "support"}),
        spec=agent_pb2.AgentSpec(
            instructions="Answer briefly.",
            model=agent_pb2.ModelConfig(provider="openai", name="gpt-4o-mini"),
            mcp_servers=[agent_pb2.McpServerUsage(name="github", require_approval=["create_issue"])],
        ),
    )
    data = resource_pb2.Resource(agent=agent).SerializeToString()
    back = resource_pb2.Resource.FromString(data)
    if back.agent != agent or back.WhichOneof("kind") != "agent":
        print("round trip changed the message", file=sys.stderr)
        return 1
    print(f"stigmer-proto ok: Agent round-tripped through {len(data)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
