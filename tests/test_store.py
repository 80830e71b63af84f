"""The FileStore contract, on every backend: atomicity, durability across a reopen."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import TYPE_CHECKING

import pytest

from server.store import FileRecord, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from server.store import FileStore

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
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_round_trip_keeps_every_field(store: FileStore) -> None:
    await store.create(record(), b"hello")
    assert await store.get(record().id, NOW) == record()
    assert await store.content(record().id, NOW) == b"hello"


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


async def test_signing_secret_is_made_once(store: FileStore) -> None:
    first = await store.signing_secret(lambda: b"first")
    assert await store.signing_secret(lambda: b"second") == first == b"first"


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
    "url", ["", "memory", "memory:x", "sqlite:", "sqlite://", "sqlite:///", "mysql://h/db"]
)
def test_bad_store_urls_are_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|memory"):
        open_store(url)
