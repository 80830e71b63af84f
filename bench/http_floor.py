"""The REST floor: a bare aiohttp app that answers `PATCH /files/v1/files/{file_id}` with one
constant JSON File and does nothing else; the download floor: `GET
/files/v1/files/{file_id}/content?size=N` answers the download part's N bytes
(`bench.workload.download_content`), held in memory, with the headers ours sends; and `GET
/healthz` answers as ours does, the least an HTTP answer costs on this stack.

It runs on the stack our HTTP listener runs on (aiohttp's AppRunner and TCPSite, no access log,
the same asyncio loop policy), so what separates the two in a benchmark is our work: routing
through the transcoder, JSON to proto and back, the Update itself, and SQLite. Like ours it reads
the request body before it answers; it does not parse it.

    python -m bench.http_floor [--listen 127.0.0.1:0] [--downloads 65536,1048576]

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
from bench.workload import constant_file, download_content

# The gRPC floor's File in compact proto3 JSON, as our transcoder renders it (files_api.transcoder).
_BODY = json_format.MessageToJson(constant_file(), indent=None).encode() + b"\n"


async def _patch(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=_BODY, content_type="application/json")


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})  # as files_api.health_http answers


_CONTENTS: web.AppKey[dict[str, bytes]] = web.AppKey("contents")


async def _download(request: web.Request) -> web.Response:
    content = request.app[_CONTENTS].get(request.query.get("size", ""))
    if content is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=content,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": 'attachment; filename="bench.bin"',
            "Accept-Ranges": "bytes",
            "ETag": '"0123456789ABCDEF0123456789ABCDEF01234567"',
        },
    )


def make_app(download_sizes: list[int] | None = None) -> web.Application:
    app = web.Application()
    app.router.add_patch("/files/v1/files/{file_id}", _patch)
    app[_CONTENTS] = {str(size): download_content(size) for size in download_sizes or ()}
    app.router.add_get("/files/v1/files/{file_id}/content", _download)
    app.router.add_get("/healthz", _healthz)
    return app


async def serve(listen: str, download_sizes: list[int] | None = None) -> None:
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(make_app(download_sizes), access_log=None)  # as files_api.app does
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
    parser.add_argument(
        "--downloads",
        type=lambda text: [int(size) for size in text.split(",")],
        default=[],
        metavar="SIZES",
        help="comma-separated byte counts to serve as downloads",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(args.listen, args.downloads))


if __name__ == "__main__":
    main()
