"""A tiny gRPC server with reflection, for the gateway tests: `python server.py GENERATED_DIR`.

It serves test.echo.v1.Echo (compiled from echo.proto by the test into GENERATED_DIR), answers
each call with the request and metadata it received, and prints its port.
"""

from __future__ import annotations

import asyncio
import sys

import grpc
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection

sys.path.insert(0, sys.argv[1])
import echo_pb2
import echo_pb2_grpc


class Echo(echo_pb2_grpc.EchoServicer):
    async def Say(self, request, context):  # type: ignore[no-untyped-def]
        if request.message.text == "fail":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
        text = request.message.text
        return self._reply(request, context, text.upper() if request.shout else text)

    async def Find(self, request, context):  # type: ignore[no-untyped-def]
        return self._reply(request, context, ",".join(request.tags))

    @staticmethod
    def _reply(request, context, text):  # type: ignore[no-untyped-def]
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
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
