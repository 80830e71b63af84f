"""`python -m bench.seed`: fills a SQLite store with many valid files, fast, for the scale runs.

    python -m bench.seed --store sqlite:///PATH --files 1000000 [--folder ID]

The schema comes from the store itself (`SqliteStore.open()` runs its migrations) and every row
from `LIST_ENTRIES.row()`, as the store lays rows out, so seeded files are exactly what the server
would have written; only the inserting differs: big batched transactions without fsync, since
a seed needs no durability.
Files are spread backwards in time from now, one folder holds them all (the worst case for a
first List page), and every file has a small content row, so downloads work too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import string
import sys
import time
from typing import TYPE_CHECKING

from files_api.domain.limits import DEFAULT_POLICY, DEFAULT_TTL_DAYS, NS_PER_DAY
from files_api.store import FileRecord
from files_api.store.rows import FIELDS, LIST_ENTRIES
from files_api.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BATCH = 50_000
SUBJECT = "anonymous"  # who the server says made a file when no one signed in
CONTENT = b"seeded content\n"

# Random bytes to id characters in one C call: 256 entries each a letter or digit.
_LETTERS = bytes(string.ascii_lowercase, "ascii")
_ALNUM = bytes(string.ascii_lowercase + string.digits, "ascii")
_FIRST = bytes(_LETTERS[b % len(_LETTERS)] for b in range(256))
_REST = bytes(_ALNUM[b % len(_ALNUM)] for b in range(256))


def _file_ids(count: int) -> Iterator[str]:
    """Ids shaped like the server's (20 characters, a letter first); random, so the primary key
    B-tree fills as it would in use."""
    seen: set[str] = set()
    while len(seen) < count:
        raw = os.urandom(20)
        file_id = (raw[:1].translate(_FIRST) + raw[1:].translate(_REST)).decode()
        if file_id not in seen:
            seen.add(file_id)
            yield file_id


def seed_records(count: int, folder_id: str, now_ns: int) -> Iterator[FileRecord]:
    # Every seeded file is live for the default TTL from now, whatever its creation time.
    expires_at_ns = now_ns + DEFAULT_TTL_DAYS * NS_PER_DAY
    for number, file_id in enumerate(_file_ids(count)):
        created = now_ns - (number + 1) * 1000  # newest first, a microsecond apart
        yield FileRecord(
            id=file_id,
            folder_id=folder_id,
            name=f"seed-{number}.txt",
            description="seeded by bench.seed",
            mime_type="text/plain",
            created_by=SUBJECT,
            created_at_ns=created,
            updated_by=SUBJECT,
            updated_at_ns=created,
            expiration_policy=DEFAULT_POLICY,
            ttl_days=DEFAULT_TTL_DAYS,
            expires_at_ns=expires_at_ns,
            labels={"seed": "yes"},
            size=len(CONTENT),
        )


INSERT_FILE = (
    f"INSERT INTO files ({LIST_ENTRIES.columns}) VALUES ({', '.join('?' * (len(FIELDS) + 1))})"
)
"""A file row as our SQLite store writes it, from `LIST_ENTRIES.row`."""


def migrate(path: Path) -> None:
    """Our schema in a SQLite store at `path`, as our store makes it (outside any loop)."""
    store = SqliteStore(path)

    async def open_and_close() -> None:
        await store.open()
        await store.close()

    asyncio.run(open_and_close())


def seed(path: Path, count: int, folder_id: str) -> float:
    """Adds `count` files in `folder_id` to the store at `path`; returns the seconds it took."""
    started = time.monotonic()
    migrate(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MiB: the indexes stay in memory
        records = seed_records(count, folder_id, time.time_ns())
        while batch := [
            tuple(LIST_ENTRIES.row(r)) for _, r in zip(range(BATCH), records, strict=False)
        ]:
            batch.sort()  # by id: each batch walks the primary key in order
            conn.execute("BEGIN")
            conn.executemany(INSERT_FILE, batch)
            conn.executemany("INSERT INTO contents VALUES (?, ?)", ((r[0], CONTENT) for r in batch))
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seed", description="Fill a SQLite store with valid files, fast."
    )
    parser.add_argument("--store", required=True, metavar="sqlite:///PATH")
    parser.add_argument("--files", type=int, required=True, metavar="N")
    parser.add_argument("--folder", default="b1gbenchseedfolder", metavar="ID")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    store = SqliteStore.from_url(args.store)
    seconds = seed(store.path, args.files, args.folder)
    print(f"seeded {args.files:,} files into {store.path} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
