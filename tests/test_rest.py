"""REST over real HTTP against the in-process transcoder, on every backend."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from files_api.errors import http_status
from files_api.rest import json_error, json_errors, rest_handler
from files_api.transcoder import mask_to_json, routes_for
from tests.test_domain_update import ORIGINAL, UPDATE_TABLE, summary

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from multidict import CIMultiDictProxy

    from tests.conftest import Running

UPDATE = fs.UpdateFileRequest.DESCRIPTOR


class Rest:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        verb: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> tuple[int, Any, CIMultiDictProxy[str]]:
        async with self.session.request(
            verb, self.base + path, json=body, headers=headers, **kw
        ) as response:
            return response.status, await response.json(), response.headers


@pytest.fixture
async def rest(running: Running) -> AsyncIterator[Rest]:
    async with aiohttp.ClientSession() as session:
        yield Rest(session, f"http://127.0.0.1:{running.server.http_port}")


async def create(rest: Rest, **fields: Any) -> dict[str, Any]:
    body = {"folderId": "f1", "content": base64.b64encode(b"hello").decode(), **fields}
    status, file, _ = await rest.call("POST", "/files/v1/files", body)
    assert status == 200, file
    return dict(file)


async def test_every_rpc_over_rest(rest: Rest, running: Running) -> None:
    running.clock.now = 1_800_000_000_123_456_789
    file = await create(rest, name="a.txt", labels={"a": "1"})
    assert file["createdAt"] == "2027-01-15T08:00:00.123456789Z"
    assert file["expirationConfig"] == {"expirationPolicy": "SINCE_LAST_ACTIVE", "ttlDays": "7"}

    status, got, _ = await rest.call("GET", f"/files/v1/files/{file['id']}")
    assert (status, got) == (200, file)

    status, updated, _ = await rest.call(
        "PATCH",
        f"/files/v1/files/{file['id']}",
        {
            "updateMask": "name,expirationConfig.ttlDays",
            "name": "b.txt",
            "expirationConfig": {"ttlDays": "3"},
        },
    )
    assert status == 200
    assert (updated["name"], updated["expirationConfig"]["ttlDays"]) == ("b.txt", "3")

    status, page, _ = await rest.call("GET", "/files/v1/files?folderId=f1&pageSize=1")
    assert status == 200
    assert [f["id"] for f in page["files"]] == [file["id"]]
    status, last, _ = await rest.call(
        "GET", f"/files/v1/files?folder_id=f1&page_size=1&pageToken={page['nextPageToken']}"
    )
    assert (status, last) == (200, {})

    status, link, _ = await rest.call("GET", f"/files/v1/files:getUrl?fileId={file['id']}")
    assert status == 200
    async with rest.session.get(link["url"]) as download:
        assert await download.read() == b"hello"

    status, deleted, _ = await rest.call("DELETE", f"/files/v1/files/{file['id']}")
    assert (status, deleted) == (200, {})
    status, error, _ = await rest.call("GET", f"/files/v1/files/{file['id']}")
    assert status == 404
    assert error["code"] == code_pb2.NOT_FOUND


@pytest.mark.parametrize(("paths", "fields", "changes"), UPDATE_TABLE)
async def test_update_table_over_rest(
    rest: Rest, paths: list[str] | None, fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    file = await create(
        rest,
        name=ORIGINAL["name"],
        description=ORIGINAL["description"],
        labels=ORIGINAL["labels"],
        expirationConfig={"expirationPolicy": ORIGINAL["policy"], "ttlDays": ORIGINAL["ttl_days"]},
    )
    body = json_format.MessageToDict(fs.UpdateFileRequest(**fields))
    if paths is not None:
        body["updateMask"] = mask_to_json(paths, UPDATE)
    status, updated, _ = await rest.call("PATCH", f"/files/v1/files/{file['id']}", body)
    assert status == 200, updated
    assert summary(json_format.ParseDict(updated, file_pb2.File())) == {**ORIGINAL, **changes}


async def test_bad_mask_answers_a_json_status_with_details(rest: Rest) -> None:
    file = await create(rest)
    status, error, headers = await rest.call(
        "PATCH", f"/files/v1/files/{file['id']}", {"updateMask": "name,createdAt"}
    )
    assert status == 400
    assert error["code"] == code_pb2.INVALID_ARGUMENT
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert error["details"][0]["fieldViolations"][0]["field"] == "update_mask"
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("verb", "path", "kwargs", "status", "word"),
    [
        (
            "PATCH",
            "/files/v1/files/x",
            {"data": b"{broken", "headers": {"Content-Type": "application/json"}},
            400,
            "JSON",
        ),
        (
            "PATCH",
            "/files/v1/files/x",
            {"data": b'{"name": 1}', "headers": {"Content-Type": "application/json"}},
            400,
            "name",
        ),
        (
            "PATCH",
            "/files/v1/files/x",
            {"data": b'{"name": "n"}', "headers": {"Content-Type": "text/plain"}},
            400,
            "application/json",
        ),
        (
            "GET",
            "/files/v1/files/x",
            {"data": b'{"a": 1}', "headers": {"Content-Type": "application/json"}},
            400,
            "no request body",
        ),
        ("GET", "/files/v1/files?folderId=f&pageSize=-1", {}, 400, "page_size"),
        ("GET", "/files/v1/files?folderId=f&bogus=1", {}, 400, "bogus"),
        ("PUT", "/files/v1/files/x", {}, 405, "PATCH"),
        ("GET", "/no/such/route", {}, 404, "no route"),
        ("GET", "/files/v1/files/missing", {}, 404, "missing"),
        (
            "POST",
            "/files/v1/files",
            {"data": "200 MiB", "headers": {"Content-Type": "application/json"}},
            413,
            "Too Large",
        ),
    ],
)
async def test_bad_http_requests_get_a_clear_json_error(
    rest: Rest, verb: str, path: str, kwargs: dict[str, Any], status: int, word: str
) -> None:
    if kwargs.get("data") == "200 MiB":  # a fresh stream each run: a stream is read once
        kwargs = {**kwargs, "data": io.BytesIO(b"x" * (200 * 1024 * 1024))}
    got, body, _ = await rest.call(verb, path, **kwargs)
    assert got == status
    assert word in body["message"]
    assert isinstance(body["code"], int)


async def test_request_id_is_echoed_or_made(rest: Rest, running: Running) -> None:
    _, _, headers = await rest.call(
        "GET", "/files/v1/files?folderId=f", headers={"X-Request-Id": "abc-123"}
    )
    assert headers["x-request-id"] == "abc-123"
    _, _, headers = await rest.call("GET", "/files/v1/files/none")
    assert len(headers["x-request-id"]) == 32
    call = running.stub.List(
        fs.ListFilesRequest(folder_id="f"), metadata=(("x-request-id", "grpc-1"),)
    )
    await call
    assert ("x-request-id", "grpc-1") in list(await call.trailing_metadata())


# The transcoding convention's table, written out independently of files_api/errors.py.
EXPECTED_HTTP = {
    code_pb2.OK: 200,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.ABORTED: 409,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.CANCELLED: 499,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.UNKNOWN: 500,
    code_pb2.INTERNAL: 500,
    code_pb2.DATA_LOSS: 500,
}


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED_HTTP.items()))
def test_every_grpc_code_has_its_http_status(code: int, expected: int) -> None:
    assert http_status(code) == expected
    response = json_error(status_pb2.Status(code=code, message="m"))
    assert response.status == expected
    assert ("WWW-Authenticate" in response.headers) == (code == code_pb2.UNAUTHENTICATED)


def form(*parts: tuple[str, bytes | str]) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in parts:
        if isinstance(value, bytes):  # as `curl -F content=@file` sends a file
            data.add_field(name, value, filename="upload.bin")
        else:
            data.add_field(name, value)
    return data


async def test_multipart_upload_takes_raw_bytes_and_the_same_fields(rest: Rest) -> None:
    content = bytes(range(256)) * 1024 + b"\x00\xff"  # not UTF-8, not base64
    status, file, _ = await rest.call(
        "POST",
        "/files/v1/files",
        data=form(
            ("folderId", "f1"),
            ("name", "blob.bin"),
            ("description", '{"not": "json to a string field"}'),
            ("labels", '{"team": "ml"}'),
            ("expirationConfig", '{"expirationPolicy": "STATIC", "ttlDays": "3"}'),
            ("content", content),
        ),
    )
    assert status == 200, file
    assert (file["name"], file["description"]) == ("blob.bin", '{"not": "json to a string field"}')
    assert (file["labels"], file["expirationConfig"]["ttlDays"]) == ({"team": "ml"}, "3")
    _, link, _ = await rest.call("GET", f"/files/v1/files:getUrl?fileId={file['id']}")
    async with rest.session.get(link["url"]) as download:
        assert await download.read() == content

    # Any rule with a body takes a form: the mask as its JSON string, unquoted.
    status, updated, _ = await rest.call(
        "PATCH",
        f"/files/v1/files/{file['id']}",
        data=form(("update_mask", "name,labels.env"), ("name", "b"), ("labels", '{"env": "x"}')),
    )
    assert status == 200, updated
    assert (updated["name"], updated["labels"]) == ("b", {"team": "ml", "env": "x"})


@pytest.mark.parametrize(
    ("path", "parts", "word"),
    [
        ("/files/v1/files", [("folderId", "f1"), ("bogus", "1")], "unknown form field 'bogus'"),
        ("/files/v1/files", [("folderId", "f1"), ("folder_id", "f2")], "more than once"),
        ("/files/v1/files", [("folderId", "f1"), ("labels", '{"a": "1", "a": "2"}')], "JSON"),
        ("/files/v1/files", [("folderId", "f1"), ("labels", "[1, 2")], "not valid JSON"),
        ("/files/v1/files", [("folderId", b"\xff\xfe")], "not UTF-8"),
        ("/files/v1/files", [("folderId", "f1"), ("labels", "plain")], "labels"),
        ("/files/v1/files", [("folderId", "f1"), ("content", "")], "content"),
    ],
)
async def test_a_bad_form_is_a_clear_400(
    rest: Rest, path: str, parts: list[tuple[str, bytes | str]], word: str
) -> None:
    status, error, _ = await rest.call("POST", path, data=form(*parts))
    assert status == 400, error
    assert word in error["message"]


async def test_a_form_on_a_call_without_a_body_or_not_multipart_at_all_is_400(rest: Rest) -> None:
    status, error, _ = await rest.call("GET", "/files/v1/files/x", data=form(("name", "n")))
    assert status == 400
    assert "no request body" in error["message"]
    broken = b"--b\r\nContent-Disposition: form-data; name=folderId\r\n\r\nf1\r\n"  # no end
    status, error, _ = await rest.call(
        "POST",
        "/files/v1/files",
        data=broken,
        headers={"Content-Type": "multipart/form-data"},  # and no boundary
    )
    assert status == 400
    assert "multipart/form-data" in error["message"]


async def test_a_form_larger_than_the_limit_is_413_before_any_call() -> None:
    async def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("a refused body reached the servicer")

    routes = routes_for(fs.DESCRIPTOR.services_by_name["FileService"])
    app = web.Application(middlewares=[json_errors])
    app.router.add_route("*", "/{tail:.*}", rest_handler(routes, never, max_body_bytes=1000))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            rest = Rest(session, f"http://127.0.0.1:{port}")
            parts = (("folderId", "f1"), ("content", b"x" * 600), ("description", "d" * 600))
            status, error, _ = await rest.call("POST", "/files/v1/files", data=form(*parts))
            assert (status, error["code"]) == (413, code_pb2.RESOURCE_EXHAUSTED)
    finally:
        await runner.cleanup()
