"""The FileStore contract, on every backend: atomicity, durability across a reopen, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from files_api.app import Server, Settings
from files_api.store import (
    AuditEvent,
    FileRecord,
    Naming,
    Upload,
    open_store,
    with_pool_size,
    without_password,
)
from files_api.store import sqlite as sqlite_module
from files_api.store.beside import BESIDE_BYTES, ContentFiles, content_dir
from files_api.store.postgres import CHUNK_BYTES as PG_CHUNK_BYTES
from files_api.store.rows import (
    FIELDS,
    FILE_BYTES,
    LIST_ENTRIES,
    Listed,
    pending_migrations,
)
from files_api.store.sqlite import CHUNK_BYTES, GROUP_BYTES, STAGE_TTL_NS, SqliteStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    from files_api.store import FileStore

NOW = 1_700_000_000_123_456_789


def record(file_id: str = "f0000000000000000001", **changes: object) -> FileRecord:
    base = FileRecord(
        id=file_id,
        folder_id="folder",
        name="n",
        description="d",
        mime_type="text/plain",
        created_by="s",
        created_at_ns=NOW,
        updated_by="s",
        updated_at_ns=NOW,
        expiration_policy=2,
        ttl_days=7,
        expires_at_ns=NOW + 10**15,
        labels={"k": "v", "ключ": "значение"},
        size=5,
    )
    return base._replace(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("listed", [FILE_BYTES, LIST_ENTRIES], ids=lambda f: f.column)
@pytest.mark.parametrize(
    ("changes", "columns"),
    [
        ({}, ()),
        ({"name": "m", "updated_at_ns": NOW + 1}, ("name", "updated_at_ns")),
        ({"labels": {"k": "v", "ключ": "значение"}}, ()),  # equal, though another dict
        ({"labels": {"k": "w"}}, ("labels",)),
        ({"pds_labels": ("a", "b"), "hidden": True}, ("hidden", "pds_labels")),
    ],
)
def test_an_update_writes_only_the_columns_that_changed(
    listed: Listed, changes: dict[str, Any], columns: tuple[str, ...]
) -> None:
    new = record(**changes)
    names, values = listed.changes(record(), new)
    assert names == ((*columns, listed.column) if columns else ())
    full = dict(zip((*FIELDS, listed.column), listed.row(new), strict=True))
    assert values == [full[name] for name in names]  # encoded as a whole row would be


async def test_round_trip_keeps_every_field(store: FileStore) -> None:
    await store.create(record(), b"hello")
    assert await store.get(record().id, NOW) == record()
    assert await store.content(record().id, NOW) == b"hello"


@pytest.mark.parametrize("size", [0, 1, PG_CHUNK_BYTES - 1, PG_CHUNK_BYTES, 2 * PG_CHUNK_BYTES + 7])
async def test_content_of_any_size_comes_back_whole(store: FileStore, size: int) -> None:
    content = (bytes(range(256)) * (size // 256 + 1))[:size]
    await store.create(record(size=size), content)
    assert await store.content(record().id, NOW) == content
    assert await store.content(record().id, record().expires_at_ns) is None


async def test_a_failing_change_leaves_the_record_as_it_was(store: FileStore) -> None:
    await store.create(record(), b"hello")

    def change(r: FileRecord) -> FileRecord:
        raise ValueError("rejected by the domain")

    with pytest.raises(ValueError, match="rejected"):
        await store.update(record().id, NOW, change)
    assert await store.get(record().id, NOW) == record()


async def test_update_of_missing_or_expired_record_returns_none(store: FileStore) -> None:
    await store.create(record(expires_at_ns=NOW), b"x")
    assert await store.update("missing", NOW, lambda r: r) is None
    assert await store.update(record().id, NOW, lambda r: r) is None
    assert await store.get(record().id, NOW) is None
    assert await store.get(record().id, NOW - 1) is not None


async def test_delete_removes_record_and_content(store: FileStore) -> None:
    await store.create(record(), b"x")
    assert await store.delete(record().id, NOW) is True
    assert await store.delete(record().id, NOW) is False
    assert await store.content(record().id, NOW) is None


async def test_clear_drops_files_audit_and_uploads_and_keeps_the_secret(store: FileStore) -> None:
    secret = await store.signing_secret(lambda: b"s" * 32)
    event = AuditEvent(record().id, NOW, "a", "create", (), "r1")
    await store.create(record(), b"x", event)
    await store.stage(Upload(record("f0000000000000000002"), "u1", 1, NOW + 10**12, "ignore"))
    await store.put_part("f0000000000000000002", "u1", 1, b"p", now_ns=NOW, check=lambda _: None)
    await store.clear()
    assert await store.get(record().id, NOW) is None
    assert await store.content(record().id, NOW) is None
    assert await store.audit_log(record().id) == []
    assert await store.pending_upload("f0000000000000000002", "u1", NOW) is None
    assert await store.list("folder", NOW, 10, None) == []
    assert await store.signing_secret(lambda: b"other") == secret
    await store.create(record(), b"again")  # the same id is free again
    assert await store.content(record().id, NOW) == b"again"


async def test_signing_secret_is_made_once(store: FileStore) -> None:
    first = await store.signing_secret(lambda: b"first")
    assert await store.signing_secret(lambda: b"second") == first == b"first"


@contextlib.asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "files.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def sqlite_rows(tmp_path: Path, query: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "files.db")) as conn:
        return conn.execute(query).fetchall()


async def staging_begun(tmp_path: Path) -> None:
    while not sqlite_rows(tmp_path, "SELECT 1 FROM staging"):
        await asyncio.sleep(0.001)


def beside_files(tmp_path: Path) -> set[str]:
    return ContentFiles(content_dir(tmp_path / "files.db")).names()


async def test_sqlite_big_content_goes_beside_the_database(tmp_path: Path) -> None:
    """Content of more than BESIDE_BYTES is a file of its own, written and fsynced off the
    writer thread: small writes go on while 64 MiB is written, and the row only names it."""
    big = bytes(range(256)) * (64 * 1024 * 1024 // 256)
    async with sqlite_store(tmp_path) as store:
        await store.create(record("small"), b"x")
        creating = asyncio.create_task(store.create(record("big"), big))
        await asyncio.wait_for(staging_begun(tmp_path), timeout=10)
        renamed = await store.update("small", NOW, lambda r: r._replace(name="renamed"))
        assert renamed is not None and not creating.done()
        await creating
        assert await store.content("big", NOW) == big
        [content_id] = beside_files(tmp_path)
        assert sqlite_rows(
            tmp_path, "SELECT content_id, content_beside FROM files WHERE id = 'big'"
        ) == [(content_id, 1)]
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM chunks") == [(1,)]  # small's
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]
        blob = await store.open_content("big", NOW)
        assert blob is not None
        reading = blob.chunks(0, len(big))
        first = await anext(reading)
        await store.delete("big", NOW)
        await store.update("small", NOW, lambda r: r._replace(name="again"))  # after the drop
        assert beside_files(tmp_path) == set()
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]
        # A download that began reads on to the end: the descriptor outlives the name.
        assert first + b"".join([piece async for piece in reading]) == big
        assert await store.open_content("big", NOW) is None


async def test_sqlite_content_no_file_took_is_dropped(tmp_path: Path) -> None:
    big = b"z" * (BESIDE_BYTES + 1)

    def refuse(record: FileRecord, names: Mapping[str, str]) -> FileRecord:
        raise ValueError("taken")

    taken = Naming(lambda name: name, refuse)
    async with sqlite_store(tmp_path) as store:
        with pytest.raises(ValueError, match="taken"):
            await store.create(record("refused"), big, naming=taken)
        await store.create(record("other"), b"y")  # queued behind the drop
        assert beside_files(tmp_path) == set()
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]
        # What a crash leaves behind (a staging row, its file) goes once older than STAGE_TTL_NS.
        await store._write(
            lambda conn: conn.execute("INSERT INTO staging VALUES ('dead', ?)", (NOW,))
        )
        store._beside.write("dead", big)
        await store.purge_expired(NOW + STAGE_TTL_NS - 1)
        assert beside_files(tmp_path) == {"dead"}
        await store.purge_expired(NOW + STAGE_TTL_NS)
        assert beside_files(tmp_path) == set()
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]


async def test_sqlite_content_a_cancelled_write_committed_stays(tmp_path: Path) -> None:
    """A caller that gives up (a deadline, a cancelled RPC) after its file's row was queued:
    the row commits all the same, so its content must stay, though the caller never heard."""
    big = b"c" * (BESIDE_BYTES + 1)
    async with sqlite_store(tmp_path) as store:

        async def write(written: object) -> None:
            def insert(conn: sqlite3.Connection) -> None:
                sqlite_module._insert(conn, record("kept"), written, None)  # type: ignore[arg-type]

            await store._write(insert)
            raise asyncio.CancelledError  # as if the caller were cancelled right after

        with pytest.raises(asyncio.CancelledError):
            await store._written(big, NOW, write)
        await store.create(record("after"), b"y")  # queued behind the drop
        assert await store.content("kept", NOW) == big
        assert len(beside_files(tmp_path)) == 1
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]


async def test_sqlite_a_snapshot_pins_the_content_files_its_rows_name(tmp_path: Path) -> None:
    """An export reading a snapshot while the server deletes files still finds every file its
    rows name; what the pin kept goes at the next purge once the snapshot ends."""
    big = b"p" * (BESIDE_BYTES + 1)
    async with sqlite_store(tmp_path) as store:
        await store.create(record("big"), big)
        async with store.snapshot(NOW) as snapshot:
            await store.delete("big", NOW)
            await store.purge_expired(NOW)
            assert [r.id async for r in snapshot.files()] == ["big"]
            assert await snapshot.content("big") == big
        assert len(beside_files(tmp_path)) == 1
        await store.purge_expired(NOW)
        assert beside_files(tmp_path) == set()
        expiring = record("short", expires_at_ns=NOW + 1)
        await store.create(expiring, big)
        assert await store.purge_expired(NOW + 1) == 1
        assert beside_files(tmp_path) == set()
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM staging") == [(0,)]


async def test_sqlite_reads_big_content_stored_in_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stores written before content went beside the database keep theirs in chunk rows."""
    big = bytes(range(256)) * (3 * CHUNK_BYTES // 256) + b"tail"
    async with sqlite_store(tmp_path) as store:
        with monkeypatch.context() as patch:
            patch.setattr(sqlite_module, "BESIDE_BYTES", len(big))
            await store.create(record("old", size=len(big)), big)
        assert beside_files(tmp_path) == set()
        assert await store.content("old", NOW) == big
        blob = await store.open_content("old", NOW)
        assert blob is not None
        assert b"".join([piece async for piece in blob.chunks(5, len(big) - 3)]) == big[5:-3]
        await store.delete("old", NOW)
        assert sqlite_rows(tmp_path, "SELECT count(*) FROM chunks") == [(0,)]


async def test_sqlite_a_big_completion_goes_beside_and_frees_its_parts(tmp_path: Path) -> None:
    parts = [bytes([n]) * GROUP_BYTES for n in range(4)]
    async with sqlite_store(tmp_path) as store:
        await store.create(record("small"), b"x")
        await store.stage(Upload(record("up", size=0), "u1", len(parts), NOW + 10**12, "ignore"))
        for number, part in enumerate(parts, start=1):
            await store.put_part("up", "u1", number, part, now_ns=NOW, check=lambda _: None)
        pending = await store.pending_upload("up", "u1", NOW)
        assert pending is not None
        upload, read = pending
        done = upload.record._replace(size=4 * GROUP_BYTES, updated_at_ns=NOW)
        assert await store.finish_upload(upload, done, b"".join(read)) == done
        assert await store.content("up", NOW) == b"".join(parts)
        assert len(beside_files(tmp_path)) == 1
        for table in ("staging", "uploads", "upload_parts"):
            assert sqlite_rows(tmp_path, f"SELECT count(*) FROM {table}") == [(0,)], table


async def test_sqlite_keeps_everything_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'files.db'}"
    first = open_store(url)
    await first.open()
    await first.create(record(), b"\x00binary\xff")
    secret = await first.signing_secret(lambda: b"s" * 32)
    await first.close()

    second = open_store(url)
    await second.open()  # migrations run again: must be a no-op
    try:
        assert await second.get(record().id, NOW) == record()
        assert (await second.get(record().id, NOW)).created_at_ns % 1000 == 789  # type: ignore[union-attr]
        assert await second.content(record().id, NOW) == b"\x00binary\xff"
        assert await second.signing_secret(lambda: b"other") == secret
    finally:
        await second.close()
    with sqlite3.connect(tmp_path / "nested" / "files.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "memory",
        "memory:x",
        "sqlite:",
        "sqlite://",
        "sqlite:///",
        "mysql://h/db",
        "postgresql://",
        "postgresql://h:5432",
        "postgresql://h/db?pool_size=x",
        "postgresql://h/db?pool_size=-1",
        "postgresql://h/db?pool_size=1&pool_size=2",
    ],
)
def test_bad_store_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|memory"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "dsn", "pool_size"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql://u:p@h:5432/db", 10),
        ("postgres://h/db?pool_size=3", "postgres://h/db", 3),
        (
            "postgresql://u@h/db?sslmode=require&pool_size=25&application_name=files",
            "postgresql://u@h/db?sslmode=require&application_name=files",
            25,
        ),
        ("postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql", 10),
    ],
)
def test_postgres_url_gives_the_pool_size_and_passes_the_rest_on(
    url: str, dsn: str, pool_size: int
) -> None:
    store = open_store(url)
    assert (store.dsn, store.pool_size) == (dsn, pool_size)  # type: ignore[attr-defined]


def test_postgres_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match="pool_size must be at least 1"):
        open_store("postgresql://h/db?pool_size=0")


def test_a_driver_is_imported_only_for_its_url() -> None:
    code = (
        # The whole server is imported first: only opening a PostgreSQL store may load asyncpg.
        "import sys, files_api.__main__, files_api.app, files_api.gateway;"
        " from files_api.store import open_store;"
        " open_store('memory:'); open_store('sqlite:///x.db'); print('asyncpg' in sys.modules);"
        " open_store('postgresql://h/db'); print('asyncpg' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("memory:", "memory:"),
        ("sqlite:////abs/files.db", "sqlite:////abs/files.db"),
        ("postgresql://files@db/files", "postgresql://files@db/files"),
        ("postgresql://files:s3cr%40t@db:5432/files", "postgresql://files:***@db:5432/files"),
        (
            "postgresql://db/files?password=s3cret&pool_size=5",
            "postgresql://db/files?password=***&pool_size=5",
        ),
    ],
)
def test_urls_are_logged_without_passwords(url: str, logged: str) -> None:
    assert without_password(url) == logged


SQL_BACKENDS = ["sqlite", "postgres"]


async def query(url: str, sql: str) -> object:
    """The first column of the first row, read around the store under test."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            row = conn.execute(sql).fetchone()
            return None if row is None else row[0]
    pg = await asyncpg.connect(url)
    try:
        return await pg.fetchval(sql)
    finally:
        await pg.close()


async def schema_version(backend: str, url: str) -> object:
    if backend == "sqlite":
        return await query(url, "PRAGMA user_version")
    return await query(url, "SELECT max(version) FROM schema_version")


async def migrate_to(backend: str, url: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Brings an empty store's schema to `version`, as the release that stopped there made it."""
    module = importlib.import_module(f"files_api.store.{backend}")
    with monkeypatch.context() as patch:
        patch.setattr(module, "MIGRATIONS", list(module.MIGRATIONS)[:version])
        old = open_store(url)
        await old.open()
        await old.close()


def test_pending_migrations_are_those_past_the_version() -> None:
    migrations = [("a",), ("b", "c"), ("d",)]
    assert pending_migrations(migrations, 0) == [(1, ("a",)), (2, ("b", "c")), (3, ("d",))]
    assert pending_migrations(migrations, 2) == [(3, ("d",))]
    assert pending_migrations(migrations, 3) == []
    assert pending_migrations(migrations, 4) == []  # a newer schema: an older replica runs on


@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_migrations_apply_once_each_and_all_or_nothing(
    backend: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"files_api.store.{backend}")
    shipped = list(module.MIGRATIONS)
    first = open_store(store_url)
    await first.open()
    await first.create(record(), b"x")
    await first.close()
    assert await schema_version(backend, store_url) == len(shipped)

    broken = ("CREATE TABLE extra (n integer)", "INSERT INTO no_such_table VALUES (1)")
    monkeypatch.setattr(module, "MIGRATIONS", [*shipped, broken])
    with pytest.raises((sqlite3.OperationalError, ConnectionError), match="no_such_table"):
        await open_store(store_url).open()
    assert await schema_version(backend, store_url) == len(shipped)
    assert await query(store_url, "SELECT count(*) FROM files") == 1  # `extra` rolled back too

    fixed = ("CREATE TABLE extra (n integer)", "INSERT INTO extra VALUES (7)")
    monkeypatch.setattr(module, "MIGRATIONS", [*shipped, fixed])
    for _ in range(2):  # the second open finds nothing to do: CREATE TABLE again would fail
        again = open_store(store_url)
        await again.open()
        assert await again.get(record().id, NOW) == record()
        await again.close()
    assert await schema_version(backend, store_url) == len(shipped) + 1
    assert await query(store_url, "SELECT sum(n) FROM extra") == 7


@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_replicas_starting_together_migrate_once_and_share_one_secret(
    backend: str, store_url: str
) -> None:
    replicas = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(r.open() for r in replicas))
    try:
        secrets = await asyncio.gather(
            *(r.signing_secret(lambda i=i: bytes([i]) * 32) for i, r in enumerate(replicas))  # type: ignore[misc]
        )
    finally:
        await asyncio.gather(*(r.close() for r in replicas))
    assert len(set(secrets)) == 1
    module = importlib.import_module(f"files_api.store.{backend}")
    assert await schema_version(backend, store_url) == len(module.MIGRATIONS)


@pytest.mark.parametrize(
    ("url", "size", "expected"),
    [
        ("postgresql://u:p@h:5/db", 3, "postgresql://u:p@h:5/db?pool_size=3"),
        (
            "postgresql://u@h/db?pool_size=9&sslmode=require",
            4,
            "postgresql://u@h/db?sslmode=require&pool_size=4",
        ),
        ("sqlite:///x.db", None, "sqlite:///x.db"),
    ],
)
def test_pool_size_flag_sets_the_url_parameter(url: str, size: int | None, expected: str) -> None:
    assert with_pool_size(url, size) == expected


def test_pool_size_reaches_the_postgres_store_and_is_refused_elsewhere() -> None:
    server = Server(Settings(store="postgresql://u@127.0.0.1:1/db", pool_size=3))
    assert server.core.store.pool_size == 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="PostgreSQL"):
        Server(Settings(store="sqlite:///x.db", pool_size=3))
