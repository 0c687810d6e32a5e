"""Malformed and random requests never crash `stigmer server` or leave it unable to serve.

A real server process (LocalBackend on a SQLite file) receives random bytes as request bodies
through a raw channel, and well-formed messages with random field values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2, resource_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import backend_service_pb2_grpc as svc_grpc
from stigmer.server import ServerProcess, admin_token_path

SERVICE = svc.DESCRIPTOR.services_by_name["BackendService"]
UNARY = [m.name for m in SERVICE.methods if not m.server_streaming]
# Codes a well-formed request may get; INTERNAL or UNKNOWN would mean an unmapped backend error.
EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Client:
    def __init__(self, server: ServerProcess) -> None:
        assert server.address is not None
        self.server = server
        self.channel = grpc.insecure_channel(server.address)
        self.stub = svc_grpc.BackendServiceStub(self.channel)
        token = admin_token_path(server.home).read_text().strip()
        self.meta = (("authorization", f"Bearer {token}"),)

    def code(self, method: str, request: object) -> grpc.StatusCode:
        try:
            call = getattr(self.stub, method)
            if method == "WatchExecution":
                for _ in call(request, metadata=self.meta, timeout=5):
                    pass
            else:
                call(request, metadata=self.meta, timeout=10)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def raw(self, method: str, body: bytes) -> grpc.StatusCode:
        path = f"/stigmer.v1.BackendService/{method}"
        try:
            if method == "WatchExecution":
                for _ in self.channel.unary_stream(path)(body, metadata=self.meta, timeout=5):
                    pass
            else:
                self.channel.unary_unary(path)(body, metadata=self.meta, timeout=10)
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    def assert_serving(self) -> None:
        assert self.server.running(), "the server process died"
        answer = health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        listed = self.stub.List(svc.ListRequest(kind="Agent"), metadata=self.meta, timeout=10)
        assert listed is not None


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    home: Path = tmp_path_factory.mktemp("fuzz")
    server = ServerProcess(
        home=home,
        database_url=f"sqlite:///{home / 'stigmer.db'}",
        args=["--no-run-executions", "--log-level", "WARNING"],
    )
    server.start()
    c = Client(server)
    yield c
    c.channel.close()
    assert server.stop() == 0


@FAST
@given(method=st.sampled_from([*UNARY, "WatchExecution"]), body=st.binary(max_size=300))
def test_random_bytes_never_break_the_server(client: Client, method: str, body: bytes) -> None:
    code = client.raw(method, body)
    assert code in EXPECTED, f"{method} answered {code} for {body!r}"


def test_server_serves_after_random_bytes(client: Client) -> None:
    client.assert_serving()


def test_undecodable_body_is_invalid_argument(client: Client) -> None:
    try:
        client.channel.unary_unary("/stigmer.v1.BackendService/Get")(
            b"\xff\xff\xff", metadata=client.meta, timeout=10
        )
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed request to Get" in (err.details() or "")
    else:
        raise AssertionError("a corrupt body was accepted")


text = st.text(max_size=40)
int32 = st.integers(-(2**31), 2**31 - 1)
ref = st.builds(
    meta_pb2.ResourceRef, kind=st.sampled_from(["", "Agent", "Workflow", "Nope"]) | text, name=text, id=text
)
phase = st.integers(0, 9)

REQUESTS = st.one_of(
    st.tuples(st.just("Get"), st.builds(svc.GetRequest, ref=ref)),
    st.tuples(
        st.just("List"),
        st.builds(
            svc.ListRequest,
            kind=st.sampled_from(["Agent", "Skill", "Environment"]) | text,
            label_selector=text,
            page_size=int32,
            page_token=text,
        ),
    ),
    st.tuples(st.just("Delete"), st.builds(svc.DeleteRequest, ref=ref)),
    st.tuples(st.just("ListVersions"), st.builds(svc.ListVersionsRequest, ref=ref)),
    st.tuples(st.just("GetExecution"), st.builds(svc.GetExecutionRequest, id=text)),
    st.tuples(
        st.just("ListExecutions"),
        st.builds(
            svc.ListExecutionsRequest,
            kind=st.sampled_from(["", "AgentExecution", "WorkflowExecution"]) | text,
            target=ref,
            phase=phase,
            session_id=text,
            page_size=int32,
            page_token=text,
        ),
    ),
    st.tuples(
        st.just("UpdateExecutionStatus"),
        st.builds(
            svc.UpdateExecutionStatusRequest, execution_id=text, phase=phase, checkpoint=text, runner=text
        ),
    ),
    st.tuples(st.just("CancelExecution"), st.builds(svc.CancelExecutionRequest, id=text, reason=text)),
    st.tuples(
        st.just("SubmitApproval"),
        st.builds(svc.SubmitApprovalRequest, execution_id=text, approval_id=text, approved=st.booleans()),
    ),
    st.tuples(st.just("GetExecutionContext"), st.builds(svc.GetExecutionContextRequest, execution_id=text)),
    st.tuples(st.just("SetSecret"), st.builds(svc.SetSecretRequest, name=text, value=text, description=text)),
    st.tuples(st.just("DeleteSecret"), st.builds(svc.DeleteSecretRequest, name=text)),
    st.tuples(st.just("ListSecrets"), st.builds(svc.ListSecretsRequest, prefix=text)),
    st.tuples(
        st.just("PutArtifact"),
        st.builds(svc.PutArtifactRequest, content=st.binary(max_size=200), media_type=text),
    ),
    st.tuples(st.just("GetArtifact"), st.builds(svc.GetArtifactRequest, key=text)),
    st.tuples(
        st.just("WatchExecution"),
        st.builds(
            svc.WatchExecutionRequest, execution_id=text, after_sequence=st.integers(-(2**63), 2**63 - 1)
        ),
    ),
    st.tuples(
        st.just("CreateExecution"),
        st.builds(
            svc.CreateExecutionRequest,
            spec=st.builds(execution_pb2.ExecutionSpec, target=ref, message=text, session_id=text),
            labels=st.dictionaries(text, text, max_size=3),
        ),
    ),
    st.tuples(
        st.just("Apply"),
        st.builds(
            lambda name, labels, instructions: svc.ApplyRequest(
                resource=resource_pb2.Resource(
                    agent=agent_pb2.Agent(
                        api_version="stigmer.ai/v1",
                        kind="Agent",
                        metadata=meta_pb2.Metadata(name=name, labels=labels),
                        spec=agent_pb2.AgentSpec(instructions=instructions),
                    )
                ),
                dry_run=True,
            ),
            text,
            st.dictionaries(text, text, max_size=3),
            text,
        ),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=REQUESTS)
def test_random_field_values_get_a_clear_error_code(client: Client, call: tuple[str, object]) -> None:
    method, request = call
    code = client.code(method, request)
    assert code in EXPECTED, f"{method} answered {code} for {request!r}"


def test_server_serves_after_random_requests(client: Client) -> None:
    client.assert_serving()
    log = (client.server.home / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
