"""What only the PostgreSQL store promises: many replicas on one database, and outages survived.

The contract suite runs on PostgreSQL as on every backend (conftest.BACKENDS); these tests add
what it cannot show with one store: two stores or two server processes on one database, the
sweeper racing another replica, and the database going away under a running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import aiohttp
import asyncpg
import grpc
import pytest
from google.protobuf import field_mask_pb2
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from server.errors import Unavailable
from server.store import open_store
from tests.support import run_server_command, server_process
from tests.test_store import NOW, record

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from server.store import FileRecord, FileStore
    from tests.conftest import Running
    from tests.postgres import Cluster


@pytest.fixture
def backend() -> str:
    """Overrides conftest's: every store and server here is a PostgreSQL one."""
    return "postgres"


@pytest.fixture
async def replicas(store_url: str) -> AsyncIterator[tuple[FileStore, FileStore]]:
    """Two stores on one database, as two replicas would have."""
    first, second = open_store(store_url), open_store(store_url)
    await asyncio.gather(first.open(), second.open())
    yield first, second
    await asyncio.gather(first.close(), second.close())


async def test_everything_is_kept_across_a_reopen(store_url: str) -> None:
    first = open_store(store_url)
    await first.open()
    await first.create(record(), b"\x00binary\xff")
    secret = await first.signing_secret(lambda: b"s" * 32)
    await first.close()

    second = open_store(store_url)
    await second.open()
    try:
        again = await second.get(record().id, NOW)
        assert again == record()
        assert again is not None and again.created_at_ns % 1000 == 789  # nanoseconds kept
        assert await second.content(record().id, NOW) == b"\x00binary\xff"
        assert await second.signing_secret(lambda: b"other") == secret
    finally:
        await second.close()


async def test_updates_through_two_replicas_lose_nothing(
    replicas: tuple[FileStore, FileStore],
) -> None:
    await replicas[0].create(record(labels={}), b"x")

    def add_label(key: str) -> Callable[[FileRecord], FileRecord]:
        return lambda r: r._replace(labels={**r.labels, key: key})

    keys = [f"k{i}" for i in range(40)]
    await asyncio.gather(
        *(replicas[i % 2].update(record().id, NOW, add_label(key)) for i, key in enumerate(keys))
    )
    final = await replicas[1].get(record().id, NOW)
    assert final is not None and dict(final.labels) == {k: k for k in keys}


async def test_sweep_passes_over_a_file_another_replica_is_extending(
    store: FileStore, store_url: str
) -> None:
    await store.create(record(expires_at_ns=NOW), b"x")
    other = await asyncpg.connect(store_url)
    try:
        async with other.transaction():
            # Another replica's Update holds the row while it moves the expiry on.
            await other.execute("SELECT 1 FROM files WHERE id = $1 FOR UPDATE", record().id)
            assert await asyncio.wait_for(store.purge_expired(NOW), timeout=5) == 0
            await other.execute(
                "UPDATE files SET expires_at_ns = $2 WHERE id = $1", record().id, NOW + 10**12
            )
        assert await store.purge_expired(NOW) == 0
    finally:
        await other.close()
    assert await store.get(record().id, NOW) is not None


async def test_replicas_sweeping_together_purge_each_file_once(
    replicas: tuple[FileStore, FileStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.store.postgres.PURGE_BATCH", 7)
    for i in range(50):
        await replicas[i % 2].create(record(f"f{i:019}", expires_at_ns=NOW), b"x")
    await replicas[0].create(record("lasting"), b"x")
    counts = await asyncio.gather(*(r.purge_expired(NOW) for r in (*replicas, *replicas)))
    assert sum(counts) == 50
    assert await replicas[1].list("folder", NOW - 1, 100, None) == [record("lasting")]


async def test_a_connection_the_database_ended_fails_one_call_at_most(
    store: FileStore, store_url: str
) -> None:
    await store.create(record(), b"x")
    admin = await asyncpg.connect(store_url)
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    assert ended >= 1
    # Whether the pool sees the close before the next call is a race: that call gets the record
    # or UNAVAILABLE (for the client to retry), and the one after it a fresh connection.
    with contextlib.suppress(Unavailable):
        await store.get(record().id, NOW)
    assert await store.get(record().id, NOW) == record()


async def test_database_outage_is_unavailable_then_the_server_reconnects(
    running: Running, postgres_cluster: Cluster, store_url: str
) -> None:
    """Stops the session's cluster: no other test runs meanwhile, and each opens its own."""
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"kept"))
    url = (await running.stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id))).url
    rename = fs.UpdateFileRequest(
        file_id=file.id, update_mask=field_mask_pb2.FieldMask(paths=["name"]), name="n"
    )
    calls = [
        lambda: running.stub.Get(fs.GetFileRequest(file_id=file.id)),
        lambda: running.stub.List(fs.ListFilesRequest(folder_id="f")),
        lambda: running.stub.Update(rename),
        lambda: running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x")),
        lambda: running.stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id)),
        lambda: running.stub.Delete(fs.DeleteFileRequest(file_id=file.id)),
    ]

    # One Update is in flight when the database goes: it waits for a row lock held here.
    holder = await asyncpg.connect(store_url)
    await holder.execute("BEGIN")
    await holder.execute("SELECT 1 FROM files WHERE id = $1 FOR UPDATE", file.id)
    in_flight = asyncio.ensure_future(running.stub.Update(rename))
    while not await holder.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    ):
        await asyncio.sleep(0.01)

    await asyncio.to_thread(postgres_cluster.stop)
    holder.terminate()
    try:
        # The shutdown kills the lock holder and the waiter in turn: the waiter may take the lock
        # and commit first. Either answer is right, as long as it tells the truth (checked below).
        try:
            await in_flight
            in_flight_committed = True
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            in_flight_committed = False
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call()
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
            assert e.value.details() == "the database is unavailable; try again later"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 503
    finally:
        await asyncio.to_thread(postgres_cluster.start)

    if in_flight_committed:
        assert (await running.stub.Get(fs.GetFileRequest(file_id=file.id))).name == "n"
    for call in calls:  # the same server, not restarted: its pool has reconnected
        await call()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await running.stub.Get(fs.GetFileRequest(file_id=file.id))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND  # the last call deleted it


def test_two_server_processes_on_one_database_act_as_one(postgres_database: str) -> None:
    with (
        server_process("--store", postgres_database) as a,
        server_process("--store", postgres_database) as b,
        grpc.insecure_channel(a.grpc_address) as channel_a,
        grpc.insecure_channel(b.grpc_address) as channel_b,
    ):
        assert "postgresql://postgres@127.0.0.1" in a.log_text()
        stub_a = file_service_pb2_grpc.FileServiceStub(channel_a)
        stub_b = file_service_pb2_grpc.FileServiceStub(channel_b)

        created = stub_a.Create(fs.CreateFileRequest(folder_id="f", name="a", content=b"shared"))
        updated = stub_b.Update(
            fs.UpdateFileRequest(
                file_id=created.id,
                update_mask=field_mask_pb2.FieldMask(paths=["name", "labels.team"]),
                name="b",
                labels={"team": "ml"},
            )
        )
        assert stub_a.Get(fs.GetFileRequest(file_id=created.id)) == updated

        # A link signed by one replica downloads from the other: the secret is in the database.
        link = stub_a.GetUrl(fs.GetFileUrlRequest(file_id=created.id)).url
        assert a.http_address in link
        with urllib.request.urlopen(link.replace(a.http_address, b.http_address)) as response:
            assert response.read() == b"shared"

        keys = [f"k{i}" for i in range(60)]
        pending = [
            (stub_a, stub_b)[i % 2].Update.future(
                fs.UpdateFileRequest(
                    file_id=created.id,
                    update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{key}"]),
                    labels={key: key},
                )
            )
            for i, key in enumerate(keys)
        ]
        for future in pending:
            future.result(timeout=60)
        final = stub_b.Get(fs.GetFileRequest(file_id=created.id))
        assert dict(final.labels) == {"team": "ml", **{k: k for k in keys}}

        listed = [
            (stub_a, stub_b)[i % 2].Create(
                fs.CreateFileRequest(folder_id="pages", content=b"p%d" % i)
            )
            for i in range(7)
        ]
        walked: list[str] = []
        token = ""
        for page in range(10):  # each page from the other replica, with the other's token
            response = (stub_a, stub_b)[page % 2].List(
                fs.ListFilesRequest(folder_id="pages", page_size=2, page_token=token)
            )
            if not response.files:
                break
            walked += [f.id for f in response.files]
            token = response.next_page_token
        newest_first = sorted(listed, key=lambda f: (f.created_at.ToNanoseconds(), f.id))[::-1]
        assert walked == [f.id for f in newest_first]

        stub_b.Delete(fs.DeleteFileRequest(file_id=created.id))
        with pytest.raises(grpc.RpcError) as e:
            stub_a.Get(fs.GetFileRequest(file_id=created.id))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(link)
        http_error.value.close()
        assert http_error.value.code == 404
    assert a.process.returncode == b.process.returncode == 0


@pytest.mark.parametrize("database", ["no_such_database", None])
def test_a_database_it_cannot_open_stops_start_up_with_one_line(
    postgres_cluster: Cluster, database: str | None
) -> None:
    url = (
        postgres_cluster.url(database)
        if database
        else "postgresql://files:secret@127.0.0.1:1/files"  # nothing listens on port 1
    )
    result = run_server_command("--store", url, "--grpc-listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "cannot start" in result.stderr
    assert "Traceback" not in result.stderr
    assert "secret" not in result.stderr
