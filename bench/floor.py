"""The floor: a bare grpc.aio FileService that answers with constants and does nothing else.

It has our server's gRPC options and our generated servicer base, so what separates the two in a
benchmark is our work (domain rules, SQLite, building responses), not the gRPC stack.

    python -m bench.floor [--listen 127.0.0.1:0]

prints `floor serving gRPC on HOST:PORT` on stdout once it accepts calls; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import grpc
from yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2, file_service_pb2_grpc

from bench.workload import constant_file, constant_page
from server.app import MAX_MESSAGE_BYTES

_FILE = constant_file()
_PAGE = constant_page()
_URL = file_service_pb2.GetFileUrlResponse(url="http://127.0.0.1/files/v1/files/f/content")
_DELETED = file_service_pb2.DeleteFileResponse()


class FloorServicer(file_service_pb2_grpc.FileServiceServicer):
    """Every method answers one prebuilt message, whatever it is asked."""

    async def Create(
        self, request: file_service_pb2.CreateFileRequest, context: Any
    ) -> file_pb2.File:
        return _FILE

    async def Get(self, request: file_service_pb2.GetFileRequest, context: Any) -> file_pb2.File:
        return _FILE

    async def Update(
        self, request: file_service_pb2.UpdateFileRequest, context: Any
    ) -> file_pb2.File:
        return _FILE

    async def GetUrl(
        self, request: file_service_pb2.GetFileUrlRequest, context: Any
    ) -> file_service_pb2.GetFileUrlResponse:
        return _URL

    async def Delete(
        self, request: file_service_pb2.DeleteFileRequest, context: Any
    ) -> file_service_pb2.DeleteFileResponse:
        return _DELETED

    async def List(
        self, request: file_service_pb2.ListFilesRequest, context: Any
    ) -> file_service_pb2.ListFilesResponse:
        return _PAGE


async def serve(listen: str) -> None:
    # The same options as server.app.Server.start(), nothing else.
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    file_service_pb2_grpc.add_FileServiceServicer_to_server(FloorServicer(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    host = listen.rpartition(":")[0]
    print(f"floor serving gRPC on {host}:{port}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
