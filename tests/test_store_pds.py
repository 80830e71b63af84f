"""The store contract for what the PDS face added, on every backend: its attributes, the
name-conflict transaction, uploads in parts, listings in any order, and the migration that
brings older stores along."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import sqlite3
from typing import TYPE_CHECKING

import asyncpg
import pytest

from files_api.domain.naming import AUTO_RENAME, REFUSE, naming_for
from files_api.errors import AlreadyExists, InvalidArgument
from files_api.store import SORT_KEYS, Order, Upload, content_hash, open_store
from tests.test_store import NOW, SQL_BACKENDS, migrate_to, query, record

if TYPE_CHECKING:
    from files_api.store import FileRecord, FileStore, Naming

PDS_RECORD = record(
    hidden=True,
    starred=True,
    local_created_at_ns=1_600_000_000_123_456_789,
    local_modified_at_ns=0,
    content_hash="AAF4C61DDCC5E8A2DABEDE0F3B482CD9AEA9434D",
    pds_labels=("a", "метка", "a"),
    description="nul \x00 inside",
)


async def test_pds_attributes_round_trip_through_create_update_and_list(store: FileStore) -> None:
    await store.create(PDS_RECORD, b"hello")
    assert await store.get(PDS_RECORD.id, NOW) == PDS_RECORD
    cleared = PDS_RECORD._replace(
        hidden=False, starred=False, local_created_at_ns=None, pds_labels=()
    )
    assert await store.update(PDS_RECORD.id, NOW, lambda _: cleared) == cleared
    assert await store.get(PDS_RECORD.id, NOW) == cleared
    assert await store.list("folder", NOW, 10, None) == [cleared]


@pytest.mark.parametrize("mode", [REFUSE, AUTO_RENAME])
async def test_concurrent_writes_of_one_name_never_both_take_it(
    store: FileStore, mode: str
) -> None:
    """Many creates and renames race for `a.jpg` in one folder: under refuse exactly one wins,
    under auto_rename every file ends with a name of its own."""
    await store.create(record("taken-elsewhere", folder_id="other", name="a.jpg"), b"x")
    for i in range(10):
        await store.create(record(f"r{i:02d}", name=f"before-{i}"), b"x")
    naming = naming_for(mode)

    async def create(i: int) -> str | None:
        try:
            stored = await store.create(record(f"c{i:02d}", name="a.jpg"), b"x", naming=naming)
        except AlreadyExists:
            return None
        return stored.name

    async def rename(i: int) -> str | None:
        change = lambda r: r._replace(name="a.jpg")  # noqa: E731
        try:
            stored = await store.update(f"r{i:02d}", NOW, change, naming=naming)
        except AlreadyExists:
            return None
        assert stored is not None
        return stored.name

    outcomes = await asyncio.gather(
        *(create(i) for i in range(10)), *(rename(i) for i in range(10))
    )
    names = [r.name for r in await store.list("folder", NOW, 100, None)]
    if mode == REFUSE:
        assert [o for o in outcomes if o is not None] == ["a.jpg"]
        assert names.count("a.jpg") == 1
        assert len(names) == 11  # ten renames (one done, nine refused) and one create
    else:
        assert all(o is not None for o in outcomes)
        assert len(names) == len(set(names)) == 20
        assert "a.jpg" in names
        stamp = "a_20231114_221320"  # NOW in UTC
        assert {f"{stamp}.jpg", f"{stamp}_1.jpg", f"{stamp}_18.jpg"} <= set(names)


async def test_refuse_names_the_holder_and_writes_nothing(store: FileStore) -> None:
    await store.create(record("holder", name="a.jpg"), b"x")
    await store.create(record("mover", name="b.jpg"), b"x")
    with pytest.raises(AlreadyExists) as e:
        await store.create(record("new", name="a.jpg"), b"x", naming=naming_for(REFUSE))
    assert e.value.resource == "holder"
    assert await store.get("new", NOW) is None
    with pytest.raises(AlreadyExists):
        change = lambda r: r._replace(name="a.jpg")  # noqa: E731
        await store.update("mover", NOW, change, naming=naming_for(REFUSE))
    assert (await store.get("mover", NOW)).name == "b.jpg"  # type: ignore[union-attr]
    # An expired holder, a file elsewhere and the file itself hold no name.
    expired = record("gone", name="c.jpg", expires_at_ns=NOW)
    await store.create(expired, b"x")
    await store.create(record("c", name="c.jpg"), b"x", naming=naming_for(REFUSE))
    same = lambda r: r._replace(name="c.jpg")  # noqa: E731
    assert (await store.update("c", NOW, same, naming=naming_for(REFUSE))) is not None
    assert await store.names("folder", "c.", NOW) == {"c.jpg": "c"}
    assert await store.names("folder", "", NOW, excluding="c") == {
        "a.jpg": "holder",
        "b.jpg": "mover",
    }


async def test_an_upload_is_invisible_until_finished_and_then_whole(store: FileStore) -> None:
    pending = record("up", size=0, content_hash="")
    await store.stage(Upload(pending, "u1", 2, NOW + 10**12, REFUSE))
    assert await store.get("up", NOW) is None
    assert await store.list("folder", NOW, 10, None) == []
    limit = []

    def check(total: int) -> None:
        limit.append(total)
        if total > 12:
            raise InvalidArgument("too big")

    assert await store.put_part("up", "u1", 2, b"world", now_ns=NOW, check=check)
    assert await store.put_part("up", "u1", 1, b"hi ", now_ns=NOW, check=check)
    with pytest.raises(InvalidArgument):
        await store.put_part("up", "u1", 1, b"far too long", now_ns=NOW, check=check)
    assert await store.put_part("up", "u1", 1, b"hello ", now_ns=NOW, check=check)  # replaces
    assert limit == [5, 8, 17, 11]  # each check saw the other parts plus the new one
    assert not await store.put_part("up", "wrong", 1, b"x", now_ns=NOW, check=check)
    assert not await store.put_part("up", "u1", 1, b"x", now_ns=NOW + 10**12, check=check)

    assert await finish(store, "up", "other") is None
    finished = await finish(store, "up", "u1")
    assert finished is not None and finished.size == 11
    assert await store.get("up", NOW) == finished
    assert await store.content("up", NOW) == b"hello world"
    assert await finish(store, "up", "u1") is None


async def finish(
    store: FileStore, file_id: str, upload_id: str, now_ns: int = NOW, naming: Naming | None = None
) -> FileRecord | None:
    """Completes an upload as the domain does: read the parts, build the file, write it."""
    pending = await store.pending_upload(file_id, upload_id, now_ns)
    if pending is None:
        return None
    upload, parts = pending
    content = b"".join(parts)
    done = upload.record._replace(
        size=len(content), content_hash=content_hash(content), updated_at_ns=now_ns
    )
    return await store.finish_upload(upload, done, content, naming=naming)


async def test_a_part_put_after_the_parts_were_read_stops_the_finish(store: FileStore) -> None:
    # Completion reads the parts outside its write: a part that lands in between must not be
    # acknowledged and then lost, so the write finds the revision moved and changes nothing.
    await store.stage(Upload(record("up", size=0), "u1", 1, NOW + 10**12, "ignore"))
    await store.put_part("up", "u1", 1, b"first", now_ns=NOW, check=lambda _: None)
    pending = await store.pending_upload("up", "u1", NOW)
    assert pending is not None
    upload, parts = pending
    assert (upload.revision, parts) == (1, [b"first"])
    await store.put_part("up", "u1", 1, b"second", now_ns=NOW, check=lambda _: None)
    stale = upload.record._replace(size=5, updated_at_ns=NOW)
    assert await store.finish_upload(upload, stale, b"first") is None
    assert await store.get("up", NOW) is None
    finished = await finish(store, "up", "u1")
    assert finished is not None and await store.content("up", NOW) == b"second"


async def test_a_failing_finish_leaves_the_upload_pending(store: FileStore) -> None:
    await store.create(record("holder", name="n"), b"x")
    await store.stage(Upload(record("up", name="n"), "u1", 1, NOW + 10**12, REFUSE))
    await store.put_part("up", "u1", 1, b"data", now_ns=NOW, check=lambda _: None)
    with pytest.raises(AlreadyExists):
        await finish(store, "up", "u1", naming=naming_for(REFUSE))
    await store.delete("holder", NOW)
    assert await finish(store, "up", "u1", naming=naming_for(REFUSE)) is not None
    assert await store.content("up", NOW) == b"data"


async def test_expired_uploads_are_purged(store: FileStore) -> None:
    await store.stage(Upload(record("old"), "u1", 1, NOW, "ignore"))
    await store.stage(Upload(record("new"), "u2", 1, NOW + 10, "ignore"))
    await store.put_part("new", "u2", 1, b"x", now_ns=NOW, check=lambda _: None)
    await store.purge_expired(NOW)
    assert await finish(store, "old", "u1", NOW - 1) is None
    assert await finish(store, "new", "u2") is not None


@pytest.mark.parametrize(("key", "descending"), list(itertools.product(SORT_KEYS, [False, True])))
async def test_listing_in_any_order_walks_every_file_once(
    store: FileStore, key: str, descending: bool
) -> None:
    # Ties on every key but the id, and names whose code point order differs from locales'.
    names = ["b", "B", "a", "Ä", "a", "z", "é", "_x", "b"]
    for i, name in enumerate(names):
        await store.create(
            record(
                f"f{i}",
                name=name,
                size=i % 3,
                created_at_ns=NOW + i % 4,
                updated_at_ns=NOW + i % 2,
            ),
            b"x",
        )
    order = Order(key, descending)
    expected = sorted(
        [r for r in [await store.get(f"f{i}", NOW) for i in range(len(names))] if r is not None],
        key=order.cursor,
        reverse=descending,
    )
    walked, after = [], None
    while page := await store.list("folder", NOW, 2, after, order):
        walked += page
        after = order.cursor(page[-1])
    assert [r.id for r in walked] == [r.id for r in expected]


@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_migration_gives_older_files_their_content_hash(
    backend: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"files_api.store.{backend}")
    await migrate_to(backend, store_url, module.HASH_VERSION - 1, monkeypatch)
    chunks = {"small": [b"hello"], "big": [bytes(range(256)) * 4096, b"tail"]}
    await _insert_as_before(store_url, chunks)

    new = open_store(store_url)
    await new.open()
    try:
        for file_id, parts in chunks.items():
            migrated = await new.get(file_id, NOW)
            assert migrated is not None
            assert migrated.content_hash == content_hash(b"".join(parts))
            assert (migrated.hidden, migrated.starred, migrated.pds_labels) == (False, False, ())
            assert migrated.local_created_at_ns is None
    finally:
        await new.close()
    assert await query(store_url, "SELECT count(*) FROM files WHERE content_hash = ''") == 0


async def _insert_as_before(url: str, chunks: dict[str, list[bytes]]) -> None:
    """Rows as the schema before the PDS attributes held them: 14 columns, no hash."""
    columns = (
        "id, folder_id, name, description, mime_type, created_by, created_at_ns,"
        " updated_by, updated_at_ns, expiration_policy, ttl_days, expires_at_ns, labels, size"
    )
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
            for file_id, parts in chunks.items():
                conn.execute(
                    f"INSERT INTO files ({columns}) VALUES"
                    " (?, 'folder', 'n', 'd', 'text/plain', 's', ?, 's', ?, 2, 7, ?, '{}', ?)",
                    (file_id, NOW, NOW, NOW + 10**15, sum(map(len, parts))),
                )
                conn.execute("INSERT INTO contents VALUES (?, ?)", (file_id, b"".join(parts)))
        return
    pg = await asyncpg.connect(url)
    try:
        for file_id, parts in chunks.items():
            await pg.execute(
                f"INSERT INTO files ({columns}) VALUES ($1, 'folder', 'n', 'd', 'text/plain',"
                " 's', $2, 's', $2, 2, 7, $3, '{}', $4)",
                file_id,
                NOW,
                NOW + 10**15,
                sum(map(len, parts)),
            )
            for seq, part in enumerate(parts):
                await pg.execute("INSERT INTO contents VALUES ($1, $2, $3)", file_id, seq, part)
    finally:
        await pg.close()
