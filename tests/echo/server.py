"""A tiny gRPC server with reflection, for the gateway tests: `python server.py GENERATED_DIR`.

It serves test.echo.v1.Echo (compiled from echo.proto by the test into GENERATED_DIR), answers
each call with the request and metadata it received, and prints its port.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection

sys.path.insert(0, sys.argv[1])
import echo_pb2
import echo_pb2_grpc


# The stubs are compiled at run time, so to mypy the servicer base and the messages are Any.
class Echo(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
    async def Say(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request.message.text == "fail":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
        text = request.message.text
        return self._reply(request, context, text.upper() if request.shout else text)

    async def Find(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return self._reply(request, context, ",".join(request.tags))

    @staticmethod
    def _reply(request: Any, context: grpc.aio.ServicerContext[Any, Any], text: str) -> Any:
        received = context.invocation_metadata()
        assert received is not None
        # Binary metadata (`-bin` keys) comes back as hex, so a test can see the bytes.
        metadata = {k: v if isinstance(v, str) else f"bytes:{v.hex()}" for k, v in received}
        return echo_pb2.SayReply(
            text=text,
            request_json=json_format.MessageToJson(request, indent=None, sort_keys=True),
            metadata=metadata,
        )


async def main() -> None:
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    name = echo_pb2.DESCRIPTOR.services_by_name["Echo"].full_name
    reflection.enable_server_reflection([name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


asyncio.run(main())
