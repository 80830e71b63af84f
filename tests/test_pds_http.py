"""The PDS face over real HTTP on every backend: its rules and every refusal, as JSON with
PDS's codes. (The official SDK drives the same routes in test_pds_sdk.py.)"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

import files_api.domain.uploads
from files_api.app import Server, Settings
from files_api.auth import add_key
from files_api.domain import Core
from files_api.store import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from tests.conftest import Clock, Running

JSON = dict[str, Any]


class Pds:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str = "") -> None:
        self.session, self.base, self.token = session, base, token

    async def call(self, op: str, body: Any = None, **kw: Any) -> tuple[int, JSON]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.post(
            f"{self.base}/v2/file/{op}", json=body, headers=headers, **kw
        ) as response:
            text = await response.text()
            return response.status, (await response.json(content_type=None) if text else {})

    async def ok(self, op: str, body: JSON) -> JSON:
        status, answer = await self.call(op, body)
        assert status == 200, answer
        return answer

    async def upload(self, name: str, *parts: bytes, drive: str = "d1", **fields: Any) -> JSON:
        """create, PUT each part, complete: the whole file."""
        created = await self.ok(
            "create",
            {
                "drive_id": drive,
                "parent_file_id": "root",
                "name": name,
                "type": "file",
                "size": sum(map(len, parts)),
                "part_info_list": [{"part_number": i + 1} for i in range(len(parts))],
                **fields,
            },
        )
        if created.get("exist"):
            return created
        for info, part in zip(created["part_info_list"], parts, strict=True):
            async with self.session.put(info["upload_url"], data=part) as response:
                assert response.status == 200, await response.text()
        ids = {"drive_id": drive, "file_id": created["file_id"], "upload_id": created["upload_id"]}
        return await self.ok("complete", ids)


@pytest.fixture
async def pds(running: Running) -> AsyncIterator[Pds]:
    async with aiohttp.ClientSession() as session:
        yield Pds(session, f"http://127.0.0.1:{running.server.http_port}")


async def test_a_file_uploaded_in_parts_is_whole_and_described(pds: Pds, running: Running) -> None:
    running.clock.now = 1_795_000_000_292_000_000
    file = await pds.upload(
        "report.final.PDF",
        b"%PDF-1.4 ",
        b"second part",
        local_created_at="2020-01-02T03:04:05Z",
        content_type="application/pdf",
    )
    content = b"%PDF-1.4 second part"
    assert file == {
        "drive_id": "d1",
        "file_id": file["file_id"],
        "parent_file_id": "root",
        "name": "report.final.PDF",
        "type": "file",
        "content_type": "application/pdf",
        "size": len(content),
        "content_hash": hashlib.sha1(content).hexdigest().upper(),
        "content_hash_name": "sha1",
        "file_extension": "PDF",
        "created_at": "2026-11-18T11:06:40.292Z",
        "updated_at": "2026-11-18T11:06:40.292Z",
        "description": "",
        "hidden": False,
        "starred": False,
        "labels": [],
        "local_created_at": "2020-01-02T03:04:05.000Z",
        "status": "available",
        "category": "doc",
    }
    got = await pds.ok("get", {"drive_id": "d1", "file_id": file["file_id"]})
    async with pds.session.get(got.pop("download_url")) as response:
        assert await response.read() == content
    assert got == file
    # The same file through the Yandex face, with the same bytes behind GetUrl.
    yandex = await running.stub.Get(fs.GetFileRequest(file_id=file["file_id"]))
    assert (yandex.folder_id, yandex.name, yandex.mime_type) == (
        "d1",
        file["name"],
        file["content_type"],
    )


async def test_update_changes_what_the_body_holds_and_nothing_else(pds: Pds) -> None:
    file = await pds.upload("a.txt", b"x", description="first", hidden=True)
    ids = {"drive_id": "d1", "file_id": file["file_id"]}
    steps: list[tuple[JSON, JSON]] = [
        ({"name": "b.txt"}, {"name": "b.txt", "file_extension": "txt"}),
        ({"description": "second"}, {"description": "second"}),
        ({"labels": ["x", "y"]}, {"labels": ["x", "y"]}),
        ({"hidden": False}, {"hidden": False}),
        ({"starred": True}, {"starred": True}),
        (
            {"local_modified_at": "2026-01-01T00:00:00.123456789Z"},
            {"local_modified_at": "2026-01-01T00:00:00.123456789Z"},
        ),
        ({"labels": []}, {"labels": []}),
    ]
    expected = dict(file)
    for change, effect in steps:
        answer = await pds.ok("update", {**ids, **change})
        expected.update(effect)
        assert {k: v for k, v in answer.items() if k != "updated_at"} == {
            k: v for k, v in expected.items() if k != "updated_at"
        }, change


async def test_check_name_mode_on_update_and_create(pds: Pds, running: Running) -> None:
    running.clock.now = 1_795_000_000 * 10**9  # 2026-11-18 11:06:40 UTC
    holder = await pds.upload("a.jpg", b"1")
    other = await pds.upload("b.jpg", b"2")
    ids = {"drive_id": "d1", "file_id": other["file_id"]}

    status, error = await pds.call("update", {**ids, "name": "a.jpg", "check_name_mode": "refuse"})
    assert (status, error["code"], error["file_id"]) == (
        409,
        "AlreadyExist.File",
        holder["file_id"],
    )
    assert (await pds.ok("get", ids))["name"] == "b.jpg"

    renamed = await pds.ok("update", {**ids, "name": "a.jpg", "check_name_mode": "auto_rename"})
    assert renamed["name"] == "a_20261118_110640.jpg"
    third = await pds.upload("a.jpg", b"3", check_name_mode="auto_rename")
    assert third["name"] == "a_20261118_110640_1.jpg"

    exists = await pds.upload("a.jpg", b"4", check_name_mode="refuse")
    assert (exists["exist"], exists["file_id"]) == (True, holder["file_id"])
    duplicate = await pds.upload("a.jpg", b"5")  # ignore, the default
    assert duplicate["name"] == "a.jpg"
    listed = await pds.ok("list", {"drive_id": "d1", "limit": 100})
    assert len(listed["items"]) == 4


async def test_an_unfinished_upload_holds_no_name_and_refuse_is_checked_again_at_complete(
    pds: Pds,
) -> None:
    body = {"drive_id": "d1", "name": "n.txt", "size": 1, "check_name_mode": "refuse"}
    first = await pds.ok("create", body)
    second = await pds.ok("create", body)  # the first is not a file yet
    for created in (first, second):
        async with pds.session.put(created["part_info_list"][0]["upload_url"], data=b"x"):
            pass
    await pds.ok(
        "complete", {"drive_id": "d1", "file_id": first["file_id"], "upload_id": first["upload_id"]}
    )
    status, error = await pds.call(
        "complete",
        {"drive_id": "d1", "file_id": second["file_id"], "upload_id": second["upload_id"]},
    )
    assert (status, error["code"], error["file_id"]) == (409, "AlreadyExist.File", first["file_id"])
    assert (await pds.ok("list", {"drive_id": "d1"}))["items"][0]["file_id"] == first["file_id"]


@pytest.mark.parametrize("order_by", ["created_at", "updated_at", "name", "size"])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_markers_walk_every_file_once_in_order(
    pds: Pds, running: Running, order_by: str, direction: str
) -> None:
    for i, name in enumerate(["c", "a", "B", "é", "a"]):
        running.clock.now += 1000
        await pds.upload(name, b"x" * (i % 3 + 1))
    walked: list[JSON] = []
    marker = ""
    while True:
        body = {
            "drive_id": "d1",
            "limit": 2,
            "marker": marker,
            "order_by": order_by,
            "order_direction": direction,
        }
        page = await pds.ok("list", body)
        walked += page["items"]
        marker = page["next_marker"]
        if not marker:
            break
    key = {"created_at": "created_at", "updated_at": "updated_at", "name": "name", "size": "size"}[
        order_by
    ]
    assert len({f["file_id"] for f in walked}) == len(walked) == 5
    values = [f[key] for f in walked]
    assert values == sorted(values, reverse=direction == "DESC")


async def test_get_download_url_caps_the_lifetime(pds: Pds, running: Running) -> None:
    running.clock.now = 1_795_000_000 * 10**9
    file = await pds.upload("a.txt", b"bytes")
    ids = {"drive_id": "d1", "file_id": file["file_id"]}
    long = await pds.ok("get_download_url", {**ids, "expire_sec": 10**9})
    assert long["expiration"] == "2026-11-19T19:06:40.000Z"  # 115200 s later
    assert long["size"] == 5
    short = await pds.ok("get_download_url", {**ids, "expire_sec": 60})
    assert short["expiration"] == "2026-11-18T11:07:40.000Z"
    async with pds.session.get(short["url"]) as response:
        assert await response.read() == b"bytes"


async def test_delete_answers_204_and_the_file_is_gone_for_both_faces(
    pds: Pds, running: Running
) -> None:
    file = await pds.upload("a.txt", b"x")
    ids = {"drive_id": "d1", "file_id": file["file_id"]}
    async with pds.session.post(f"{pds.base}/v2/file/delete", json=ids) as response:
        assert (response.status, await response.read()) == (204, b"")
    assert (await pds.call("get", ids))[1]["code"] == "NotFound.File"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Get(fs.GetFileRequest(file_id=file["file_id"]))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_two_label_sets_stay_apart(pds: Pds, running: Running) -> None:
    created = await running.stub.Create(
        fs.CreateFileRequest(folder_id="d1", name="x.bin", content=b"x", labels={"team": "ml"})
    )
    ids = {"drive_id": "d1", "file_id": created.id}
    assert (await pds.ok("get", ids))["labels"] == []
    await pds.ok("update", {**ids, "labels": ["Important", "to do"]})
    after = await running.stub.Get(fs.GetFileRequest(file_id=created.id))
    assert dict(after.labels) == {"team": "ml"}
    await running.stub.Update(
        fs.UpdateFileRequest(
            file_id=created.id, update_mask=field_mask_pb2.FieldMask(paths=["labels"])
        )
    )
    assert (await pds.ok("get", ids))["labels"] == ["Important", "to do"]


REFUSALS: list[tuple[str, Any, int, str]] = [
    ("get", {"drive_id": "d1", "file_id": "nosuchfile"}, 404, "NotFound.File"),
    ("get", {"drive_id": "d1"}, 400, "InvalidParameter.FileId"),
    ("get", {"file_id": "x"}, 400, "InvalidParameter.DriveId"),
    ("get", {"drive_id": 7, "file_id": "x"}, 400, "InvalidParameter.DriveId"),
    ("get", [1, 2], 400, "InvalidParameter"),
    ("update", {"drive_id": "d1", "file_id": "x", "name": "a/b"}, 400, "InvalidParameter.Name"),
    ("update", {"drive_id": "d1", "file_id": "x", "hidden": "yes"}, 400, "InvalidParameter.Hidden"),
    ("update", {"drive_id": "d1", "file_id": "x", "labels": "a"}, 400, "InvalidParameter.Labels"),
    ("update", {"drive_id": "d1", "file_id": "x", "labels": [1]}, 400, "InvalidParameter.Labels"),
    (
        "update",
        {"drive_id": "d1", "file_id": "x", "check_name_mode": "maybe"},
        400,
        "InvalidParameter.CheckNameMode",
    ),
    (
        "update",
        {"drive_id": "d1", "file_id": "x", "local_modified_at": "yesterday"},
        400,
        "InvalidParameter.LocalModifiedAt",
    ),
    (
        "update",
        {"drive_id": "d1", "file_id": "x", "local_modified_at": "2026-01-01T00:00:00+03:00"},
        400,
        "InvalidParameter.LocalModifiedAt",
    ),
    (
        "update",
        {"drive_id": "d1", "file_id": "x", "local_modified_at": "2026-02-30T00:00:00Z"},
        400,
        "InvalidParameter.LocalModifiedAt",
    ),
    ("create", {"drive_id": "d1", "name": "a", "type": "folder"}, 400, "InvalidParameter.Type"),
    (
        "create",
        {"drive_id": "d1", "name": "a", "parent_file_id": "f2"},
        400,
        "InvalidParameter.ParentFileId",
    ),
    ("create", {"drive_id": "d1", "name": "a/b"}, 400, "InvalidParameter.Name"),
    ("create", {"drive_id": "d1"}, 400, "InvalidParameter.Name"),
    ("create", {"drive_id": "d1", "name": "a", "size": -1}, 400, "InvalidParameter.Size"),
    ("create", {"drive_id": "d1", "name": "a", "size": 2**40}, 413, "EntityTooLarge"),
    (
        "create",
        {"drive_id": "d1", "name": "a", "part_info_list": [{"part_number": 2}]},
        400,
        "InvalidParameter.PartInfoList",
    ),
    (
        "create",
        {"drive_id": "d1", "name": "a", "content_type": "no type"},
        400,
        "InvalidParameter.ContentType",
    ),
    ("complete", {"drive_id": "d1", "file_id": "x", "upload_id": "y"}, 404, "NotFound.File"),
    ("list", {"drive_id": "d1", "limit": 0}, 400, "InvalidParameter.Limit"),
    ("list", {"drive_id": "d1", "limit": 101}, 400, "InvalidParameter.Limit"),
    ("list", {"drive_id": "d1", "limit": True}, 400, "InvalidParameter.Limit"),
    ("list", {"drive_id": "d1", "order_by": "colour"}, 400, "InvalidParameter.OrderBy"),
    ("list", {"drive_id": "d1", "order_direction": "UP"}, 400, "InvalidParameter.OrderDirection"),
    ("list", {"drive_id": "d1", "marker": "forged"}, 400, "InvalidParameter.Marker"),
    ("list", {"drive_id": "d1", "parent_file_id": "sub"}, 400, "InvalidParameter.ParentFileId"),
    (
        "get_download_url",
        {"drive_id": "d1", "file_id": "x", "expire_sec": -5},
        400,
        "InvalidParameter.ExpireSec",
    ),
    ("rename", {}, 404, "NotFound"),
]


@pytest.mark.parametrize(("op", "body", "status", "code"), REFUSALS)
async def test_every_refusal_is_pds_json(
    pds: Pds, op: str, body: Any, status: int, code: str
) -> None:
    answer_status, answer = await pds.call(op, body)
    assert (answer_status, answer["code"]) == (status, code), answer
    assert answer["message"]


async def test_framework_refusals_are_pds_json_too(
    pds: Pds, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with pds.session.get(f"{pds.base}/v2/file/get") as response:
        assert (response.status, (await response.json())["code"]) == (405, "MethodNotAllowed")
    async with pds.session.post(f"{pds.base}/v2/elsewhere") as response:
        assert (response.status, (await response.json())["code"]) == (404, "NotFound")
    async with pds.session.post(f"{pds.base}/v2/file/get", data=b"{not json") as response:
        assert (response.status, (await response.json())["code"]) == (400, "InvalidParameter")
    monkeypatch.setattr(files_api.domain.uploads, "MAX_CONTENT_BYTES", 4)
    created = await pds.ok("create", {"drive_id": "d1", "name": "big", "size": 4})
    async with pds.session.put(created["part_info_list"][0]["upload_url"], data=b"12345") as r:
        assert (r.status, (await r.json())["code"]) == (413, "EntityTooLarge")
    forged = created["part_info_list"][0]["upload_url"].replace("signature=", "signature=0")
    async with pds.session.put(forged, data=b"1") as r:
        assert (r.status, (await r.json())["code"]) == (403, "Forbidden")


async def test_complete_needs_every_part_and_the_announced_size(pds: Pds) -> None:
    created = await pds.ok(
        "create",
        {
            "drive_id": "d1",
            "name": "a",
            "size": 3,
            "part_info_list": [{"part_number": 1}, {"part_number": 2}],
        },
    )
    ids = {"drive_id": "d1", "file_id": created["file_id"], "upload_id": created["upload_id"]}
    first, second = (p["upload_url"] for p in created["part_info_list"])
    async with pds.session.put(first, data=b"ab"):
        pass
    status, error = await pds.call("complete", ids)
    assert (status, error["code"]) == (400, "InvalidParameter.UploadId")
    async with pds.session.put(second, data=b"cd"):
        pass
    status, error = await pds.call("complete", ids)
    assert (status, error["code"]) == (400, "InvalidParameter.Size")
    async with pds.session.put(second, data=b"c"):  # a part sent again replaces itself
        pass
    assert (await pds.ok("complete", ids))["size"] == 3
    assert (await pds.call("complete", ids))[0] == 404  # once only
    assert (await pds.call("list", {"drive_id": "d1"}))[1]["items"][0]["content_hash"] == (
        hashlib.sha1(b"abc").hexdigest().upper()
    )


async def test_a_never_completed_upload_is_purged_after_a_day(pds: Pds, running: Running) -> None:
    created = await pds.ok("create", {"drive_id": "d1", "name": "a", "size": 1})
    running.clock.now += 86_400 * 10**9
    await running.server.core.sweep()
    async with pds.session.put(created["part_info_list"][0]["upload_url"], data=b"x") as r:
        assert (r.status, (await r.json())["code"]) == (403, "Forbidden")  # the link lapsed too
    ids = {"drive_id": "d1", "file_id": created["file_id"], "upload_id": created["upload_id"]}
    assert (await pds.call("complete", ids))[0] == 404


async def test_yandex_face_takes_the_policy_as_an_extension(running: Running) -> None:
    first = await running.stub.Create(
        fs.CreateFileRequest(folder_id="f", name="a.txt", content=b"1")
    )
    refuse = (("x-check-name-mode", "refuse"),)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Create(
            fs.CreateFileRequest(folder_id="f", name="a.txt", content=b"2"), metadata=refuse
        )
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Pairs, not dict(metadata): grpcio before 1.75 hands dict() whole pairs as keys.
    details = dict(iter(e.value.trailing_metadata() or ()))["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.ResourceInfo()
    assert status.details[0].Unpack(info)
    assert (info.resource_type, info.resource_name) == ("yandex.cloud.ai.files.v1.File", first.id)

    second = await running.stub.Create(
        fs.CreateFileRequest(folder_id="f", name="b.txt", content=b"2")
    )
    rename = fs.UpdateFileRequest(
        file_id=second.id, update_mask=field_mask_pb2.FieldMask(paths=["name"]), name="a.txt"
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Update(rename, metadata=refuse)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    renamed = await running.stub.Update(rename, metadata=(("x-check-name-mode", "auto_rename"),))
    assert renamed.name.startswith("a_") and renamed.name.endswith(".txt")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Update(rename, metadata=(("x-check-name-mode", "sometimes"),))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Over REST the header does the same, and the conflict is 409.
    async with (
        aiohttp.ClientSession() as session,
        session.patch(
            f"http://127.0.0.1:{running.server.http_port}/files/v1/files/{second.id}",
            json={"updateMask": "name", "name": first.name},
            headers={"x-check-name-mode": "refuse"},
        ) as response,
    ):
        assert response.status == 409
        assert (await response.json())["code"] == 6


@pytest.fixture
async def keyed(tmp_path: Path, clock: Clock) -> AsyncIterator[tuple[str, dict[str, str]]]:
    path = tmp_path / "keys.toml"
    keys = {"alice": add_key(path, "alice", ["d1"]), "root": add_key(path, "root", ["*"])}
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store="memory:",
        auth_keys=str(path),
        drain_quiet_seconds=0,
        shutdown_grace_seconds=1,
    )
    server = Server(settings, Core(open_store("memory:"), clock=clock))
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.http_port}", keys
    finally:
        await server.stop()


async def test_bearer_keys_and_isolation(keyed: tuple[str, dict[str, str]]) -> None:
    base, keys = keyed
    async with aiohttp.ClientSession() as session:
        alice, root = Pds(session, base, keys["alice"]), Pds(session, base, keys["root"])
        for anonymous in (Pds(session, base), Pds(session, base, "wrong")):
            status, error = await anonymous.call("list", {"drive_id": "d1"})
            assert (status, error["code"]) == (401, "AccessTokenInvalid")
        # RFC 9110 section 15.5.2: a 401 names the schemes to use, as the REST face's does.
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with session.post(
                f"{base}/v2/file/list", json={"drive_id": "d1"}, headers=headers
            ) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == (
                    'Api-Key realm="files", Bearer realm="files"'
                )
        elsewhere = await root.upload("secret", b"x", drive="d2")
        status, error = await alice.call("list", {"drive_id": "d2"})
        assert (status, error["code"]) == (403, "Forbidden")
        for op in ("get", "update", "delete", "get_download_url"):
            status, error = await alice.call(
                op, {"drive_id": "d2", "file_id": elsewhere["file_id"]}
            )
            assert (status, error["code"]) == (404, "NotFound.File"), op
        mine = await alice.upload("mine", b"x")
        # A file id under the wrong drive is not found, even for a key that may use both.
        status, error = await root.call("get", {"drive_id": "d2", "file_id": mine["file_id"]})
        assert (status, error["code"]) == (404, "NotFound.File")


async def test_many_clients_racing_for_one_name_under_refuse_one_wins(
    pds: Pds, running: Running
) -> None:
    """Thirty clients, each on its own connection, rename their own file to one name."""
    files = [await pds.upload(f"own-{i}.txt", b"x") for i in range(30)]

    async def rename(file: JSON) -> int:
        async with aiohttp.ClientSession() as own:
            client = Pds(own, pds.base)
            body = {
                "drive_id": "d1",
                "file_id": file["file_id"],
                "name": "the.txt",
                "check_name_mode": "refuse",
            }
            return (await client.call("update", body))[0]

    statuses = await asyncio.gather(*(rename(f) for f in files))
    assert sorted(statuses) == [200] + [409] * 29
    listed = await pds.ok("list", {"drive_id": "d1", "limit": 100})
    assert [f["name"] for f in listed["items"]].count("the.txt") == 1
