"""What only the PostgreSQL store promises: many replicas on one database, and outages survived.

The contract suite runs on PostgreSQL as on every backend (conftest.BACKENDS); these tests add
what it cannot show with one store: two stores or two server processes on one database, the
sweeper racing another replica, and the database going away under a running server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import tracemalloc
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2

from files_api.domain import Core, Files
from files_api.domain.limits import NS_PER_DAY
from files_api.errors import Aborted, PreconditionFailed, Unavailable
from files_api.store import AuditEvent, open_store
from files_api.store.postgres import MIGRATIONS, UPDATE_TRIES
from tests.support import run_server_command, server_process, server_processes
from tests.test_store import NOW, record

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from files_api.store import FileRecord, FileStore
    from tests.conftest import Clock, Running
    from tests.postgres import Cluster


BIG = 128 * 2**20


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


async def test_128_mib_goes_in_and_out_in_rows_never_as_a_second_copy(
    store: FileStore, store_url: str
) -> None:
    """Content streams as 1 MiB rows both ways (files_api/store/postgres.py; `python -m
    bench.pg_content` measures +17 MiB to put 128 MiB and +4 MiB to read it): half a copy is
    far above either, and any second copy of the content goes beyond it."""
    content = os.urandom(BIG)  # incompressible: PostgreSQL keeps every byte
    big = record(size=BIG)
    tracemalloc.start()  # it sees asyncpg's buffers too: they are PyMem allocations
    try:
        await store.create(big, content)
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        read = await store.content(big.id, NOW)
        # The result is the caller's own copy: what the store holds besides it counts.
        read_peak = tracemalloc.get_traced_memory()[1] - before - BIG
    finally:
        tracemalloc.stop()
    digest = hashlib.sha256(content).digest()
    conn = await asyncpg.connect(store_url)
    try:
        stored = await conn.fetchval(
            "SELECT sha256(string_agg(data, '' ORDER BY seq)) FROM contents WHERE file_id = $1",
            big.id,
        )
    finally:
        await conn.close()
    assert stored == digest  # what went in, hashed by PostgreSQL
    assert read is not None and hashlib.sha256(read).digest() == digest
    assert put_peak < BIG // 2, f"a 128 MiB put took {put_peak / 2**20:.0f} MiB more"
    assert read_peak < BIG // 2, f"a 128 MiB read took {read_peak / 2**20:.0f} MiB more"


async def test_updates_of_other_fields_through_two_replicas_lose_nothing(
    replicas: tuple[FileStore, FileStore], clock: Clock
) -> None:
    """Every Update reads the file, changes what its mask names and writes it back: without the
    row lock, one replica writes back what it read over what the other committed meanwhile.
    Here no two masks overlap, yet labels share a column, and each Update moves a
    SINCE_LAST_ACTIVE file's expiry by the ttl it read."""
    files = [Files(Core(replica, clock=clock)) for replica in replicas]
    created = await files[0].create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    clock.advance(10**9)  # the Updates' expiry differs from the one Create set

    def update(path: str, **fields: Any) -> fs.UpdateFileRequest:
        mask = field_mask_pb2.FieldMask(paths=[path])
        return fs.UpdateFileRequest(file_id=created.id, update_mask=mask, **fields)

    keys = [f"k{i}" for i in range(30)]
    requests = [update(f"labels.{key}", labels={key: key}) for key in keys]
    requests[5:5] = [update("name", name="renamed")]
    requests[15:15] = [update("description", description="described")]
    ttl = common_pb2.ExpirationConfig(ttl_days=30)
    requests[25:25] = [update("expiration_config.ttl_days", expiration_config=ttl)]
    await asyncio.gather(*(files[i % 2].update(r) for i, r in enumerate(requests)))

    final = await files[1].get(fs.GetFileRequest(file_id=created.id))
    assert (final.name, final.description) == ("renamed", "described")
    assert final.expiration_config.ttl_days == 30
    assert final.expires_at.ToNanoseconds() == clock.now + 30 * NS_PER_DAY
    assert dict(final.labels) == {key: key for key in keys}


def _old_release_writes(cluster: Cluster, store_url: str, label: str) -> None:
    """What a replica of the previous release does to a file: an UPDATE that knows nothing of
    the version column (through psql: a `change` is synchronous)."""
    cluster.psql(
        f"UPDATE files SET labels = labels || '{{\"{label}\": \"x\"}}' WHERE id = '{record().id}'",
        database=store_url.rpartition("/")[2],
    )


async def test_an_update_that_lost_its_race_reads_again_and_keeps_both_changes(
    store: FileStore, store_url: str, postgres_cluster: Cluster
) -> None:
    await store.create(record(), b"x")
    seen: list[FileRecord] = []

    def change(old: FileRecord) -> FileRecord:
        seen.append(old)
        if len(seen) == 1:  # between this read and its write, an older replica writes
            _old_release_writes(postgres_cluster, store_url, "theirs")
        return old._replace(labels={**old.labels, "ours": "y"})

    def audit(old: FileRecord, new: FileRecord) -> AuditEvent:
        return AuditEvent(old.id, NOW, "s", "update", ("labels.ours",), "r")

    new = await store.update(record().id, NOW, change, audit)
    assert len(seen) == 2 and "theirs" in seen[1].labels
    assert new is not None and await store.get(record().id, NOW) == new
    assert {"ours", "theirs"} <= set(new.labels)
    assert [e.action for e in await store.audit_log(record().id)] == ["update"]  # once


async def test_an_update_that_keeps_losing_its_race_gives_up_with_aborted(
    store: FileStore, store_url: str, postgres_cluster: Cluster
) -> None:
    await store.create(record(), b"x")
    tries = 0

    def change(old: FileRecord) -> FileRecord:
        nonlocal tries
        tries += 1
        _old_release_writes(postgres_cluster, store_url, f"theirs{tries}")
        return old._replace(name="ours")

    with pytest.raises(Aborted):
        await store.update(record().id, NOW, change)
    assert tries == UPDATE_TRIES
    final = await store.get(record().id, NOW)
    assert final is not None and final.name == record().name  # nothing of ours written
    assert len([k for k in final.labels if k.startswith("theirs")]) == UPDATE_TRIES
    assert await store.update(record().id, NOW, lambda r: r._replace(name="ours")) is not None


async def test_a_delete_is_checked_against_the_file_as_it_is_when_it_lands(
    store: FileStore, store_url: str, postgres_cluster: Cluster
) -> None:
    """Delete reads without a lock: a write that lands between its read and its DELETE sends
    it back to read and check again (an if-match made against the older file now fails), and
    one that keeps losing gives up with ABORTED, deleting nothing."""
    await store.create(record(), b"x")
    checked: list[FileRecord] = []

    def check(found: FileRecord) -> None:
        checked.append(found)
        if len(checked) == 1:
            _old_release_writes(postgres_cluster, store_url, "theirs")
        elif "theirs" in found.labels:
            raise PreconditionFailed("stale etag")

    with pytest.raises(PreconditionFailed):
        await store.delete(record().id, NOW, check)
    assert len(checked) == 2 and await store.get(record().id, NOW) is not None

    tries = 0

    def losing(found: FileRecord) -> None:
        nonlocal tries
        tries += 1
        _old_release_writes(postgres_cluster, store_url, f"again{tries}")

    event = AuditEvent(record().id, NOW, "s", "delete", (), "r")
    with pytest.raises(Aborted):
        await store.delete(record().id, NOW, losing, event)
    assert tries == UPDATE_TRIES and await store.get(record().id, NOW) is not None
    assert [e.action for e in await store.audit_log(record().id)] == []
    assert await store.delete(record().id, NOW, None, event)
    assert await store.get(record().id, NOW) is None
    assert [e.action for e in await store.audit_log(record().id)] == ["delete"]
    assert not await store.delete(record().id, NOW, None, event)


async def test_a_replica_that_wrote_a_file_last_sees_another_replicas_write_since(
    replicas: tuple[FileStore, FileStore],
) -> None:
    """A replica starts an update of a file from the record it wrote last, unread: when another
    replica wrote since, its write must not land, and `change` must not refuse on what it
    remembered (as an if-match check would) but see the file as it is."""
    first, second = replicas
    await first.create(record(), b"x")
    await first.update(record().id, NOW, lambda r: r._replace(name="first"))
    await second.update(record().id, NOW, lambda r: r._replace(name="second"))
    seen: list[str] = []

    def change(old: FileRecord) -> FileRecord:
        seen.append(old.name)
        if old.name != "second":
            raise PreconditionFailed("stale etag")
        return old._replace(description="after second")

    new = await first.update(record().id, NOW, change)
    assert seen == ["first", "second"]
    assert new is not None and await second.get(record().id, NOW) == new
    assert (new.name, new.description) == ("second", "after second")


async def test_updates_of_one_file_that_queue_up_are_written_together_in_one_order(
    replicas: tuple[FileStore, FileStore],
) -> None:
    """Many updates of one file at once, on two replicas: those that lose a race queue up in
    their replica and are written together. Each answer holds its own change and those before
    it (the answers form one order), and each change has its audit record, in that order."""
    await replicas[0].create(record(), b"x")
    keys = [f"k{i:02}" for i in range(60)]

    def change(key: str) -> Callable[[FileRecord], FileRecord]:
        return lambda old: old._replace(labels={**old.labels, key: "v"})

    def audit(old: FileRecord, new: FileRecord) -> AuditEvent:
        (key,) = set(new.labels) - set(old.labels)
        return AuditEvent(old.id, NOW, "s", "update", (f"labels.{key}",), "r")

    answers = await asyncio.gather(
        *(replicas[i % 2].update(record().id, NOW, change(k), audit) for i, k in enumerate(keys))
    )
    order = sorted((a for a in answers if a is not None), key=lambda a: len(a.labels))
    assert len(order) == len(keys)
    for before, after in itertools.pairwise(order):
        assert set(before.labels) < set(after.labels)
    final = await replicas[1].get(record().id, NOW)
    assert final == order[-1] and set(keys) <= set(final.labels)
    logged = [e.paths[0].removeprefix("labels.") for e in await replicas[0].audit_log(record().id)]
    added = [
        (set(a.labels) - set(b.labels)).pop() for b, a in itertools.pairwise([record(), *order])
    ]
    assert logged == added


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


async def test_replicas_sweeping_together_pass_over_held_files_and_purge_the_rest_once(
    replicas: tuple[FileStore, FileStore], store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("files_api.store.postgres.PURGE_BATCH", 7)
    ids = [f"f{i:019}" for i in range(50)]
    for i, file_id in enumerate(ids):
        await replicas[i % 2].create(record(file_id, expires_at_ns=NOW), b"x")
    await replicas[0].create(record("lasting"), b"x")
    held = ids[::5]  # in every batch
    other = await asyncpg.connect(store_url)
    try:
        async with other.transaction():
            # Updates in flight on another replica hold these rows: the sweeps go round them,
            # batch after batch, rather than wait for them.
            await other.execute("SELECT 1 FROM files WHERE id = ANY($1) FOR UPDATE", held)
            sweeps = (r.purge_expired(NOW) for r in (*replicas, *replicas))
            counts = await asyncio.wait_for(asyncio.gather(*sweeps), timeout=10)
            assert sum(counts) == len(ids) - len(held)  # each of the others once
            left = await other.fetch("SELECT id FROM files WHERE expires_at_ns <= $1", NOW)
            assert sorted(row[0] for row in left) == held
        assert await replicas[1].purge_expired(NOW) == len(held)  # the next sweep's
    finally:
        await other.close()
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
    calls: list[Callable[[], Awaitable[object]]] = [
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
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
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
        passing = [
            stub_b.Create(fs.CreateFileRequest(folder_id="pages", content=b"t%d" % i))
            for i in range(4)
        ]
        walked: list[str] = []
        token = ""
        for page in range(20):  # each page from the other replica, with the other's token
            response = (stub_a, stub_b)[page % 2].List(
                fs.ListFilesRequest(folder_id="pages", page_size=2, page_token=token)
            )
            if not response.files:
                break
            walked += [f.id for f in response.files]
            token = response.next_page_token
            # Meanwhile the other replica adds a file and deletes one: keyset paging must
            # neither skip nor repeat the files that last through the walk.
            other = (stub_b, stub_a)[page % 2]
            other.Create(fs.CreateFileRequest(folder_id="pages", content=b"n%d" % page))
            if passing:
                other.Delete(fs.DeleteFileRequest(file_id=passing.pop().id))
        newest_first = sorted(listed, key=lambda f: (f.created_at.ToNanoseconds(), f.id))[::-1]
        lasting = {f.id for f in listed}
        assert [i for i in walked if i in lasting] == [f.id for f in newest_first]
        assert len(walked) == len(set(walked))

        stub_b.Delete(fs.DeleteFileRequest(file_id=created.id))
        with pytest.raises(grpc.RpcError) as e:
            stub_a.Get(fs.GetFileRequest(file_id=created.id))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(link)
        http_error.value.close()
        assert http_error.value.code == 404
    assert a.process.returncode == b.process.returncode == 0


async def test_two_servers_starting_at_once_on_an_empty_database_migrate_it_once(
    postgres_database: str,
) -> None:
    """Two replicas launched together on an empty database. A lock held here on the catalog
    stalls any CREATE TABLE until both are inside their start-up migration, so they meet there
    however the machine schedules them; then both serve one schema, migrated once."""
    gate = await asyncpg.connect(postgres_database)
    try:
        held = gate.transaction()
        await held.start()
        await gate.execute("LOCK TABLE pg_catalog.pg_class IN SHARE MODE")
        with server_processes(*[["--store", postgres_database]] * 2) as starting:
            try:
                await asyncio.wait_for(_until_waiting_for_locks(gate, 2), timeout=60)
            finally:
                await held.rollback()
            a, b = await asyncio.to_thread(starting.serving)
            versions = await gate.fetch("SELECT version FROM schema_version ORDER BY version")
            assert [row[0] for row in versions] == list(range(1, len(MIGRATIONS) + 1))
            with grpc.insecure_channel(a.grpc_address) as channel:
                stub = file_service_pb2_grpc.FileServiceStub(channel)
                created = stub.Create(fs.CreateFileRequest(folder_id="f", content=b"shared"))
                link = stub.GetUrl(fs.GetFileUrlRequest(file_id=created.id)).url
            # One signing secret: a link one replica signed downloads from the other.
            with urllib.request.urlopen(link.replace(a.http_address, b.http_address)) as response:
                assert response.read() == b"shared"
    finally:
        await gate.close()


@pytest.mark.parametrize("from_env", [False, True], ids=["--pool-size", "FILES_POOL_SIZE"])
async def test_a_server_opens_no_more_connections_than_its_pool_size(
    postgres_database: str, from_env: bool
) -> None:
    args, env = ([], {"FILES_POOL_SIZE": "3"}) if from_env else (["--pool-size", "3"], None)
    observer = await asyncpg.connect(postgres_database)
    try:
        with (
            server_process("--store", postgres_database, *args, env=env) as server,
            grpc.insecure_channel(server.grpc_address) as channel,
        ):
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            file = stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
            async with observer.transaction():
                # Each Update of the burst holds a connection while it waits for this row lock.
                await observer.execute("SELECT 1 FROM files WHERE id = $1 FOR UPDATE", file.id)
                burst = [
                    stub.Update.future(
                        fs.UpdateFileRequest(
                            file_id=file.id,
                            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.k{i}"]),
                            labels={f"k{i}": "v"},
                        )
                    )
                    for i in range(8)
                ]
                await asyncio.wait_for(_until_waiting_for_locks(observer, 3), timeout=30)
                assert await _sessions(observer) == 3
                with pytest.raises(grpc.RpcError) as e:  # no fourth connection for a Get either
                    stub.Get(fs.GetFileRequest(file_id=file.id), timeout=1)
                code = e.value.code()
                assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            for update in burst:
                update.result(timeout=30)
            assert await _sessions(observer) <= 3
    finally:
        await observer.close()


async def _sessions(conn: asyncpg.Connection, waiting: bool = False) -> int:
    """How many other connections to conn's database are open (or waiting for a lock)."""
    # Within a transaction pg_stat_activity lists the sessions of its first read: new ones
    # (the server's pool growing) show only once told to read afresh.
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            + (" AND wait_event_type = 'Lock'" if waiting else "")
        )
    )


async def _until_waiting_for_locks(conn: asyncpg.Connection, count: int) -> None:
    while await _sessions(conn, waiting=True) < count:
        await asyncio.sleep(0.02)


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
