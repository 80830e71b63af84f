"""The PDS face: Alibaba Cloud PDS's file API (version 2022-03-01) over the same domain.

PDS's official SDK posts snake_case JSON to `/v2/file/<operation>` with `Authorization: Bearer
KEY` and reads a JSON answer; an error is `{"code": ..., "message": ...}` with PDS's code names.
This module only decodes and encodes: every rule (validation, name conflicts, paging, signed
links) is `files_api.domain`'s. A PDS drive is one of our folders; PDS's folder tree is flat here,
with `root` the only parent.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from files_api.auth import CHALLENGE, Caller
from files_api.bodies import MAX_PDS_BODY_BYTES, read_body
from files_api.domain.drive import Edits
from files_api.domain.limits import DEFAULT_PDS_URL_TTL_SECONDS, MAX_URL_TTL_SECONDS
from files_api.domain.links import UPLOAD_ROUTE
from files_api.domain.naming import parse_mode, split_extension
from files_api.domain.uploads import NewUpload
from files_api.errors import AlreadyExists, DomainError, InvalidArgument, Unauthenticated
from files_api.observe import call_request_id, note_caller
from files_api.request_ids import REQUEST_ID
from files_api.store import Order

if TYPE_CHECKING:
    import builtins
    from collections.abc import Awaitable, Callable

    from files_api.auth import Authenticator
    from files_api.domain import Drive
    from files_api.store import FileRecord

log = logging.getLogger(__name__)

ROOT = "root"
# The framework's own refusals, in PDS's words.
_HTTP_CODES = {
    400: "InvalidParameter",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "EntityTooLarge",
    415: "InvalidParameter.ContentEncoding",
}

_ORDER_KEYS = {
    "created_at": "created_at_ns",
    "updated_at": "updated_at_ns",
    "name": "name",
    "size": "size",
}
_UTC = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:Z|[+-]00:?00)"
)
_DOCUMENT_TYPES = re.compile(
    r"text/.*|application/(pdf|rtf|msword|vnd\.ms-.*|vnd\.openxmlformats-officedocument\..*"
    r"|vnd\.oasis\.opendocument\..*)"
)


class PdsError(Exception):
    """A refusal of this face's own (not the domain's), already in PDS's terms."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(error: DomainError) -> tuple[int, dict[str, Any]]:
    """The error's PDS status and body; InvalidArgument names its first field in the code."""
    code = error.pds_code
    if isinstance(error, InvalidArgument) and error.violations:
        code = f"{code}.{_camel(error.violations[0][0])}"
    body: dict[str, Any] = {"code": code, "message": error.message}
    if isinstance(error, AlreadyExists):
        body["file_id"] = error.resource  # PDS is loose here; we pin it
    return error.pds_status, body


def _camel(field: str) -> str:
    """`local_modified_at` -> `LocalModifiedAt`; `labels['a']` -> `Labels`."""
    return "".join(part.capitalize() for part in re.split(r"[_.]", re.split(r"[\[(]", field)[0]))


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


CALL_ID: web.RequestKey[str] = web.RequestKey("call_id", str)


@web.middleware
async def pds_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Under /v2/ every error is PDS's JSON (the SDK cannot read any other body), and every
    answer carries the call's `x-request-id`, the one its audit record holds."""
    if not request.path.startswith("/v2/"):
        return await handler(request)
    call_id = request[CALL_ID] = call_request_id(request.headers.get(REQUEST_ID))
    response = await _answer_errors(request, handler)
    response.headers[REQUEST_ID] = call_id
    return response


async def _answer_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as e:
        response = _answer(*error_body(e))
        if isinstance(e, Unauthenticated):
            response.headers["WWW-Authenticate"] = CHALLENGE
        return response
    except PdsError as e:
        return _answer(e.status, {"code": e.code, "message": e.message})
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "InvalidParameter" if e.status < 500 else "InternalError")
        return _answer(e.status, {"code": code, "message": e.reason})
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _answer(500, {"code": "InternalError", "message": "internal error"})


# --- decoding ------------------------------------------------------------------------------


class Body:
    """A request's JSON object, read field by field with PDS's error codes for bad values."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    @classmethod
    async def read(cls, request: web.Request) -> Body:
        raw = await read_body(request, MAX_PDS_BODY_BYTES)
        try:
            fields = json.loads(raw) if raw.strip() else {}
            # JSON may escape lone surrogates ("\ud800"), which no store can keep as text.
            json.dumps(fields, ensure_ascii=False).encode()
        except (UnicodeError, ValueError, RecursionError):  # ValueError: JSON, or 4,300+ digits
            raise PdsError(400, "InvalidParameter", "the body is not valid UTF-8 JSON") from None
        if not isinstance(fields, dict):
            raise PdsError(400, "InvalidParameter", "the body must be a JSON object")
        return cls(fields)

    def typed(self, name: str, kinds: tuple[type, ...], what: str) -> Any:
        value = self.fields.get(name)
        if value is None:
            return None
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            raise InvalidArgument.field(name, f"must be {what}")
        return value

    def text(self, name: str) -> str | None:
        return self.typed(name, (str,), "a string")  # type: ignore[no-any-return]

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise InvalidArgument.field(name, "is required")
        return value

    def flag(self, name: str) -> bool | None:
        return self.typed(name, (bool,), "true or false")  # type: ignore[no-any-return]

    def number(self, name: str) -> int | None:
        value: int | None = self.typed(name, (int,), "a whole number")
        if value is not None and not -(2**63) <= value < 2**63:
            raise InvalidArgument.field(name, "is out of range (a 64-bit whole number)")
        return value

    def labels(self, name: str = "labels") -> tuple[str, ...] | None:
        value = self.typed(name, (list,), "a list of strings")
        if value is not None and not all(isinstance(v, str) for v in value):
            raise InvalidArgument.field(name, "must be a list of strings")
        return None if value is None else tuple(value)

    def time(self, name: str) -> int | None:
        """An ISO 8601 UTC time (`2026-11-23T17:05:01.292Z`) as nanoseconds."""
        value = self.text(name)
        if value is None:
            return None
        match = _UTC.fullmatch(value)
        if match is None:
            raise InvalidArgument.field(
                name, "must be an ISO 8601 UTC time such as 2026-11-23T17:05:01.292Z"
            )
        *parts, fraction = match.groups()
        try:
            # datetime refuses a second of 60 or more, which strptime would roll into the next
            # minute (23:59:61 would be 00:00:01 of the next day).
            year, month, day, hour, minute, second = map(int, parts)
            moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
        except ValueError:
            raise InvalidArgument.field(name, f"{value!r} is not a valid time") from None
        seconds = calendar.timegm(moment.utctimetuple())
        return seconds * 10**9 + int((fraction or "").ljust(9, "0"))

    def root(self) -> None:
        parent = self.text("parent_file_id")
        if parent not in (None, ROOT):
            raise InvalidArgument.field(
                "parent_file_id", f"must be {ROOT!r}: this store has no folders, only drives"
            )

    def name_mode(self) -> str:
        return parse_mode(self.text("check_name_mode"))


# --- encoding ------------------------------------------------------------------------------


def pds_time(ns: int, *, exact: bool = False) -> str:
    """PDS's time format, `2019-08-20T06:51:27.292Z`; `exact` adds finer digits when there
    are any, so a client's own time comes back as it sent it."""
    seconds, rest = divmod(ns, 10**9)
    digits = f"{rest:09d}".rstrip("0").ljust(3, "0") if exact else f"{rest // 10**6:03d}"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{digits}Z"


def category(mime_type: str) -> str:
    kind = mime_type.split(";", maxsplit=1)[0].strip().lower()
    for prefix in ("image", "video", "audio"):
        if kind.startswith(prefix + "/"):
            return prefix
    return "doc" if _DOCUMENT_TYPES.fullmatch(kind) else "others"


def file_json(record: FileRecord) -> dict[str, Any]:
    extension = split_extension(record.name)[1]
    body: dict[str, Any] = {
        "drive_id": record.folder_id,
        "file_id": record.id,
        "parent_file_id": ROOT,
        "name": record.name,
        "type": "file",
        "content_type": record.mime_type,
        "size": record.size,
        "content_hash": record.content_hash,
        "content_hash_name": "sha1",
        "file_extension": extension[1:],
        "created_at": pds_time(record.created_at_ns),
        "updated_at": pds_time(record.updated_at_ns),
        "description": record.description,
        "hidden": record.hidden,
        "starred": record.starred,
        "labels": list(record.pds_labels),
        "status": "available",
        "category": category(record.mime_type),
    }
    for field in ("local_created_at", "local_modified_at"):
        ns = getattr(record, f"{field}_ns")
        if ns is not None:
            body[field] = pds_time(ns, exact=True)
    return body


# --- operations ----------------------------------------------------------------------------


@dataclasses.dataclass
class Pds:
    """The PDS operations over one `Drive`; `base_url` gives the HTTP listener's own URL."""

    drive: Drive
    auth: Authenticator
    base_url: Callable[[], str]

    def _caller(self, request: web.Request) -> Caller:
        caller = self.auth.authenticate(request.headers.get("Authorization"))
        note_caller(caller.subject, "")
        return Caller(caller.subject, caller.folders, request[CALL_ID])

    async def update(self, body: Body, caller: Caller) -> dict[str, Any]:
        edits = Edits(
            name=body.text("name"),
            description=body.text("description"),
            hidden=body.flag("hidden"),
            starred=body.flag("starred"),
            local_modified_at_ns=body.time("local_modified_at"),
            labels=body.labels(),
        )
        record = await self.drive.edit(
            body.required("file_id"), body.required("drive_id"), edits, caller, body.name_mode()
        )
        return file_json(record)

    async def _find(self, body: Body, caller: Caller) -> FileRecord:
        return await self.drive.find(body.required("file_id"), body.required("drive_id"), caller)

    async def get(self, body: Body, caller: Caller) -> dict[str, Any]:
        ttl = _positive("url_expire_sec", body.number("url_expire_sec"))
        record = await self._find(body, caller)
        url, _ = self.drive.download_url(record, self.base_url(), ttl)
        return {**file_json(record), "download_url": url}

    async def get_download_url(self, body: Body, caller: Caller) -> dict[str, Any]:
        ttl = _positive("expire_sec", body.number("expire_sec"))
        record = await self._find(body, caller)
        url, expires = self.drive.download_url(record, self.base_url(), ttl)
        return {
            "url": url,
            "expiration": pds_time(expires * 10**9),
            "size": record.size,
            "content_hash": record.content_hash,
            "content_hash_name": "sha1",
        }

    async def delete(self, body: Body, caller: Caller) -> None:
        await self.drive.delete(body.required("file_id"), body.required("drive_id"), caller)

    async def list(self, body: Body, caller: Caller) -> dict[str, Any]:
        body.root()
        order_by = body.text("order_by") or "created_at"
        direction = (body.text("order_direction") or "DESC").upper()
        if order_by not in _ORDER_KEYS:
            raise InvalidArgument.field("order_by", f"must be one of {', '.join(_ORDER_KEYS)}")
        if direction not in ("ASC", "DESC"):
            raise InvalidArgument.field("order_direction", "must be ASC or DESC")
        limit = body.number("limit")
        records, marker = await self.drive.browse(
            body.required("drive_id"),
            caller,
            limit=50 if limit is None else limit,
            marker=body.text("marker") or "",
            order=Order(_ORDER_KEYS[order_by], direction == "DESC"),
        )
        return {"items": [file_json(r) for r in records], "next_marker": marker}

    async def create(self, body: Body, caller: Caller) -> dict[str, Any]:
        body.root()
        kind = body.text("type") or "file"
        if kind != "file":
            raise InvalidArgument.field("type", "must be 'file': this store has no folders")
        parts = body.typed("part_info_list", (list,), "a list of parts") or [{"part_number": 1}]
        numbers = [p.get("part_number") if isinstance(p, dict) else None for p in parts]
        if numbers != list(range(1, len(numbers) + 1)):
            raise InvalidArgument.field(
                "part_info_list", "part_number must run 1, 2, 3, ... in order"
            )
        new = NewUpload(
            name=body.required("name"),
            size=body.number("size"),
            mime_type=body.text("content_type") or "",
            parts=len(numbers),
            description=body.text("description") or "",
            hidden=bool(body.flag("hidden")),
            local_created_at_ns=body.time("local_created_at"),
            local_modified_at_ns=body.time("local_modified_at"),
        )
        staged = await self.drive.uploads.stage(
            body.required("drive_id"), new, self.base_url(), caller, body.name_mode()
        )
        answer: dict[str, Any] = {
            "drive_id": staged.record.folder_id,
            "parent_file_id": ROOT,
            "type": "file",
            "rapid_upload": False,
        }
        if staged.holder is not None:
            return {**answer, "file_id": staged.holder, "file_name": new.name, "exist": True}
        return {
            **answer,
            "file_id": staged.record.id,
            "file_name": staged.record.name,
            "upload_id": staged.upload_id,
            "status": "uploading",
            "exist": False,
            "part_info_list": [
                {"part_number": number, "upload_url": url}
                for number, url in enumerate(staged.part_urls, start=1)
            ],
        }

    async def complete(self, body: Body, caller: Caller) -> dict[str, Any]:
        record = await self.drive.uploads.complete(
            body.required("drive_id"),
            body.required("file_id"),
            body.required("upload_id"),
            caller,
        )
        return file_json(record)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        operation = _OPERATIONS.get(request.match_info["operation"])
        if operation is None:
            raise PdsError(404, "NotFound", f"no operation {request.path}")
        caller = self._caller(request)
        body = await Body.read(request)
        drive = body.fields.get("drive_id")
        note_caller("", drive if isinstance(drive, str) else "")
        answer = await operation(self, body, caller)
        if answer is None:
            return web.Response(status=204)  # the SDK reads 204 as "no body"; 200 must be JSON
        return _answer(200, answer)

    async def upload_part(self, request: web.Request) -> web.StreamResponse:
        """A part's bytes, PUT to the signed link `create` gave; the link is the credential."""
        await self.drive.uploads.put_part(
            request.match_info["part"],
            request.query.get("expires", ""),
            request.query.get("signature", ""),
            lambda: read_body(request),
        )
        return web.Response(status=200)

    def routes(self) -> builtins.list[web.RouteDef]:
        return [
            web.post("/v2/file/{operation}", self.handle),
            web.put(UPLOAD_ROUTE, self.upload_part),
            web.route("*", "/v2/{tail:.*}", _no_route),
        ]


def _positive(field: str, seconds: int | None) -> int:
    """A link's lifetime: PDS's default when not given, its maximum when asked for more."""
    if seconds is None:
        return DEFAULT_PDS_URL_TTL_SECONDS
    if seconds <= 0:
        raise InvalidArgument.field(field, "must be a positive number of seconds")
    return min(seconds, MAX_URL_TTL_SECONDS)


async def _no_route(request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/v2/file/"):
        raise PdsError(405, "MethodNotAllowed", f"{request.method} is not allowed; use POST")
    raise PdsError(404, "NotFound", f"no operation {request.path}")


_OPERATIONS: dict[str, Callable[[Pds, Body, Caller], Awaitable[dict[str, Any] | None]]] = {
    "create": Pds.create,
    "complete": Pds.complete,
    "get": Pds.get,
    "update": Pds.update,
    "list": Pds.list,
    "delete": Pds.delete,
    "get_download_url": Pds.get_download_url,
}
"""The PDS operations served, by the last segment of their path."""
