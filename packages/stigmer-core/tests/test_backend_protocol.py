"""The Backend protocol and the BackendService contract cannot drift."""

import inspect
import re
import typing
from collections.abc import AsyncIterator

from stigmer.core import Backend, Runner
from stigmer.proto.v1 import backend_service_pb2


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


SERVICE = backend_service_pb2.DESCRIPTOR.services_by_name["BackendService"]


def _hints(name: str) -> dict[str, typing.Any]:
    return typing.get_type_hints(getattr(Backend, name))


def test_every_rpc_has_a_method_with_matching_types() -> None:
    assert len(SERVICE.methods) == 25
    for method in SERVICE.methods:
        attr = _snake(method.name)
        assert hasattr(Backend, attr), f"Backend lacks {attr} for rpc {method.name}"
        hints = _hints(attr)
        params = [p for p in inspect.signature(getattr(Backend, attr)).parameters if p != "self"]
        assert params == ["request"], (attr, params)
        assert hints["request"].DESCRIPTOR.full_name == method.input_type.full_name, attr
        ret = hints["return"]
        if method.server_streaming:
            assert typing.get_origin(ret) is AsyncIterator, attr
            (item,) = typing.get_args(ret)
            assert item.DESCRIPTOR.full_name == method.output_type.full_name, attr
            assert not inspect.iscoroutinefunction(getattr(Backend, attr))
        else:
            assert ret.DESCRIPTOR.full_name == method.output_type.full_name, attr
            assert inspect.iscoroutinefunction(getattr(Backend, attr)), attr


def test_protocol_has_no_method_outside_the_contract() -> None:
    rpc_methods = {_snake(m.name) for m in SERVICE.methods}
    own = {name for name, value in vars(Backend).items() if not name.startswith("_") and callable(value)}
    assert own - rpc_methods == {"close"}


def test_runner_protocol_shape() -> None:
    sig = inspect.signature(Runner.execute)
    assert list(sig.parameters) == ["self", "backend", "execution_id"]
    assert inspect.iscoroutinefunction(Runner.execute)
