"""The whole HTTP app, on the server's loop: signed downloads, the OpenAPI document, the web
console under /console/, the PDS face under /v2/ and REST for every other path, with each
face's JSON errors."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import logging
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from aiohttp import web

from files_api.bodies import MAX_BODY_BYTES
from files_api.domain.links import DOWNLOAD_ROUTE
from files_api.domain.records import not_found
from files_api.health_http import HEALTHZ, READYZ
from files_api.observe import note_caller
from files_api.openapi import openapi_handler
from files_api.pds import pds_errors
from files_api.rest import json_errors
from files_api.store import ContentGone

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from files_api.domain.uploads import Uploads
    from files_api.store import Content


log = logging.getLogger(__name__)

UPLOADS_KEY: web.AppKey[Uploads] = web.AppKey("uploads")
REST_CATCH_ALL = "/{tail:.*}"


@functools.lru_cache(maxsize=1024)
def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback, and the exact name as RFC 8187 UTF-8 in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


# RFC 9110 section 14.1.2: one byte range, `first-last`, `first-` or `-suffix`. Anything else
# (another unit, several ranges, junk) is a Range the server may ignore: the whole file, 200.
_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.ASCII)
_BEYOND = 2**63  # a position of more digits than this holds is past any file
UNSATISFIABLE: Final = "unsatisfiable"


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _BEYOND  # no 5,000-digit int() (a 500)


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The [start, end) a Range header asks of `size` bytes: None for the whole file (no
    header, or one to ignore), UNSATISFIABLE for a range that selects nothing (416)."""
    match = _RANGE.fullmatch(header) if header else None
    if match is None:
        return None
    first, last = match[1], match[2]
    if not first:
        if not last:
            return None
        suffix = _position(last)
        if suffix == 0:
            return UNSATISFIABLE
        # A suffix of a zero-length file is satisfiable (section 14.1.1) but has no bytes to
        # name in a Content-Range: the whole (empty) file is the answer.
        return (max(0, size - suffix), size) if size else None
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid: ignored, as section 14.2 allows
    if start >= size:
        return UNSATISFIABLE
    return start, min(size, _position(last) + 1) if last else size


def _matches(header: str, tag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 section 13.1.2): W/ prefixes do not count."""
    return any(
        candidate == "*" or candidate.removeprefix("W/") == tag
        for candidate in (item.strip() for item in header.split(","))
    )


async def _download(request: web.Request) -> web.StreamResponse:
    """A signed link's content, streamed from the store a chunk at a time, each written only
    once the socket took the one before: a reader that stops reading holds one chunk here.

    RFC 9110: a strong ETag (the content's SHA-1; content never changes under a file id),
    If-None-Match (304), one byte Range (206, or 416) and If-Range. HEAD reads no content and
    is not activity. The link is checked before any of it (`Uploads.download`).
    """
    head = request.method == "HEAD"
    blob = await request.app[UPLOADS_KEY].download(
        request.match_info["file_id"],
        request.query.get("expires", ""),
        request.query.get("signature", ""),
        active=not head,
    )
    record = blob.record
    note_caller("", record.folder_id)
    tag = f'"{record.content_hash}"'
    headers = {
        "Content-Type": record.mime_type,
        "Content-Disposition": content_disposition(record.name or record.id),
        "Accept-Ranges": "bytes",
        "ETag": tag,
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, tag):
        return web.Response(status=304, headers={"ETag": tag, "Accept-Ranges": "bytes"})
    size = record.size
    wanted = None
    if not head and request.headers.get("If-Range", tag) == tag:  # section 13.1.5: strong match
        wanted = byte_range(request.headers.get("Range"), size)
    if wanted == UNSATISFIABLE:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    status, start, end = 200, 0, size
    if isinstance(wanted, tuple):
        (start, end), status = wanted, 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    chunks = blob.chunks(start, start if head else end)
    first = None
    if not head and end > start:
        try:
            first = await anext(chunks)
        except ContentGone:
            raise not_found(record.id) from None  # deleted since opened: nothing sent yet
    if first is not None and len(first) == end - start:
        # All of it in one piece: sent with its headers in one write, as a bare handler would.
        # Closed here, not left to the loop's finalizer hook, which costs a task and a wake-up.
        await chunks.aclose()
        return web.Response(status=status, headers=headers, body=first)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = end - start
    await _send(request, response, first, chunks)
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    first: Content | None,
    rest: AsyncIterator[Content],
) -> None:
    """Sends the headers and the body, `first` then `rest`, each piece once the socket took
    the one before; a client gone (before its headers, or halfway), or content deleted
    halfway, ends the connection (never a short body on one kept alive)."""
    try:
        await response.prepare(request)
        if first is not None:
            await response.write(first)
        async for chunk in rest:
            await response.write(chunk)  # waits while the socket's buffer is full
        await response.write_eof()
    except ContentGone as gone:
        log.info("file %s was deleted while downloaded; the connection is closed", gone)
    except ConnectionError:
        log.debug("a download's client went away")  # the access log has the request
    else:
        return
    response.force_close()
    if request.transport is not None:
        request.transport.abort()


async def _download_methods(request: web.Request) -> web.StreamResponse:
    """A link is for GET and HEAD: any other method is 405 naming them, not REST's 404."""
    raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])


CONSOLE = "/console"
CONSOLE_ROUTE = "/console/{path:.*}"
CONSOLE_TEMPLATE = "/console/{path}"  # the route as metrics and logs name it (its canonical)
# Every console answer: the app's own files only (no inline script or style, so a name that is
# markup stays text even if a bug put it into the DOM as HTML), no sniffing, no Referer (a
# file's page URL names the file).
CONSOLE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_CONSOLE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclasses.dataclass(frozen=True)
class ConsoleFile:
    body: bytes
    content_type: str
    etag: str


@functools.cache
def console_files() -> dict[str, ConsoleFile]:
    """The console's files by name, read once from the package: a request picks one of these
    by its exact name, so no path it sends (`..`, encoded slashes) reaches the file system."""
    folder = importlib.resources.files("files_api") / "console"
    files = {}
    for item in folder.iterdir():
        content_type = _CONSOLE_TYPES.get(item.name[item.name.rfind(".") :])
        if content_type is not None and item.is_file():
            body = item.read_bytes()
            tag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
            files[item.name] = ConsoleFile(body, content_type, tag)
    return files


async def _console(request: web.Request) -> web.StreamResponse:
    """A console file by name; any other path under /console/ is the app itself, which reads
    the path (`/console/folders/{id}`, `/console/files/{id}`) so a typed or reloaded URL works.

    Not versioned by name, so every answer is revalidated (no-cache) against its ETag.
    """
    headers = dict(CONSOLE_HEADERS)
    if request.method not in ("GET", "HEAD"):
        headers["Allow"] = "GET, HEAD"
        return web.Response(status=405, headers=headers)
    if "path" not in request.match_info:  # /console itself
        headers["Location"] = CONSOLE + "/"
        return web.Response(status=301, headers=headers)
    files = console_files()
    page = files.get(request.match_info["path"]) or files["index.html"]
    headers["ETag"] = page.etag
    headers["Cache-Control"] = "no-cache"
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, page.etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = page.content_type
    return web.Response(body=page.body, headers=headers)


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
    if canonical in (CONSOLE, CONSOLE_TEMPLATE):
        return "console", canonical
    return "rest", "unmatched" if canonical == REST_CATCH_ALL else canonical


def make_app(
    uploads: Uploads,
    rest: Callable[[web.Request], Awaitable[web.StreamResponse]],
    openapi: dict[str, Any] | None = None,
    routes: Sequence[web.RouteDef] = (),
    *,
    health: Sequence[web.RouteDef] = (),
    edge: Any = None,
) -> web.Application:
    """Health, downloads, the OpenAPI document and the console, then `routes` (the PDS face
    under /v2/, the extensions), then REST for every other path (the transcoder answers
    404/405)."""
    middlewares = [json_errors, pds_errors] if edge is None else [edge, json_errors, pds_errors]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[UPLOADS_KEY] = uploads
    app.router.add_routes(health)
    app.router.add_get(DOWNLOAD_ROUTE, _download)
    app.router.add_route("*", DOWNLOAD_ROUTE, _download_methods)
    if openapi is not None:
        app.router.add_get("/openapi.json", openapi_handler(openapi))
    app.router.add_route("*", CONSOLE, _console)
    app.router.add_route("*", CONSOLE_ROUTE, _console)
    app.router.add_routes(routes)
    app.router.add_route("*", REST_CATCH_ALL, rest)
    return app
