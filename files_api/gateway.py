"""`python -m files_api.gateway`: REST for any gRPC server that offers reflection.

It asks the target for its services, reads their `google.api.http` rules from the descriptors
it gets back, and serves them with the same transcoder as our in-process REST, forwarding each
call over one channel. No .proto file and no generated code of the target is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from google.api import annotations_pb2  # noqa: F401 (registers the http option for parsing)
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from files_api.app import split_host_port
from files_api.bodies import AUTO_DECOMPRESS
from files_api.openapi import openapi_document, openapi_handler
from files_api.rest import ChannelInvoker, json_errors, rest_handler
from files_api.transcoder import routes_for

if TYPE_CHECKING:
    from files_api.transcoder import Route

log = logging.getLogger("files_api.gateway")

_INFRASTRUCTURE = ("grpc.reflection.", "grpc.health.")
MAX_BODY_BYTES = 256 * 1024**2


def discover(target: str, timeout: float) -> list[Route]:
    """The http rules of every application service the target describes by reflection."""
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"{target} did not answer within {timeout}s") from None
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        routes: list[Route] = []
        for name in database.get_services():
            if name.startswith(_INFRASTRUCTURE):
                continue
            routes.extend(routes_for(pool.FindServiceByName(name)))
    return sorted(routes, key=lambda r: -r.literal_length)


async def serve(target: str, http_listen: str, connect_timeout: float) -> None:
    routes = await asyncio.to_thread(discover, target, connect_timeout)
    if not routes:
        raise ValueError(f"{target} describes no service with google.api.http rules")
    channel = grpc.aio.insecure_channel(target)
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/openapi.json", openapi_handler(openapi_document(routes)))
    app.router.add_route(
        "*", "/{tail:.*}", rest_handler(routes, ChannelInvoker(channel), MAX_BODY_BYTES)
    )
    runner = web.AppRunner(app, access_log=None, auto_decompress=AUTO_DECOMPRESS)
    await runner.setup()
    host, port = split_host_port(http_listen)
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    services = sorted({r.method.containing_service.full_name for r in routes})
    log.info(
        "serving REST on %s:%d for %s at %s (%d routes)",
        host,
        bound,
        ", ".join(services),
        target,
        len(routes),
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await runner.cleanup()
    await channel.close()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m files_api.gateway",
        description="REST/JSON for any gRPC server with reflection, from its http rules.",
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("GATEWAY_TARGET"),
        required="GATEWAY_TARGET" not in os.environ,
        metavar="HOST:PORT",
        help="the gRPC server to front (GATEWAY_TARGET)",
    )
    parser.add_argument(
        "--http-listen",
        default=os.environ.get("GATEWAY_HTTP_LISTEN", "127.0.0.1:8081"),
        metavar="HOST:PORT",
        help="REST address (GATEWAY_HTTP_LISTEN; default %(default)s; port 0 picks a free one)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the target at start (default %(default)s)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args.target, args.http_listen, args.connect_timeout))
    except (OSError, ValueError) as e:
        log.error("cannot start: %s", e)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
