"""The whole HTTP app, on the server's loop: signed downloads, the OpenAPI document, the PDS
face under /v2/ and REST for every other path, with each face's JSON errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from files_api.bodies import MAX_BODY_BYTES
from files_api.domain.links import DOWNLOAD_ROUTE
from files_api.health_http import HEALTHZ, READYZ
from files_api.observe import note_caller
from files_api.openapi import openapi_handler
from files_api.pds import pds_errors
from files_api.rest import json_errors

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from files_api.domain.uploads import Uploads

WRITE_BYTES = 256 * 1024  # a download goes to the socket in slices of this

log = logging.getLogger(__name__)

UPLOADS_KEY: web.AppKey[Uploads] = web.AppKey("uploads")
REST_CATCH_ALL = "/{tail:.*}"


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback, and the exact name as RFC 8187 UTF-8 in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def _download(request: web.Request) -> web.StreamResponse:
    download = await request.app[UPLOADS_KEY].download(
        request.match_info["file_id"],
        request.query.get("expires", ""),
        request.query.get("signature", ""),
    )
    record = download.record
    note_caller("", record.folder_id)
    response = web.StreamResponse(
        headers={
            "Content-Type": record.mime_type,
            "Content-Disposition": content_disposition(record.name or record.id),
        },
    )
    response.content_length = len(download.content)
    await response.prepare(request)
    if request.method != "HEAD":
        # In slices, each awaiting the socket: a slow reader holds back the sending, not
        # another copy of the file in the transport's buffer.
        view = memoryview(download.content)
        for start in range(0, len(view), WRITE_BYTES):
            await response.write(view[start : start + WRITE_BYTES])
    await response.write_eof()
    return response


def face_of(request: web.Request) -> tuple[str, str]:
    """The face a request reached and its route template (REST refines it to the
    transcoder's own template: the catch-all's would say nothing)."""
    template = request.match_info.route.resource
    canonical = template.canonical if template is not None else "unmatched"
    if canonical == DOWNLOAD_ROUTE:
        return "download", canonical
    if canonical.startswith("/v2/"):
        return "pds", canonical
    if canonical in (HEALTHZ, READYZ):
        return "health", canonical
    return "rest", "unmatched" if canonical == REST_CATCH_ALL else canonical


def make_app(
    uploads: Uploads,
    rest: Callable[[web.Request], Awaitable[web.StreamResponse]],
    openapi: dict[str, Any] | None = None,
    pds: Sequence[web.RouteDef] = (),
    *,
    health: Sequence[web.RouteDef] = (),
    edge: Any = None,
) -> web.Application:
    """Health, downloads, the OpenAPI document and the PDS face (under /v2/) first, then REST
    for every other path (the transcoder answers 404/405)."""
    middlewares = [json_errors, pds_errors] if edge is None else [edge, json_errors, pds_errors]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[UPLOADS_KEY] = uploads
    app.router.add_routes(health)
    app.router.add_get(DOWNLOAD_ROUTE, _download)
    if openapi is not None:
        app.router.add_get("/openapi.json", openapi_handler(openapi))
    app.router.add_routes(pds)
    app.router.add_route("*", REST_CATCH_ALL, rest)
    return app
