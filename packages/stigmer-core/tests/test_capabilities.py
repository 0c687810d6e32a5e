"""What an ExecutionContext.config grants: only an explicit ``true`` counts."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from stigmer.core import (
    CAPABILITY_RUN,
    CapabilityDenied,
    PermissionDenied,
    capabilities_config,
    has_capability,
)


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    config = struct_pb2.Struct()
    config.update(data)
    return config


def test_granted_reads_the_struct_the_backend_sends() -> None:
    assert has_capability(_struct(capabilities_config(run=True)), CAPABILITY_RUN)
    assert not has_capability(_struct(capabilities_config(run=False)), CAPABILITY_RUN)
    assert has_capability(capabilities_config(run=True), CAPABILITY_RUN)  # a plain mapping too


def test_anything_but_an_explicit_true_is_a_refusal() -> None:
    # An older server sends no config at all: nothing is granted.
    assert not has_capability(struct_pb2.Struct(), CAPABILITY_RUN)
    assert not has_capability(None, CAPABILITY_RUN)
    assert not has_capability(_struct({"capabilities": {"run": "true"}}), CAPABILITY_RUN)
    assert not has_capability(_struct({"capabilities": {"run": 1}}), CAPABILITY_RUN)
    assert not has_capability(_struct({"capabilities": True}), CAPABILITY_RUN)
    assert not has_capability(_struct({"run": True}), CAPABILITY_RUN)
    assert not has_capability({"capabilities": {"run": 1}}, CAPABILITY_RUN)
    assert not has_capability(_struct(capabilities_config(run=True)), "network")


def test_the_refusal_says_who_can_enable_it() -> None:
    err = CapabilityDenied("run: shell")
    assert isinstance(err, PermissionDenied)
    assert str(err) == (
        "run: shell is not allowed on this server; an admin can enable it with `stigmer server --allow-run`"
    )
    assert "\n" not in str(err)
