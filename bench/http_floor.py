"""The REST floor: a bare aiohttp app that answers `PATCH /files/v1/files/{file_id}` with one
constant JSON File and does nothing else.

It runs on the stack our HTTP listener runs on (aiohttp's AppRunner and TCPSite, no access log,
the same asyncio loop policy), so what separates the two in a benchmark is our work: routing
through the transcoder, JSON to proto and back, the Update itself, and SQLite. Like ours it reads
the request body before it answers; it does not parse it.

    python -m bench.http_floor [--listen 127.0.0.1:0]

prints `bare aiohttp serving HTTP on HOST:PORT` on stdout once it accepts requests; SIGTERM
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web
from google.protobuf import json_format

from bench.stopping import until_stopped
from bench.workload import constant_file

# The gRPC floor's File in compact proto3 JSON, as our transcoder renders it (files_api.transcoder).
_BODY = json_format.MessageToJson(constant_file(), indent=None).encode() + b"\n"


async def _patch(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=_BODY, content_type="application/json")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_patch("/files/v1/files/{file_id}", _patch)
    return app


async def serve(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(make_app(), access_log=None)  # as files_api.app does
    await runner.setup()
    site = web.TCPSite(runner, host, int(port))
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"bare aiohttp serving HTTP on {host}:{bound}", flush=True)
    await until_stopped()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_floor", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
