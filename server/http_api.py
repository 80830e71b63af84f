"""The HTTP face: signed downloads (GetUrl's links) on an aiohttp app in the server's loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from server.errors import INTERNAL_MESSAGE, DomainError, http_status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from server.domain import Files

log = logging.getLogger(__name__)

FILES_KEY: web.AppKey[Files] = web.AppKey("files")


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback, and the exact name as RFC 8187 UTF-8 in filename*."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _error_response(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as e:
        status = e.to_status()
        return _error_response(http_status(status.code), status.code, status.message)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error_response(500, 13, INTERNAL_MESSAGE)


async def _download(request: web.Request) -> web.StreamResponse:
    files = request.app[FILES_KEY]
    download = await files.download(
        request.match_info["file_id"],
        request.query.get("expires", ""),
        request.query.get("signature", ""),
    )
    record = download.record
    return web.Response(
        body=download.content,
        headers={
            "Content-Type": record.mime_type,
            "Content-Disposition": content_disposition(record.name or record.id),
        },
    )


def make_app(files: Files) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=1024**2)
    app[FILES_KEY] = files
    app.router.add_get("/files/v1/files/{file_id}/content", _download)
    return app
