"""List pages are the Files' stored bytes joined (files_api.store.wire): every kind of write
must keep those bytes current, on every backend, or List would show what Get no longer does."""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2

from files_api.domain.drive import Drive, Edits
from files_api.domain.links import UPLOAD_PREFIX
from files_api.domain.naming import AUTO_RENAME
from files_api.domain.uploads import NewUpload
from files_api.store import open_store
from files_api.store.rows import COLUMNS, FIELDS, record_row
from files_api.store.sqlite import ENTRY_VERSION
from files_api.store.wire import (
    entry_cursor,
    entry_sizes,
    file_bytes,
    list_entry,
    list_page_bytes,
    listing,
)
from tests.test_domain_files import walk
from tests.test_store import NOW, SQL_BACKENDS, migrate_to, record

if TYPE_CHECKING:
    from files_api.domain.files import Files
    from files_api.store import Listing
    from tests.conftest import Clock


def _signed(url: str) -> tuple[str, str, str]:
    """(the path's last segments, expires, signature) of a signed link."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path, query["expires"][0], query["signature"][0]


async def test_every_write_keeps_the_listed_file_current(files: Files, clock: Clock) -> None:
    core = files.core
    drive = Drive(core)
    made = await files.create(
        fs.CreateFileRequest(folder_id="w", name="a.txt", content=b"a", labels={"k": "v"})
    )
    await files.update(
        fs.UpdateFileRequest(
            file_id=made.id,
            name="b.txt",
            labels={"x": "y"},
            update_mask=field_mask_pb2.FieldMask(paths=["name", "labels.x", "labels.k"]),
        )
    )
    renamed = await files.create(
        fs.CreateFileRequest(folder_id="w", name="b.txt", content=b"b"), name_mode=AUTO_RENAME
    )
    await drive.edit(renamed.id, "w", Edits(name="c.txt", hidden=True, labels=("p",)))
    staged = await drive.uploads.stage(
        "w", NewUpload(name="up.bin", size=3, mime_type="", parts=1), "http://h"
    )
    path, expires, signature = _signed(staged.part_urls[0])
    await drive.uploads.put_part(path.removeprefix(UPLOAD_PREFIX), expires, signature, b"abc")
    await drive.uploads.complete("w", staged.record.id, staged.upload_id)
    clock.advance(3 * 24 * 3600 * 10**9)  # a download now moves a SINCE_LAST_ACTIVE expiry
    url, _ = core.download_url(await core.find(made.id), "http://h", 60)
    _, expires, signature = _signed(url)
    await drive.uploads.download(made.id, expires, signature)

    listed = (await files.list(fs.ListFilesRequest(folder_id="w"))).files
    assert sorted(f.name for f in listed) == ["b.txt", "c.txt", "up.bin"]
    for file in listed:
        assert file == await files.get(fs.GetFileRequest(file_id=file.id))


async def test_files_made_at_one_instant_are_listed_once_each_by_id(files: Files) -> None:
    """The clock stands still: pages end between files of one `created_at`, and the next goes
    on from the last file's id (the cursor read back from the page's last entry)."""
    made = [
        (await files.create(fs.CreateFileRequest(folder_id="t", name=f"{n}.txt", content=b"x"))).id
        for n in range(7)
    ]
    seen, sizes = await walk(files, "t", 3)
    assert seen == sorted(made, reverse=True)
    assert sizes == [3, 3, 1, 0]


def test_a_page_is_the_response_protobuf_would_serialize() -> None:
    files = [record(), record("f0000000000000000002", labels={}, description="x" * 300)]
    expected = fs.ListFilesResponse(next_page_token="t" * 200)
    for r in files:
        expected.files.add().ParseFromString(file_bytes(r))
    joined = list_page_bytes(b"".join(map(list_entry, files)), "t" * 200)
    # Parsed, not bytes: a map's entries may serialize in either order.
    assert fs.ListFilesResponse.FromString(joined) == expected
    assert list_page_bytes(b"", "") == b""


def test_entries_are_read_back_by_their_lengths_alone() -> None:
    files = [
        record(),
        record("f0000000000000000002", description="x" * 20_000),  # three bytes of length
        record("f0000000000000000003", created_at_ns=NOW - 1, labels={}),
    ]
    page = listing([file_bytes(r) for r in files])
    assert list(entry_sizes(page.entries)) == [len(list_entry(r)) for r in files]
    assert page.last_size == len(list_entry(files[-1]))
    assert entry_cursor(page.entries[-page.last_size :]) == (NOW - 1, "f0000000000000000003")
    assert listing([]) == (b"", 0)


async def _insert_as_before(url: str, wire: bytes | None) -> None:
    """A file row as an earlier schema held it: with no `wire`, or with the File's bytes there."""
    values = record_row(record())
    columns = COLUMNS if wire is None else f"{COLUMNS}, wire"
    if wire is not None:
        values.append(wire)
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            places = ", ".join("?" * len(values))
            conn.execute(f"INSERT INTO files ({columns}) VALUES ({places})", values)
            conn.commit()
        return
    values[FIELDS.index("description")] = str(values[FIELDS.index("description")]).encode()
    pg = await asyncpg.connect(url)
    try:
        places = ", ".join(f"${n}" for n in range(1, len(values) + 1))
        await pg.execute(f"INSERT INTO files ({columns}) VALUES ({places})", *values)
    finally:
        await pg.close()


async def _listed_after_upgrade(url: str) -> Listing:
    upgraded = open_store(url)
    await upgraded.open()
    try:
        return await upgraded.list_entries("folder", NOW, 10, None)
    finally:
        await upgraded.close()


@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_files_stored_before_the_wire_column_get_theirs(
    backend: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = importlib.import_module(f"files_api.store.{backend}")
    await migrate_to(backend, store_url, module.WIRE_VERSION - 1, monkeypatch)
    await _insert_as_before(store_url, None)
    entry = list_entry(record())
    assert await _listed_after_upgrade(store_url) == (entry, len(entry))


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_files_stored_as_their_bytes_become_entries(
    backend: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate_to(backend, store_url, ENTRY_VERSION - 1, monkeypatch)
    await _insert_as_before(store_url, file_bytes(record()))
    entry = list_entry(record())
    assert await _listed_after_upgrade(store_url) == (entry, len(entry))
