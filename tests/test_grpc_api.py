"""FileService over a real gRPC server and its HTTP download listener, on every backend."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # grpcio ships no types for it
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

import files_api.app
from files_api.app import MAX_MESSAGE_BYTES
from files_api.domain.limits import MAX_CONTENT_BYTES, MAX_NAME_BYTES, MAX_PAGE_BYTES, NS_PER_DAY
from files_api.request_ids import new_request_id
from tests.support import health_stub

if TYPE_CHECKING:
    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from tests.conftest import Running


STATIC = common_pb2.ExpirationConfig.STATIC


async def create(running: Running, **fields: object) -> file_pb2.File:
    fields.setdefault("content", b"hello")
    return await running.stub.Create(fs.CreateFileRequest(folder_id="f1", **fields))  # type: ignore[arg-type]


async def test_create_then_get_returns_the_same_file(running: Running) -> None:
    created = await create(running, name="a.txt")
    assert await running.stub.Get(fs.GetFileRequest(file_id=created.id)) == created
    assert created.mime_type == "text/plain"


async def test_get_missing_is_not_found_with_a_message(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Get(fs.GetFileRequest(file_id="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (e.value.details() or "")


async def test_bad_mask_carries_a_bad_request_detail(running: Running) -> None:
    file = await create(running)
    request = fs.UpdateFileRequest(
        file_id=file.id, update_mask=field_mask_pb2.FieldMask(paths=["created_at"])
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Update(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(e.value)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].field == "update_mask"
    assert "created_at" in bad_request.field_violations[0].description


async def test_update_response_is_what_get_returns(running: Running) -> None:
    file = await create(running, labels={"a": "1"})
    running.clock.advance(5)
    updated = await running.stub.Update(
        fs.UpdateFileRequest(
            file_id=file.id,
            update_mask=field_mask_pb2.FieldMask(paths=["labels.b", "expiration_config.ttl_days"]),
            labels={"b": "2"},
            expiration_config=common_pb2.ExpirationConfig(ttl_days=30),
        )
    )
    assert dict(updated.labels) == {"a": "1", "b": "2"}
    assert updated.updated_at.ToNanoseconds() == running.clock.now
    assert updated.expires_at.ToNanoseconds() == running.clock.now + 30 * NS_PER_DAY
    assert await running.stub.Get(fs.GetFileRequest(file_id=file.id)) == updated


async def test_many_clients_updating_one_file_lose_nothing(running: Running) -> None:
    file = await create(running)
    target = f"127.0.0.1:{running.server.grpc_port}"
    channels = [grpc.aio.insecure_channel(target) for _ in range(8)]
    try:
        stubs = [file_service_pb2_grpc.FileServiceStub(c) for c in channels]
        keys = [f"k{i}" for i in range(48)]
        await asyncio.gather(
            *(
                stubs[i % len(stubs)].Update(
                    fs.UpdateFileRequest(
                        file_id=file.id,
                        update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{key}"]),
                        labels={key: key},
                    )
                )
                for i, key in enumerate(keys)
            ),
            stubs[0].Update(
                fs.UpdateFileRequest(
                    file_id=file.id,
                    update_mask=field_mask_pb2.FieldMask(paths=["name"]),
                    name="renamed",
                )
            ),
        )
    finally:
        for channel in channels:
            await channel.close()
    final = await running.stub.Get(fs.GetFileRequest(file_id=file.id))
    assert dict(final.labels) == {k: k for k in keys}
    assert final.name == "renamed"


async def test_message_over_the_limit_is_resource_exhausted(running: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(running, content=b"\0" * (MAX_MESSAGE_BYTES + 1))
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_unexpected_failure_is_internal_without_details(
    running: Running,
    backend: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    file = await create(running)
    store = running.server.core.store
    await store.close()  # the SQL stores now raise on every call, each in its driver's words
    if backend == "memory":  # closing it is a no-op: fail its lookup instead, in SQL words

        async def broken(*_: object) -> None:
            raise RuntimeError("SELECT secret FROM files: no such table")

        monkeypatch.setattr(store, "get", broken)
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Get(fs.GetFileRequest(file_id=file.id))
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert e.value.details() == "internal error"
    assert "Traceback" in caplog.text
    await store.open()  # so teardown can close it again


def _response(read: object) -> health_pb2.HealthCheckResponse:
    """A Watch message: grpc's stubs type read() as object, for it may also return EOF."""
    assert isinstance(read, health_pb2.HealthCheckResponse), read
    return read


async def test_health_turns_not_serving_when_shutdown_begins(running: Running) -> None:
    # Both names: "" (the server as a whole, what load balancers ask) and the service's own.
    health = health_stub(running.channel)
    watches = [
        health.Watch(health_pb2.HealthCheckRequest(service=service))
        for service in ("", "yandex.cloud.ai.files.v1.FileService")
    ]
    for watch in watches:
        assert _response(await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(running.server.stop())
    for watch in watches:
        assert _response(await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # The stream then ends by itself (OK), instead of holding the grace period until
        # server.stop() cancels it.
        assert await watch.read() is grpc.aio.EOF
        assert await watch.code() == grpc.StatusCode.OK
    await stopping


async def get_url(running: Running, file_id: str) -> str:
    return (await running.stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id))).url


async def test_download_link_returns_the_exact_bytes(running: Running) -> None:
    content = bytes(range(256)) * 1000
    file = await create(
        running, content=content, name='résumé "final".bin', mime_type="application/x-thing"
    )
    url = await get_url(running, file.id)
    assert url.startswith(
        f"http://127.0.0.1:{running.server.http_port}/files/v1/files/{file.id}/content?"
    )
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == content
        assert response.headers["Content-Type"] == "application/x-thing"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="r_sum_ _final_.bin"')
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.bin" in disposition
    async with aiohttp.ClientSession() as session, session.head(url) as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(content))
        assert await response.read() == b""


async def test_download_counts_as_activity(running: Running) -> None:
    file = await create(running, expiration_config=common_pb2.ExpirationConfig(ttl_days=1))
    url = await get_url(running, file.id)
    running.clock.advance(1800 * 10**9)  # within the link's hour
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
    after = await running.stub.Get(fs.GetFileRequest(file_id=file.id))
    assert after.expires_at.ToNanoseconds() == running.clock.now + NS_PER_DAY
    assert after.updated_at == file.updated_at


async def status_of(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_tampered_retargeted_or_expired_links_are_forbidden(running: Running) -> None:
    file = await create(running)
    other = await create(running)
    url = await get_url(running, file.id)
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&"))
    base = f"{parts.scheme}://{parts.netloc}"
    bad = [
        url[:-1] + ("0" if url[-1] != "0" else "1"),
        url.replace(file.id, other.id),
        f"{base}{parts.path}?expires={int(query['expires']) + 1}&signature={query['signature']}",
        f"{base}{parts.path}?expires={query['expires']}",
        f"{base}{parts.path}",
        f"{base}{parts.path}?expires=%C2%B2&signature={query['signature']}",
    ]
    for link in bad:
        status, body = await status_of(link)
        assert status == 403, link
        assert "invalid or has expired" in body
    running.clock.advance(3600 * 10**9)
    assert (await status_of(url))[0] == 403


async def test_link_to_a_deleted_file_is_not_found(running: Running) -> None:
    file = await create(running)
    url = await get_url(running, file.id)
    await running.stub.Delete(fs.DeleteFileRequest(file_id=file.id))
    status, body = await status_of(url)
    assert status == 404
    assert file.id in body


async def test_an_expired_file_is_not_found_through_a_link_still_valid(running: Running) -> None:
    # A link outlives the file when taken in the file's last hour: the file's expiry wins.
    policy = common_pb2.ExpirationConfig(expiration_policy=STATIC, ttl_days=1)
    file = await create(running, expiration_config=policy)
    running.clock.advance(NS_PER_DAY - 60 * 10**9)
    url = await get_url(running, file.id)
    assert (await status_of(url))[0] == 200
    running.clock.advance(60 * 10**9)  # the file expires; the link has most of its hour left
    status, body = await status_of(url)
    assert status == 404
    assert file.id in body


@pytest.mark.parametrize("backend", ["memory"])  # the limit is the transport's and the domain's
async def test_content_of_exactly_128_mib_is_accepted_and_one_byte_more_refused(
    running: Running,
) -> None:
    content = bytes(MAX_CONTENT_BYTES + 1)  # the one large buffer (with its slice below)
    mime = "application/octet-stream"  # given, so no detection scans 128 MiB of zeros
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(running, content=content, mime_type=mime)
    # Under gRPC's own limit (MAX_MESSAGE_BYTES), so the domain answers, naming the limit.
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_CONTENT_BYTES} allowed" in (e.value.details() or "")
    file = await create(running, content=content[:-1], mime_type=mime)
    del content
    stored = await running.server.core.store.get(file.id, running.clock.now)
    assert stored is not None and stored.size == MAX_CONTENT_BYTES
    await running.stub.Delete(fs.DeleteFileRequest(file_id=file.id))


async def test_content_past_grpc_default_4_mib_limit_round_trips(running: Running) -> None:
    content = bytes(range(256)) * (20 * 4096)  # 20 MiB: its content stays in the message read
    file = await create(running, content=content, name="big", labels={"k": "v"})
    assert (file.mime_type, file.name, dict(file.labels)) == (
        "application/octet-stream",
        "big",
        {"k": "v"},
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(await get_url(running, file.id)) as r,
    ):
        assert await r.read() == content


async def test_the_sweeper_purges_expired_files_on_its_own(running: Running) -> None:
    file = await create(running, expiration_config=common_pb2.ExpirationConfig(ttl_days=1))
    store = running.server.core.store
    running.clock.advance(NS_PER_DAY)
    running.server.start_sweeper(interval_seconds=0.01)

    async def purged() -> None:
        while await store.get(file.id, 0) is not None:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(purged(), timeout=10)


def test_new_request_ids_differ_and_a_forked_worker_draws_its_own() -> None:
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    ours = new_request_id()
    assert len(theirs) == 32 and theirs[:16] != ours[:16]


def test_grpcs_spurious_poller_wakeups_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    # grpc/grpc#25364: with several event loops in a process, all but one of them find the
    # completion queue's wake-up byte gone and asyncio logs that as an ERROR. Nothing failed.
    files_api.app._quiet_client_faults()
    loop_log = logging.getLogger("asyncio")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for error in (BlockingIOError(11, "Resource temporarily unavailable"), OSError(5, "EIO")):
            loop_log.error(
                "Exception in callback PollerCompletionQueue._handle_events(<loop>)()",
                exc_info=(type(error), error, None),
            )
        elsewhere = BlockingIOError(11, "Resource temporarily unavailable")
        loop_log.error("Exception in callback other()", exc_info=elsewhere)
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [OSError, BlockingIOError]


def test_a_client_gone_before_its_answer_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # grpcio logs ExecuteBatchError with a traceback when a client cancelled or reset its call
    # just before the answer went out: the client's doing, not the server's.
    files_api.app._quiet_client_faults()
    gone = cygrpc.ExecuteBatchError('Failed "execute_batch"')
    with caplog.at_level(logging.WARNING, logger="grpc._cython.cygrpc"):
        logging.getLogger("grpc._cython.cygrpc").error(
            "ExecuteBatchError raised in core by servicer method [/x/Update]", exc_info=gone
        )
    (record,) = caplog.records
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert 'Failed "execute_batch"' in record.getMessage()


async def test_a_page_of_big_files_stops_before_a_stock_clients_limit(running: Running) -> None:
    """400 Files with the longest names, descriptions and labels make 5.5 MB: the page stops
    early with its token, so a client with gRPC's default 4 MiB limit still walks them all."""
    labels = {f"k{n:02d}" + "k" * 60: "v" * 63 for n in range(64)}
    made = set()
    for n in range(400):
        file = await running.stub.Create(
            fs.CreateFileRequest(
                folder_id="big",
                name=f"{n:04d}" + "ы" * 510,
                description="ж" * 1024,
                labels=labels,
                content=b"x",
            )
        )
        made.add(file.id)
    seen: list[str] = []
    sizes = []
    token = ""
    while True:
        page = await running.stub.List(
            fs.ListFilesRequest(folder_id="big", page_size=1000, page_token=token)
        )
        if not page.files:
            break
        sizes.append(fs.ListFilesResponse(files=page.files).ByteSize())  # the token aside
        seen += [f.id for f in page.files]
        token = page.next_page_token
    assert set(seen) == made and len(seen) == len(made)
    assert len(sizes) > 1 and max(sizes) <= MAX_PAGE_BYTES


@pytest.mark.parametrize(
    "labels",
    [
        {"k" * 4000: "v"},  # one key, echoed in the message and in the violation
        {f"Bad-Key-{n:02d}-" + "Ж" * 40: "Ж" * 60 for n in range(40)},  # forty violations
    ],
    ids=["long-key", "forty-bad-labels"],
)
async def test_an_error_echoing_big_input_still_fits_a_stock_clients_metadata(
    running: Running, labels: dict[str, str]
) -> None:
    """A stock client refuses metadata over 8 KiB: it must still see INVALID_ARGUMENT and its
    BadRequest, not RESOURCE_EXHAUSTED."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.stub.Create(fs.CreateFileRequest(folder_id="f", labels=labels, content=b"x"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    shown = len(detail.field_violations)
    more = re.search(r"\((\d+) more violations not shown\)$", status.message)
    assert shown + (int(more[1]) if more else 0) >= len(labels)  # a key and a value may fail
    assert (more is None) == (len(labels) == 1)
    assert all(v.field.startswith("labels") for v in detail.field_violations)


@pytest.mark.parametrize(
    ("name", "extension"),
    [("ы" * 511 + ".b", ".b"), ("a." + "x" * 1022, ""), ("z" * 1024, "")],
    ids=["long-stem", "long-extension", "no-extension"],
)
async def test_auto_rename_keeps_a_longest_name_within_the_limit(
    running: Running, name: str, extension: str
) -> None:
    assert len(name.encode()) == MAX_NAME_BYTES
    auto = (("x-check-name-mode", "auto_rename"),)
    request = fs.CreateFileRequest(folder_id="long", name=name, content=b"x")
    first = await running.stub.Create(request)
    renamed = [(await running.stub.Create(request, metadata=auto)).name for _ in range(2)]
    assert len({first.name, *renamed}) == 3
    for new in renamed:
        assert len(new.encode()) <= MAX_NAME_BYTES and new.endswith(extension)
    second = await running.stub.List(fs.ListFilesRequest(folder_id="long"))
    for file in second.files:  # the name it was given is one an Update takes back
        await running.stub.Update(
            fs.UpdateFileRequest(
                file_id=file.id,
                name=file.name,
                update_mask=field_mask_pb2.FieldMask(paths=["name"]),
            )
        )
