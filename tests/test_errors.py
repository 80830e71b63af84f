"""Every domain error class, raised under a real server, as each face answers it.

The store below is the memory store with one fault: its `get` raises the error under test, so
Get (gRPC, REST) and PDS's get all fail with it. Each row says independently what every face
must answer; the table must name every class a client can see (`files_api.errors.ERRORS`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from files_api.app import Server, Settings
from files_api.auth import CHALLENGE
from files_api.domain import Core
from files_api.errors import (
    ERRORS,
    Aborted,
    AlreadyExists,
    DomainError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from files_api.store.memory import MemoryStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from files_api.store import FileRecord

Code = grpc.StatusCode
# (the error, its gRPC code, REST's HTTP status, PDS's HTTP status, PDS's code)
TABLE: list[tuple[DomainError, grpc.StatusCode, int, int, str]] = [
    (
        InvalidArgument.field("local_modified_at", "bad"),
        Code.INVALID_ARGUMENT,
        400,
        400,
        "InvalidParameter.LocalModifiedAt",
    ),
    (NotFound("no such file"), Code.NOT_FOUND, 404, 404, "NotFound.File"),
    (PermissionDenied("not yours"), Code.PERMISSION_DENIED, 403, 403, "Forbidden"),
    (Unauthenticated("who?"), Code.UNAUTHENTICATED, 401, 401, "AccessTokenInvalid"),
    (ResourceExhausted("too big"), Code.RESOURCE_EXHAUSTED, 429, 413, "EntityTooLarge"),
    (AlreadyExists("taken", resource="f0"), Code.ALREADY_EXISTS, 409, 409, "AlreadyExist.File"),
    (PreconditionFailed("stale etag"), Code.ABORTED, 412, 412, "PreconditionFailed"),
    (Aborted("lost the race"), Code.ABORTED, 409, 409, "Conflict"),
    (Unavailable("try later"), Code.UNAVAILABLE, 503, 503, "ServiceUnavailable"),
]


def test_the_table_names_every_error_class() -> None:
    assert sorted(type(row[0]).__name__ for row in TABLE) == sorted(c.__name__ for c in ERRORS)


class FailingStore(MemoryStore):
    """A memory store whose `get` raises `error` when one is set."""

    error: DomainError | None = None

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        if self.error is not None:
            raise self.error
        return await super().get(file_id, now_ns)


@pytest.fixture
async def failing() -> AsyncIterator[tuple[Server, FailingStore]]:
    store = FailingStore()
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store="memory:",
        drain_quiet_seconds=0,
        shutdown_grace_seconds=1,
    )
    server = Server(settings, Core(store))
    await server.start()
    try:
        yield server, store
    finally:
        await server.stop()


def _details(status: Any) -> list[str]:
    return [detail.type_url.rsplit(".", 1)[-1] for detail in status.details]


@pytest.mark.parametrize(("error", "code", "rest", "pds_status", "pds_code"), TABLE)
async def test_every_face_answers_an_error_as_its_class_says(
    failing: tuple[Server, FailingStore],
    error: DomainError,
    code: grpc.StatusCode,
    rest: int,
    pds_status: int,
    pds_code: str,
) -> None:
    server, store = failing
    store.error = error
    expected_details = {
        InvalidArgument: ["BadRequest"],
        AlreadyExists: ["ResourceInfo"],
    }.get(type(error), [])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            call = stub.Get(fs.GetFileRequest(file_id="f1"))
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await call
            assert (failed.value.code(), failed.value.details()) == (code, error.message)
            status = await rpc_status.aio.from_call(call)
            assert status is not None and _details(status) == expected_details

        base = f"http://127.0.0.1:{server.http_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/files/v1/files/f1") as response:
                body = json.loads(await response.read())
                assert response.status == rest
                assert (body["code"], body["message"]) == (code.value[0], error.message)
                assert [d["@type"].rsplit(".", 1)[-1] for d in body.get("details", [])] == (
                    expected_details
                )
                challenge = response.headers.get("WWW-Authenticate")
                assert challenge == (CHALLENGE if code == Code.UNAUTHENTICATED else None)
            async with session.post(
                f"{base}/v2/file/get", json={"drive_id": "d1", "file_id": "f1"}
            ) as response:
                body = json.loads(await response.read())
                assert response.status == pds_status
                assert (body["code"], body["message"]) == (pds_code, error.message)
                assert body.get("file_id") == ("f0" if isinstance(error, AlreadyExists) else None)
    finally:
        store.error = None


def test_a_violation_detail_names_the_field() -> None:
    status = InvalidArgument.field("name", "too long").to_status()
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert [(v.field, v.description) for v in detail.field_violations] == [("name", "too long")]
