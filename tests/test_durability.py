"""SQLite durability: an acknowledged write survives a power cut, not just a crash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from files_api.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from pathlib import Path

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


async def test_the_writer_commits_in_wal_mode_with_synchronous_full(tmp_path: Path) -> None:
    """In WAL mode synchronous=NORMAL skips the fsync at COMMIT, so a write already answered
    can vanish with the machine; group commit answers only after COMMIT, so it must be FULL.
    Checked on a new file and again on reopening one (journal_mode is kept in the file,
    synchronous is per connection)."""
    path = tmp_path / "files.db"
    for _ in range(2):
        store = SqliteStore.from_url(f"sqlite:///{path}")
        await store.open()
        try:
            assert await store.writer_pragmas() == ("wal", FULL)
        finally:
            await store.close()
