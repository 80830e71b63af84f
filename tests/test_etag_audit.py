"""Extensions beyond the cloud API: etags with if-match, and the audit log, on every backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2

from files_api.auth import Caller
from files_api.domain.drive import Drive, Edits
from files_api.domain.records import etag
from files_api.errors import PreconditionFailed
from files_api.store import AuditEvent
from tests.support import run_server_command, server_process

if TYPE_CHECKING:
    from files_api.domain import Files
    from tests.conftest import Clock, Running


def rename(file_id: str, name: str) -> fs.UpdateFileRequest:
    return fs.UpdateFileRequest(
        file_id=file_id, update_mask=field_mask_pb2.FieldMask(paths=["name"]), name=name
    )


async def test_etag_follows_what_clients_see(files: Files, clock: Clock) -> None:
    file = await files.create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    got = await files.get(fs.GetFileRequest(file_id=file.id))
    assert etag(got) == etag(file)
    assert got == await files.get(fs.GetFileRequest(file_id=file.id))  # the hash left it whole
    assert etag(file).startswith('"') and etag(file).endswith('"')
    clock.advance(1)
    renamed = await files.update(rename(file.id, "n"))
    assert etag(renamed) != etag(file)


async def test_if_match_makes_update_and_delete_conditional(files: Files, clock: Clock) -> None:
    file = await files.create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    stale = etag(file)
    clock.advance(1)
    current = await files.update(rename(file.id, "first"), if_match=stale)
    with pytest.raises(PreconditionFailed):
        await files.update(rename(file.id, "lost update"), if_match=stale)
    with pytest.raises(PreconditionFailed):
        await files.delete(fs.DeleteFileRequest(file_id=file.id), if_match=f"W/{etag(current)}")
    assert (await files.get(fs.GetFileRequest(file_id=file.id))) == current
    both = f'"other", {etag(current)}'
    await files.update(rename(file.id, "second"), if_match=both)
    await files.update(rename(file.id, "third"), if_match="*")
    latest = await files.get(fs.GetFileRequest(file_id=file.id))
    await files.delete(fs.DeleteFileRequest(file_id=file.id), if_match=etag(latest))
    assert (await files.list(fs.ListFilesRequest(folder_id="f"))).files == []


async def test_audit_records_every_change_with_exactly_the_changed_paths(
    files: Files, clock: Clock
) -> None:
    alice = Caller("alice", request_id="r1")
    file = await files.create(
        fs.CreateFileRequest(folder_id="f", content=b"x", labels={"a": "1", "b.c": "2"}), alice
    )
    created = clock.now
    clock.advance(5)
    request = fs.UpdateFileRequest(
        file_id=file.id,
        update_mask=field_mask_pb2.FieldMask(paths=["name", "description", "labels"]),
        name="n",
        labels={"a": "1", "new": "3"},
    )
    await files.update(request, Caller("bob", request_id="r2"))
    await files.update(request, Caller("bob", request_id="r3"))  # nothing changes
    with pytest.raises(PreconditionFailed):
        await files.update(rename(file.id, "x"), alice, if_match='"stale"')
    clock.advance(5)
    await files.delete(fs.DeleteFileRequest(file_id=file.id), Caller("carol", request_id="r4"))
    assert await files.core.store.audit_log(file.id) == [
        AuditEvent(file.id, created, "alice", "create", (), "r1"),
        AuditEvent(
            file.id, created + 5, "bob", "update", ("name", "labels.`b.c`", "labels.new"), "r2"
        ),
        AuditEvent(file.id, created + 5, "bob", "update", (), "r3"),
        AuditEvent(file.id, created + 10, "carol", "delete", (), "r4"),
    ]


async def test_etag_and_if_match_over_grpc_and_rest(running: Running) -> None:
    create = running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    file = await create
    assert ("etag", etag(file)) in list(await create.trailing_metadata())
    running.clock.advance(1)
    renamed = await running.stub.Update(rename(file.id, "n"), metadata=(("if-match", etag(file)),))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Update(rename(file.id, "m"), metadata=(("if-match", etag(file)),))
    assert e.value.code() == grpc.StatusCode.ABORTED
    # ABORTED means nothing was written, not merely that the answer was withheld.
    assert await running.stub.Get(fs.GetFileRequest(file_id=file.id)) == renamed

    url = f"http://127.0.0.1:{running.server.http_port}/files/v1/files/{file.id}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.headers["ETag"] == etag(renamed)
            before = await response.json()
        body = {"updateMask": "name", "name": "o"}
        async with http.patch(url, json=body, headers={"If-Match": etag(file)}) as response:
            assert response.status == 412
            assert (await response.json())["code"] == 10
        async with http.get(url) as response:
            assert await response.json() == before
        async with http.patch(url, json=body, headers={"If-Match": etag(renamed)}) as response:
            assert response.status == 200
            assert response.headers["ETag"] != etag(renamed)


async def test_a_stale_if_match_keeps_delete_from_deleting(running: Running) -> None:
    """Delete is the write a lost update hurts most: over gRPC and REST alike a stale etag must
    leave the file in place, not just answer with an error."""
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    running.clock.advance(1)
    renamed = await running.stub.Update(rename(file.id, "n"))
    stale = (("if-match", etag(file)),)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Delete(fs.DeleteFileRequest(file_id=file.id), metadata=stale)
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert await running.stub.Get(fs.GetFileRequest(file_id=file.id)) == renamed

    url = f"http://127.0.0.1:{running.server.http_port}/files/v1/files/{file.id}"
    async with aiohttp.ClientSession() as http:
        async with http.delete(url, headers={"If-Match": etag(file)}) as response:
            assert response.status == 412
            assert (await response.json())["code"] == 10
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["ETag"] == etag(renamed)
    assert await running.stub.Get(fs.GetFileRequest(file_id=file.id)) == renamed


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_audit_command_prints_the_history(store_url: str) -> None:
    """The command reads the log the server wrote, from either shared store; a nested mask path
    is recorded as exactly itself."""
    with (
        server_process("--store", store_url) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        file = stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
        stub.Update(rename(file.id, "audited"), metadata=(("x-request-id", "req-42"),))
        ttl = fs.UpdateFileRequest(
            file_id=file.id,
            update_mask=field_mask_pb2.FieldMask(paths=["expiration_config.ttl_days"]),
        )
        ttl.expiration_config.ttl_days = file.expiration_config.ttl_days + 1
        stub.Update(ttl, metadata=(("x-request-id", "req-43"),))
    result = run_server_command("audit", "--file", file.id, "--store", store_url, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "create" in lines[0] and "anonymous" in lines[0]
    assert lines[1].split()[1:] == ["update", "anonymous", "name", "request=req-42"]
    assert lines[2].split()[1:] == [
        "update",
        "anonymous",
        "expiration_config.ttl_days",
        "request=req-43",
    ]
    missing = run_server_command("audit", "--file", "nope", "--store", store_url)
    assert missing.returncode == 1
    assert "no audit records for file 'nope'" in missing.stderr


@pytest.mark.parametrize(
    ("edits", "paths"),
    [
        (Edits(starred=True), ("starred",)),
        (Edits(hidden=True), ("hidden",)),
        (Edits(labels=("red", "blue")), ("labels",)),
        (Edits(local_modified_at_ns=1_700_000_000 * 10**9), ("local_modified_at",)),
        (Edits(name="n", starred=True, labels=()), ("name", "starred")),  # no labels to drop
        (Edits(starred=False), ()),  # as it was
    ],
)
async def test_a_pds_update_records_the_attributes_it_changed(
    files: Files, edits: Edits, paths: tuple[str, ...]
) -> None:
    file = await files.create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    await Drive(files.core).edit(file.id, "f", edits, Caller("pat", request_id="p1"))
    update = (await files.core.store.audit_log(file.id))[-1]
    assert (update.action, update.paths, update.request_id) == ("update", paths, "p1")


async def test_the_history_extension_pages_a_files_records_newest_first(running: Running) -> None:
    """`GET /files/v1/files/{id}/audit`: the audit log over REST, in pages that a record
    written meanwhile does not shift, with every bad input a 4xx naming what is wrong."""
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    other = await running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"y"))
    for number in range(4):
        running.clock.advance(1)
        await running.stub.Update(
            rename(file.id, f"n{number}"), metadata=(("x-request-id", f"u{number}"),)
        )
    base = f"http://127.0.0.1:{running.server.http_port}/files/v1/files"
    history = f"{base}/{file.id}/audit"
    pages: list[list[dict[str, object]]] = []
    async with aiohttp.ClientSession() as http:
        token = ""
        while True:
            async with http.get(history, params={"pageSize": "2", "pageToken": token}) as answer:
                assert answer.status == 200
                body = await answer.json()
            pages.append(body["records"])
            token = body["nextPageToken"]
            if not token:
                break
            running.clock.advance(1)  # a record written between pages shifts nothing
            await running.stub.Update(rename(file.id, f"later{len(pages)}"))
        assert [len(page) for page in pages] == [2, 2, 1]
        walked = [record for page in pages for record in page]
        assert [r["action"] for r in walked] == ["update"] * 4 + ["create"]
        assert [r["requestId"] for r in walked[:4]] == ["u3", "u2", "u1", "u0"]
        assert all(r["paths"] == ["name"] and r["fileId"] == file.id for r in walked[:4])
        async with http.get(history, params={"page_size": "1"}) as answer:
            [newest] = (await answer.json())["records"]
        assert newest["paths"] == ["name"] and newest["time"].endswith("Z")

        async with http.get(history, params={"pageSize": "1"}) as answer:
            token = (await answer.json())["nextPageToken"]
        for url, params, status, field in (
            (f"{base}/{other.id}/audit", {"pageToken": token}, 400, "page_token"),
            (history, {"pageToken": "garbage"}, 400, "page_token"),
            (history, {"pageSize": "-1"}, 400, "page_size"),
            (history, {"pageSize": "ten"}, 400, "page_size"),
            (f"{base}/nosuchfile0000000000/audit", {}, 404, None),
        ):
            async with http.get(url, params=params) as answer:
                assert answer.status == status, (url, params)
                error = await answer.json()
            if field is not None:
                [violation] = error["details"][0]["fieldViolations"]
                assert violation["field"] == field
        async with http.post(history) as answer:
            assert (answer.status, answer.headers["Allow"]) == (405, "GET,HEAD")
        async with http.delete(f"{base}/{file.id}") as answer:
            assert answer.status == 200
        async with http.get(history) as answer:
            assert answer.status == 404  # the records outlive the file, but not its visibility
