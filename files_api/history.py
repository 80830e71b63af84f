"""The audit history extension of the REST face: `GET /files/v1/files/{file_id}/audit`.

Not in the cloud's API; the console's History section reads it. It is authenticated as every
REST call is, and isolated the same way: a file the key may not see is NOT_FOUND, and so is its
history. `pageSize` (default 50, at most 1,000) and `pageToken` walk the records newest first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from files_api.auth import Caller
from files_api.domain.records import audit_json
from files_api.errors import DomainError, InvalidArgument
from files_api.observe import call_request_id, note_caller
from files_api.request_ids import REQUEST_ID
from files_api.rest import domain_error

if TYPE_CHECKING:
    from collections.abc import Mapping

    from files_api.auth import Authenticator
    from files_api.domain import Files

AUDIT_ROUTE = "/files/v1/files/{file_id}/audit"


def _query(query: Mapping[str, str], name: str, snake: str) -> str:
    """A query parameter by its JSON name or its proto name, as REST's own calls take them."""
    return query.get(name, query.get(snake, ""))


def _page_size(text: str) -> int:
    if not text:
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise InvalidArgument.field("page_size", "must be a whole number (at most 1000 are given)")
    return int(text)


def history_routes(files: Files, auth: Authenticator) -> list[web.RouteDef]:
    async def history(request: web.Request) -> web.StreamResponse:
        call_id = call_request_id(request.headers.get(REQUEST_ID))
        try:
            found = auth.authenticate(request.headers.get("Authorization"))
            note_caller(found.subject, "")
            page = await files.history(
                request.match_info["file_id"],
                Caller(found.subject, found.folders, call_id),
                _page_size(_query(request.query, "pageSize", "page_size")),
                _query(request.query, "pageToken", "page_token"),
            )
        except DomainError as e:
            return domain_error(e, call_id)
        note_caller("", page.folder_id)
        body = {
            "records": [audit_json(event) for event in page.records],
            "nextPageToken": page.next_page_token,
        }
        return web.Response(
            text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            content_type="application/json",
            headers={REQUEST_ID: call_id},
        )

    async def other_methods(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])

    return [web.get(AUDIT_ROUTE, history), web.route("*", AUDIT_ROUTE, other_methods)]
