"""The gRPC effect of ``call: grpc``: compile the ``.proto`` at run time, call, answer JSON.

The ``.proto`` is compiled by protoc from ``grpcio-tools`` (the runner's ``grpc`` extra), run as
a child process (``python -m grpc_tools.protoc``) that writes a ``FileDescriptorSet``: protoc
is the reference parser (imports, options, proto2 and proto3, editions), a child process keeps
its errors on its own stderr and cannot stall the event loop, and the set loads into
``protobuf``'s own descriptor pool — so request and response messages are dynamic messages,
built from ``arguments`` with ``json_format.ParseDict`` and answered with
``json_format.MessageToDict`` (the proto3 JSON mapping: lowerCamelCase field names, 64-bit
integers as strings, default values left out — what other runtimes, e.g. sdk-java's
``JsonFormat.printer()``, answer). Compiled protos are cached by their text.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from stigmer.core import header_problem

from ._errors import ErrorKind, WorkflowError
from ._host import GrpcRequest

__all__ = ["MAX_RESOURCE_BYTES", "ProtoCache", "call_grpc", "proto_file"]

#: The largest ``.proto`` (or ``run.script.source`` script) a task may fetch.
MAX_RESOURCE_BYTES: Final = 1024 * 1024
#: Compiled protos a host keeps.
_CACHED: Final = 64
_PROTOC_SECONDS: Final = 60.0
_INSTALL: Final = "install them with `pip install 'stigmer-runner-workflow[grpc]'` (grpcio, grpcio-tools)"

# gRPC status codes as HTTP statuses (the mapping of grpc-gateway and the gRPC HTTP spec).
_HTTP_STATUS: Final[Mapping[str, int]] = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


@dataclass
class _Compiled:
    pool: Any  # google.protobuf.descriptor_pool.DescriptorPool
    files: list[Any]  # FileDescriptorProto, the compiled file last


class ProtoCache:
    """Compiled protos by the digest of their text (and include folder), least recently used out."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, _Compiled] = OrderedDict()

    def get(self, key: str) -> _Compiled | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: str, value: _Compiled) -> None:
        self._items[key] = value
        while len(self._items) > _CACHED:
            self._items.popitem(last=False)


def proto_file(uri: str) -> Path | None:
    """The local path of a ``file://`` (or plain path) proto resource; None for other schemes.

    ``file:///abs/x.proto`` is absolute; ``file://app/x.proto`` (the DSL reference's example)
    and a bare ``app/x.proto`` are relative to the current folder."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc and parts.netloc != "localhost":
            return Path(unquote(parts.netloc + parts.path))
        return Path(unquote(parts.path))
    if not parts.scheme:
        return Path(uri)
    return None


def _config(detail: str) -> WorkflowError:
    return WorkflowError.of(ErrorKind.CONFIGURATION, detail)


async def _compile(request: GrpcRequest, cache: ProtoCache) -> _Compiled:
    if importlib.util.find_spec("grpc_tools") is None or importlib.util.find_spec("grpc") is None:
        raise _config(f"call: grpc needs grpcio and protoc, which are not installed; {_INSTALL}")
    include: Path | None = None
    if request.proto is None:
        path = proto_file(request.proto_uri)
        if path is None:
            raise _config(f"the proto resource {request.proto_uri} is neither file:// nor http(s)")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _config(f"cannot read the proto resource {request.proto_uri}: {exc.strerror}") from None
        if len(data) > MAX_RESOURCE_BYTES:
            raise _config(f"the proto resource {request.proto_uri} is larger than {MAX_RESOURCE_BYTES} bytes")
        text = data.decode("utf-8", "replace")
        include, name = path.resolve().parent, path.name
    else:
        text = request.proto
        name = Path(urlsplit(request.proto_uri).path).name or "service.proto"
        if not name.endswith(".proto"):
            name += ".proto"
    key = hashlib.sha256(f"{include}\0{name}\0{text}".encode()).hexdigest()
    found = cache.get(key)
    if found is not None:
        return found
    compiled = await _protoc(text, name, include, request.proto_uri)
    cache.put(key, compiled)
    return compiled


async def _protoc(text: str, name: str, include: Path | None, uri: str) -> _Compiled:
    from google.protobuf import descriptor_pb2, descriptor_pool

    with tempfile.TemporaryDirectory(prefix="stigmer-proto-") as folder:
        root = Path(folder)
        (root / name).write_text(text, encoding="utf-8")
        out = root / "set.pb"
        argv = [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}"]
        if include is not None:
            argv.append(f"-I{include}")
        argv += [f"--descriptor_set_out={out}", "--include_imports", name]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=folder
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), _PROTOC_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        if process.returncode != 0:
            message = err.decode("utf-8", "replace").replace(str(root) + "/", "").strip()
            raise _config(f"the proto resource {uri} does not compile: {message[:500]}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    return _Compiled(pool, list(files))


def _service(compiled: _Compiled, wanted: str) -> Any:
    """The service named ``wanted`` (full name, or its name without the package)."""
    names: list[str] = []
    for file in reversed(compiled.files):  # the compiled file first, then its imports
        for service in file.service:
            full = f"{file.package}.{service.name}" if file.package else service.name
            names.append(full)
            if wanted in (full, service.name):
                return compiled.pool.FindServiceByName(full)
    listed = ", ".join(names) or "none"
    raise _config(f"service {wanted!r} is not in the proto resource (services: {listed})")


async def call_grpc(request: GrpcRequest, cache: ProtoCache) -> Any:
    """Make the call ``request`` describes; the response as JSON data (a list for a server stream)."""
    compiled = await _compile(request, cache)  # first: it says when grpcio is missing
    import grpc
    from google.protobuf import json_format, message_factory

    service = _service(compiled, request.service)
    method = service.methods_by_name.get(request.method)
    if method is None:
        methods = ", ".join(sorted(service.methods_by_name)) or "none"
        raise _config(f"method {request.method!r} is not in service {service.full_name} (methods: {methods})")
    if method.client_streaming:
        raise _config(
            f"{service.full_name}.{method.name} is a client or bidirectional streaming method; "
            "call: grpc supports unary and server streaming methods"
        )
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    arguments = request.arguments if request.arguments is not None else {}
    try:
        message = json_format.ParseDict(arguments, request_type())
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise WorkflowError.of(
            ErrorKind.VALIDATION, f"the arguments are not a {method.input_type.full_name}: {exc}"
        ) from None
    target = f"{request.host}:{request.port}"
    path = f"/{service.full_name}/{method.name}"
    metadata = tuple((k.lower(), v) for k, v in request.metadata.items())
    for name, value in metadata:
        problem = header_problem(name, value)
        if problem:
            raise _config(f"gRPC {path} not called: {problem}")

    def to_json(reply: Any) -> Any:
        return json_format.MessageToDict(reply)

    channel = (
        grpc.aio.secure_channel(target, grpc.ssl_channel_credentials())
        if request.port == 443
        else grpc.aio.insecure_channel(target)
    )
    try:
        async with channel:
            if method.server_streaming:
                stream = channel.unary_stream(
                    path,
                    request_serializer=request_type.SerializeToString,
                    response_deserializer=response_type.FromString,
                )
                return [to_json(reply) async for reply in stream(message, metadata=metadata)]
            unary = channel.unary_unary(
                path,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )
            return to_json(await unary(message, metadata=metadata))
    except grpc.aio.AioRpcError as error:
        code = error.code().name
        details = (error.details() or "").strip()
        raise WorkflowError.of(
            ErrorKind.COMMUNICATION,
            f"gRPC {path} at {target} failed: {code}" + (f": {details[:500]}" if details else ""),
            status=_HTTP_STATUS.get(code, 500),
        ) from None
