"""A real gRPC service on 127.0.0.1 for ``call: grpc`` (grpcio, messages from ``greeter.proto``)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Self

__all__ = ["GREETER_PROTO", "GrpcGreeter"]

#: The ``.proto`` of :class:`GrpcGreeter` (package ``stigmer.test.greeter``, service ``Greeter``).
GREETER_PROTO: Final = Path(__file__).with_name("greeter.proto")


def _modules() -> tuple[Any, Any]:
    import grpc

    folder = str(GREETER_PROTO.parent)
    sys.path.insert(0, folder)
    try:
        return grpc.protos_and_services(GREETER_PROTO.name)  # type: ignore[no-any-return]
    finally:
        sys.path.remove(folder)


class GrpcGreeter:
    """``Greeter`` of :data:`GREETER_PROTO` served by a ``grpc.aio`` server on a free port:

    - ``SayHello`` (unary) answers ``Hello, <name>!``, ``count`` = ``times``, ``user_name`` =
      ``display_name``, ``at`` = the epoch, and the call's ``authorization`` metadata;
    - ``SayHellos`` (server streaming) answers ``times`` messages ``Hello #<n>, <name>!``;
    - ``Collect`` (client streaming) is declared only.

    ``async with GrpcGreeter() as greeter: greeter.port``; every ``SayHello`` request's metadata
    is kept in ``metadata``.
    """

    def __init__(self) -> None:
        self.port = 0
        self.metadata: list[dict[str, str]] = []
        self._server: Any = None

    async def start(self) -> Self:
        import grpc

        protos, services = _modules()
        greeter = self

        class _Greeter(services.GreeterServicer):  # type: ignore[misc,name-defined]
            async def SayHello(self, request: Any, context: Any) -> Any:
                metadata = {str(k): str(v) for k, v in context.invocation_metadata() or ()}
                greeter.metadata.append(metadata)
                reply = protos.HelloReply(
                    message=f"Hello, {request.name}!",
                    count=request.times,
                    user_name=request.display_name,
                    authorization=metadata.get("authorization", ""),
                )
                reply.at.FromSeconds(0)
                return reply

            async def SayHellos(self, request: Any, context: Any) -> AsyncIterator[Any]:
                for index in range(request.times):
                    yield protos.HelloReply(message=f"Hello #{index + 1}, {request.name}!", count=index + 1)

        self._server = grpc.aio.server()
        services.add_GreeterServicer_to_server(_Greeter(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
