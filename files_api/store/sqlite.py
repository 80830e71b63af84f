"""The embedded default store: one SQLite file in WAL mode, and content of more than
BESIDE_BYTES in files of its own beside it (`files_api.store.beside` says why and how).

Writes go through one connection on one thread with group commit: whatever writes queue up
while a commit is being made durable go together into the next `BEGIN IMMEDIATE` transaction,
each in a savepoint of its own (a failing one rolls back alone), and one `COMMIT` with
`synchronous=FULL` makes them all durable before any of their callers hears back. One fsync
then serves many Updates. Small reads (a record, a page, a download's piece of PIECE_BYTES) run
on the event loop's own connection, which costs less than a hop to a thread; whole contents are
read on a thread pool. In WAL mode no read waits behind a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from files_api.store import (
    NEWEST_FIRST,
    WRITE_TIMINGS,
    AuditEvent,
    ContentGone,
    Counts,
    FileRecord,
    Listing,
    content_hash,
)
from files_api.store.beside import BESIDE_BYTES, ContentFiles, Pin, content_dir
from files_api.store.rows import (
    COLUMNS,
    END_OF_LOG,
    FIELDS,
    LIST_ENTRIES,
    audit_row,
    pending_migrations,
    row_record,
    upload_from_json,
    upload_row,
)
from files_api.store.wire import entries, file_bytes

if TYPE_CHECKING:
    import concurrent.futures

    from files_api.store import Content, Cursor, Naming, Order, Upload
    from files_api.store.rows import Migration

# Snapshots and loads read and write in pages of this many rows.
PAGE_ROWS = 500

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Every table but meta (the signing secret), children first.
_DATA_TABLES = ("upload_parts", "uploads", "audit", "staging", "chunks", "contents", "files")

# The most content one group commit carries (one write alone may carry more).
GROUP_BYTES = 8 * 1024 * 1024
# Content in the database (BESIDE_BYTES or less; any size in stores written before content was
# kept beside it, and in imports) is stored as rows of this size.
CHUNK_BYTES = 1024 * 1024
# A download reads its content in pieces of this size, each on the loop's connection as a
# record is read: incremental blob I/O reads 512 KiB from the page cache in about 30 us, less
# than a hop to a reader thread and back costs. Server CPU per 1 MiB download (h2load, 16
# connections): 430-560 us in 512 KiB pieces, 540-590 us in 256 KiB pieces, 1.15 ms in one
# 1 MiB piece, 750-900 us as one 1 MiB piece on a reader thread. A download holds one piece,
# and at most about as much in the socket's buffer.
PIECE_BYTES = 512 * 1024
# Staged content that no file took within this long was left by a write that died halfway.
STAGE_TTL_NS = 3600 * 10**9

# Each entry brings the schema from version N to N+1 (PRAGMA user_version); never edit one
# that has shipped, append a new one.
MIGRATIONS: list[Migration] = [
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
        """CREATE TABLE files (
            id TEXT PRIMARY KEY,
            folder_id TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL,
            mime_type TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at_ns INTEGER NOT NULL,
            updated_by TEXT NOT NULL,
            updated_at_ns INTEGER NOT NULL,
            expiration_policy INTEGER NOT NULL,
            ttl_days INTEGER NOT NULL,
            expires_at_ns INTEGER NOT NULL,
            labels TEXT NOT NULL,
            size INTEGER NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX files_by_folder ON files (folder_id, created_at_ns DESC, id DESC)",
        "CREATE INDEX files_by_expiry ON files (expires_at_ns)",
        """CREATE TABLE contents (
            file_id TEXT PRIMARY KEY REFERENCES files (id) ON DELETE CASCADE,
            data BLOB NOT NULL
        )""",
    ),
    (
        # Kept after the file is gone: it is the file's history.
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            subject TEXT NOT NULL,
            action TEXT NOT NULL,
            paths TEXT NOT NULL,
            request_id TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_file ON audit (file_id, seq)",
    ),
    (
        # The PDS face's attributes. Content hashes of older files are filled in by
        # `_backfill_hashes`, which SQL alone cannot do.
        "ALTER TABLE files ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE files ADD COLUMN starred INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE files ADD COLUMN local_created_at_ns INTEGER",
        "ALTER TABLE files ADD COLUMN local_modified_at_ns INTEGER",
        "ALTER TABLE files ADD COLUMN content_hash TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE files ADD COLUMN pds_labels TEXT NOT NULL DEFAULT '[]'",
        "CREATE INDEX files_by_name ON files (folder_id, name)",
        """CREATE TABLE uploads (
            file_id TEXT PRIMARY KEY,
            upload_id TEXT NOT NULL,
            parts INTEGER NOT NULL,
            expires_at_ns INTEGER NOT NULL,
            record TEXT NOT NULL
        ) WITHOUT ROWID""",
        "CREATE INDEX uploads_by_expiry ON uploads (expires_at_ns)",
        """CREATE TABLE upload_parts (
            file_id TEXT NOT NULL REFERENCES uploads (file_id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (file_id, number)
        ) WITHOUT ROWID""",
    ),
    (
        # Completion reads the parts outside its write, then checks that none was put since.
        "ALTER TABLE uploads ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Content as rows of CHUNK_BYTES under a content id of its own, so a big content can
        # be written a group at a time before its file row names it. Files stored before keep
        # theirs in `contents` (content_id ''), read as they were: the upgrade copies nothing.
        """CREATE TABLE chunks (
            content_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (content_id, seq)
        )""",
        "CREATE TABLE staging (content_id TEXT PRIMARY KEY, started_at_ns INTEGER NOT NULL)",
        "ALTER TABLE files ADD COLUMN content_id TEXT NOT NULL DEFAULT ''",
        """CREATE TRIGGER files_drop_chunks AFTER DELETE ON files BEGIN
            DELETE FROM chunks WHERE content_id = old.content_id;
        END""",
    ),
    (
        # Each row's File as clients see it, kept current by every write (files_api.store.wire):
        # a List page joins these. Files stored before get theirs on the way (`_backfill_wire`).
        "ALTER TABLE files ADD COLUMN wire BLOB NOT NULL DEFAULT x''",
    ),
    (
        # Content of more than BESIDE_BYTES in a file of its own beside the database
        # (files_api.store.beside); a row that goes leaves a staging row to remove it by.
        "ALTER TABLE files ADD COLUMN content_beside INTEGER NOT NULL DEFAULT 0",
        """CREATE TRIGGER files_leave_beside AFTER DELETE ON files WHEN old.content_beside BEGIN
            INSERT OR IGNORE INTO staging VALUES (old.content_id, 0);
        END""",
    ),
    (
        # Each row's File as a ListFilesResponse entry (LIST_ENTRIES), so that one statement
        # joins a page; the Files stored before are made entries on the way (`_as_entries`).
        "ALTER TABLE files RENAME COLUMN wire TO entry",
    ),
]

HASH_VERSION = 3  # the schema that added content_hash: older files get theirs on the way
WIRE_VERSION = 6  # the schema that added wire
ENTRY_VERSION = 8  # the schema that made it entry

# SQLite compares text as UTF-8 bytes, so the names starting with a prefix lie between it and
# it followed by the highest code point (a name with U+10FFFF right after the prefix escapes,
# and no rename candidate has one there).
_NAMES = (
    "SELECT name, id FROM files WHERE folder_id = ? AND name >= ? AND name < ?"
    " AND expires_at_ns > ? AND id != ?"
)

_PLACES = ", ".join("?" * (len(FIELDS) + 1))  # LIST_ENTRIES.columns


@functools.lru_cache(maxsize=256)
def _update_statement(columns: tuple[str, ...]) -> str:
    """The UPDATE of just these columns (a few sets recur: an Update's mask decides them)."""
    return f"UPDATE files SET {', '.join(f'{column} = ?' for column in columns)} WHERE id = ?"


def _names(
    conn: sqlite3.Connection, folder_id: str, prefix: str, now_ns: int, excluding: str
) -> dict[str, str]:
    rows = conn.execute(_NAMES, (folder_id, prefix, prefix + "\U0010ffff", now_ns, excluding))
    return dict(rows.fetchall())


def _settle_name(conn: sqlite3.Connection, record: FileRecord, naming: Naming | None) -> FileRecord:
    if naming is None:
        return record
    prefix = naming.prefix(record.name)
    return naming.settle(
        record, _names(conn, record.folder_id, prefix, record.updated_at_ns, record.id)
    )


def _insert(
    conn: sqlite3.Connection,
    record: FileRecord,
    content: Content | _Staged,
    audit: AuditEvent | None,
) -> None:
    """The file row, and its content: written here as chunks, or beside the database before
    and now taken from staging."""
    if isinstance(content, _Staged):
        content_id, beside = content.content_id, 1
        conn.execute("DELETE FROM staging WHERE content_id = ?", (content_id,))
    else:
        content_id, beside = _new_content_id(), 0
        conn.executemany("INSERT INTO chunks VALUES (?, ?, ?)", _chunk_rows(content_id, content))
    conn.execute(
        f"INSERT INTO files ({LIST_ENTRIES.columns}, content_id, content_beside)"
        f" VALUES ({_PLACES}, ?, ?)",
        (*LIST_ENTRIES.row(record), content_id, beside),
    )
    _insert_audit(conn, audit)


_CONTENT_IDS = random.Random()  # its own: nothing that seeds `random` (Hypothesis does) repeats it
os.register_at_fork(after_in_child=_CONTENT_IDS.seed)  # a forked worker draws its own


def _new_content_id() -> str:
    """80 random bits, never used again (a read checks its rows by content id), from a
    generator seeded from the system's randomness: on a busy loop each read of os.urandom
    waited 0.35 ms for the GIL on its way back, measured under 1 MiB Creates."""
    return f"{_CONTENT_IDS.getrandbits(80):020x}"


@dataclasses.dataclass(frozen=True)
class _Staged:
    """Content already written beside the database under `content_id`, waiting for its row."""

    content_id: str


def _chunk_rows(
    content_id: str, content: Content, first_seq: int = 0
) -> Iterator[tuple[str, int, Content]]:
    view = memoryview(content)
    if not view:
        yield content_id, first_seq, b""  # an empty content is one empty chunk, not none
    for offset in range(0, len(view), CHUNK_BYTES):
        yield content_id, first_seq + offset // CHUNK_BYTES, view[offset : offset + CHUNK_BYTES]


def _backfill_hashes(conn: sqlite3.Connection) -> None:
    """Files stored before content hashes existed get theirs."""
    rows = conn.execute(
        "SELECT files.id, data FROM files JOIN contents ON contents.file_id = files.id"
        " WHERE content_hash = ''"
    )
    for file_id, data in rows.fetchall():
        conn.execute(
            "UPDATE files SET content_hash = ? WHERE id = ?", (content_hash(data), file_id)
        )


def _as_entries(conn: sqlite3.Connection) -> None:
    """Files stored as their File's bytes become ListFilesResponse entries."""
    conn.create_function("list_entry", 1, lambda wire: entries((wire,)), deterministic=True)
    try:
        conn.execute("UPDATE files SET entry = list_entry(entry)")
    finally:
        conn.create_function("list_entry", 1, None)


def _backfill_wire(conn: sqlite3.Connection) -> None:
    """Files stored before the `wire` column get theirs, a page of rows at a time."""
    after = ""
    while rows := conn.execute(
        f"SELECT {COLUMNS} FROM files WHERE id > ? ORDER BY id LIMIT ?", (after, PAGE_ROWS)
    ).fetchall():
        records = [row_record(row) for row in rows]
        conn.executemany(
            "UPDATE files SET wire = ? WHERE id = ?", ((file_bytes(r), r.id) for r in records)
        )
        after = records[-1].id


@functools.lru_cache(maxsize=256)
def _paths_json(paths: tuple[str, ...]) -> str:
    """An audit entry's paths as stored (a few sets recur: an Update's mask decides them)."""
    return json.dumps(paths)


def _insert_audit(conn: sqlite3.Connection, event: AuditEvent | None) -> None:
    if event is not None:
        conn.execute(
            "INSERT INTO audit (file_id, time_ns, subject, action, paths, request_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (*audit_row(event)[:4], _paths_json(event.paths), event.request_id),
        )


def _audit_event(row: tuple[Any, ...]) -> AuditEvent:
    return AuditEvent(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), row[5])


def _select_live(conn: sqlite3.Connection, file_id: str, now_ns: int) -> FileRecord | None:
    row = conn.execute(
        f"SELECT {COLUMNS} FROM files WHERE id = ? AND expires_at_ns > ?", (file_id, now_ns)
    ).fetchone()
    return None if row is None else row_record(row)


def _pending_upload(
    conn: sqlite3.Connection, file_id: str, upload_id: str, now_ns: int
) -> Upload | None:
    row = conn.execute(
        "SELECT record, parts, expires_at_ns, revision FROM uploads"
        " WHERE file_id = ? AND upload_id = ? AND expires_at_ns > ?",
        (file_id, upload_id, now_ns),
    ).fetchone()
    return None if row is None else upload_from_json(row[0], upload_id, row[1], row[2], row[3])


def _read_piece(
    conn: sqlite3.Connection, blob: _SqliteBlob, seq: int, offset: int, size: int
) -> bytes:
    """`size` bytes at `offset` of one stored row of the content, by incremental blob I/O: only
    the pages of the range are read (a 1 KiB tail of a 1 MiB row costs 10 us, not the 1 ms
    `substr` takes, and a whole row 60 us against 110 us for `SELECT data`)."""
    if not blob.content_id:
        return _read_legacy(conn, blob, offset, size)
    if offset == 0 and size == blob.row_bytes(seq):
        # A row read whole in one piece: one statement (5.8 against 8.6 us for a small row).
        row = conn.execute(
            "SELECT data FROM chunks WHERE content_id = ? AND seq = ?", (blob.content_id, seq)
        ).fetchone()
        if row is None:
            raise ContentGone(blob.record.id)
        return bytes(row[0])
    rowid = blob.rowids.get(seq)
    if rowid is None:
        row = conn.execute(
            "SELECT rowid FROM chunks WHERE content_id = ? AND seq = ?", (blob.content_id, seq)
        ).fetchone()
        if row is None:
            raise ContentGone(blob.record.id)
        rowid = blob.rowids[seq] = row[0]
    try:
        with conn.blobopen("chunks", "data", rowid, readonly=True) as handle:
            # An open handle holds the connection's read transaction, so this sees the row the
            # handle opened. A rowid freed by a delete may be taken by a later insert, but a
            # content id is never used again: a row that still names ours is ours.
            mine = conn.execute(
                "SELECT 1 FROM chunks WHERE rowid = ? AND content_id = ? AND seq = ?",
                (rowid, blob.content_id, seq),
            ).fetchone()
            if mine is None:
                raise ContentGone(blob.record.id)
            handle.seek(offset)
            data = handle.read(size)
    except sqlite3.OperationalError as e:
        if "no such rowid" not in str(e):
            raise
        raise ContentGone(blob.record.id) from None
    if len(data) != size:
        raise ContentGone(blob.record.id)
    return data


def _read_legacy(conn: sqlite3.Connection, blob: _SqliteBlob, offset: int, size: int) -> bytes:
    """The same from content stored before chunks: one row under the file's id, which an import
    could give another file, so the row is found and read in one snapshot, by content hash."""
    conn.execute("BEGIN")
    try:
        row = conn.execute(
            "SELECT contents.rowid FROM contents JOIN files ON files.id = contents.file_id"
            " WHERE contents.file_id = ? AND files.content_hash = ?",
            (blob.record.id, blob.record.content_hash),
        ).fetchone()
        if row is None:
            raise ContentGone(blob.record.id)
        with conn.blobopen("contents", "data", row[0], readonly=True) as handle:
            handle.seek(offset)
            data = handle.read(size)
    finally:
        conn.execute("COMMIT")
    if len(data) != size:
        raise ContentGone(blob.record.id)
    return data


# A file and, when its content is one piece in one row, that content: a small download is
# one statement, and the content is the row's by the statement's own snapshot.
_OPEN_CONTENT = (
    f"SELECT {COLUMNS}, content_id, content_beside,"
    " CASE WHEN size <= ? AND NOT content_beside THEN"
    " (SELECT data FROM chunks WHERE chunks.content_id = files.content_id AND seq = 0) END"
    " FROM files WHERE id = ? AND expires_at_ns > ?"
)


@dataclasses.dataclass(frozen=True)
class _SqliteBlob:
    """A file's content by its content id (immutable: chunks are written once under a fresh
    id and only ever deleted), read PIECE_BYTES at a time, each read in a snapshot of its own.
    No read transaction stays open between pieces: a stalled reader would otherwise hold back
    every checkpoint, and the WAL would grow as long as it stalled."""

    store: SqliteStore
    record: FileRecord
    content_id: str  # '' for content stored before chunks, in `contents`
    whole: bytes | None = None  # all of it, when read with the record (_OPEN_CONTENT)
    rowids: dict[int, int] = dataclasses.field(default_factory=dict)  # by seq, as found

    def row_bytes(self, seq: int) -> int:
        return min(CHUNK_BYTES, self.record.size - seq * CHUNK_BYTES)

    async def chunks(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        if self.whole is not None:
            if end > start:
                yield self.whole[start:end]
            return
        offset = start
        while offset < end:
            if self.content_id:
                seq, within = divmod(offset, CHUNK_BYTES)
                size = min(end - offset, CHUNK_BYTES - within, PIECE_BYTES)
            else:
                seq, within, size = 0, offset, min(end - offset, PIECE_BYTES)
            read = functools.partial(_read_piece, blob=self, seq=seq, offset=within, size=size)
            yield await self.store._read_here(read)
            offset += size


@dataclasses.dataclass(frozen=True)
class _BesideBlob:
    """A file's content kept beside the database, read PIECE_BYTES at a time on the loop (from
    the page cache, as `_SqliteBlob` reads its pages). The file is opened at the first piece
    and stays readable to the end if it is removed meanwhile."""

    files: ContentFiles
    record: FileRecord
    content_id: str

    async def chunks(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        fd = self.files.open(self.content_id)
        if fd is None:
            raise ContentGone(self.record.id)
        try:
            for offset in range(start, end, PIECE_BYTES):
                size = min(end - offset, PIECE_BYTES)
                data = os.pread(fd, size, offset)
                if len(data) != size:
                    raise ContentGone(self.record.id)
                yield data
        finally:
            os.close(fd)


def _size(content: Content | _Staged) -> int:
    """The bytes a file's own write carries: none when its content was staged ahead."""
    return 0 if isinstance(content, _Staged) else len(content)


def _log_failed_drop(drop: asyncio.Future[None]) -> None:
    if not drop.cancelled() and drop.exception() is not None:
        log.warning("staged content not dropped (purge_expired will): %s", drop.exception())


def _drop_part(file_id: str, number: int) -> Callable[[sqlite3.Connection], None]:
    def drop(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM upload_parts WHERE file_id = ? AND number = ?", (file_id, number))

    return drop


def _drop_staged(
    files: ContentFiles, pin: Pin, content_ids: Iterable[str]
) -> Callable[[sqlite3.Connection], None]:
    """Removes what staging rows name (no file row names it) and then the rows; a content
    file a snapshot's pin keeps stays, with its row, for a later `purge_expired`. Content whose
    staging row is gone is a file's: a write whose caller gave up may have committed it."""

    def drop(conn: sqlite3.Connection) -> None:
        for content_id in content_ids:
            staged = conn.execute("SELECT 1 FROM staging WHERE content_id = ?", (content_id,))
            if staged.fetchone() is not None and files.remove(content_id, pin):
                conn.execute("DELETE FROM chunks WHERE content_id = ?", (content_id,))
                conn.execute("DELETE FROM staging WHERE content_id = ?", (content_id,))

    return drop


def _staged_before(conn: sqlite3.Connection, time_ns: int) -> list[str]:
    """The content ids of staging rows started at or before `time_ns`: a row that went leaves
    one started at 0, a write that died halfway one older than STAGE_TTL_NS."""
    rows = conn.execute("SELECT content_id FROM staging WHERE started_at_ns <= ?", (time_ns,))
    return [content_id for (content_id,) in rows.fetchall()]


_Queued = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", int]
_Outcome = tuple["asyncio.Future[Any]", Any, "BaseException | None"]


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue  # the caller gave up; the write stands or fell all the same
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _enable_wal(conn: sqlite3.Connection, attempts: int = 200) -> None:
    """Switching a new database to WAL can fail as busy without waiting on busy_timeout
    while another process does the same, so a concurrent start retries for a while."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(0.05)


class SqliteStore:
    """Files and their bytes in one SQLite database file."""

    READERS = 4
    CONTENT_WRITERS = 8  # content files written and fsynced at once

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._read_conns_lock = threading.Lock()
        self._queue: list[_Queued] = []  # writes waiting for the next group commit
        self._queue_lock = threading.Lock()
        self._flush_scheduled = False
        self._beside = ContentFiles(content_dir(path))
        self._pin: Pin | None = None
        self._content_writers: ThreadPoolExecutor | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ValueError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////abs/path.db"
            )
        return cls(Path(url[len(prefix) :]))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(self.READERS, thread_name_prefix="sqlite-reader")
        self._content_writers = ThreadPoolExecutor(
            self.CONTENT_WRITERS, thread_name_prefix="sqlite-content"
        )
        self._pin = Pin(self._beside.root)
        await asyncio.get_running_loop().run_in_executor(self._writer, self._open_writer)
        self._loop_conn = self._connect()

    def _open_writer(self) -> None:
        conn = self._write_conn = self._connect()
        _enable_wal(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            for number, statements in pending_migrations(MIGRATIONS, version):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                if number == HASH_VERSION:
                    _backfill_hashes(conn)
                if number == WIRE_VERSION:
                    _backfill_wire(conn)
                if number == ENTRY_VERSION:
                    _as_entries(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def writer_pragmas(self) -> tuple[str, int]:
        """`(journal_mode, synchronous)` of the connection every commit goes through, read on
        its own thread: what makes a write durable once its caller hears back."""
        if self._writer is None:
            raise RuntimeError("store is not open")

        def read() -> tuple[str, int]:
            conn = self._write_conn
            if conn is None:
                raise RuntimeError("store is not open")
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            (synchronous,) = conn.execute("PRAGMA synchronous").fetchone()
            return str(mode), int(synchronous)

        return await asyncio.get_running_loop().run_in_executor(self._writer, read)

    async def close(self) -> None:
        for pool in (self._content_writers, self._writer, self._readers):
            if pool is not None:
                pool.shutdown(wait=True)
        if self._pin is not None:
            self._pin.close()
            self._pin = None
        for conn in [self._write_conn, self._loop_conn, *self._read_conns]:
            if conn is not None:
                conn.close()
        self._write_conn = self._loop_conn = None
        self._read_conns.clear()

    async def _write(self, work: Callable[[sqlite3.Connection], T], size: int = 0) -> T:
        """Runs `work` in the next group commit; returns once that commit is durable.

        `size` (bytes of content written) keeps one group under GROUP_BYTES, so a burst of
        large uploads does not make every write in it wait for all of them.
        """
        future = self._enqueue(work, size)
        started = time.perf_counter()
        try:
            return await future
        finally:
            WRITE_TIMINGS.durable(time.perf_counter() - started)

    def _enqueue(self, work: Callable[[sqlite3.Connection], T], size: int = 0) -> asyncio.Future[T]:
        """Queues `work` at once, behind every write queued before; its future resolves when
        the group commit holding it is durable."""
        if self._writer is None:
            raise RuntimeError("store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._queue_lock:
            self._queue.append((work, future, size))
            start, self._flush_scheduled = not self._flush_scheduled, True
        if start:
            self._writer.submit(self._commit_pending, loop)
        return future

    def _commit_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._queue_lock:
            total = count = 0
            for _, _, size in self._queue:
                if count and total + size > GROUP_BYTES:
                    break
                total, count = total + size, count + 1
            batch, self._queue = self._queue[:count], self._queue[count:]
            self._flush_scheduled = bool(self._queue)
        if self._flush_scheduled and self._writer is not None:
            self._writer.submit(self._commit_pending, loop)  # the rest, after this group
        WRITE_TIMINGS.group(len(batch))
        loop.call_soon_threadsafe(_resolve, self._run_group(batch))

    def _run_group(self, batch: list[_Queued]) -> list[_Outcome]:
        """One transaction for the whole group. Writes rarely fail (validation happens before
        them), so no savepoint is paid for each: if one fails, the group is rolled back and
        each write runs again in a transaction of its own, which isolates the failure."""
        conn = self._write_conn
        try:
            if conn is None:
                raise RuntimeError("store is not open")
            conn.execute("BEGIN IMMEDIATE")
            results = [work(conn) for work, _, _ in batch]
            conn.execute("COMMIT")
        except Exception as e:
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                return [(batch[0][1], None, e)]
            return [outcome for item in batch for outcome in self._run_group([item])]
        return [
            (future, result, None) for (_, future, _), result in zip(batch, results, strict=True)
        ]

    async def _read_here(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """A small read on the event loop's connection: cheaper than a thread hop."""
        if self._loop_conn is None:
            raise RuntimeError("store is not open")
        return work(self._loop_conn)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def on_reader() -> T:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect()
                with self._read_conns_lock:
                    self._read_conns.append(conn)
            return work(conn)

        return await asyncio.get_running_loop().run_in_executor(self._readers, on_reader)

    async def signing_secret(self, make: Callable[[], bytes]) -> bytes:
        def get_or_create(conn: sqlite3.Connection) -> bytes:
            row = conn.execute("SELECT value FROM meta WHERE key = 'signing_secret'").fetchone()
            if row is not None:
                return bytes(row[0])
            secret = make()
            conn.execute("INSERT INTO meta VALUES ('signing_secret', ?)", (secret,))
            return secret

        return await self._write(get_or_create)

    async def create(
        self,
        record: FileRecord,
        content: Content,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord:

        async def write(written: Content | _Staged) -> FileRecord:
            def insert(conn: sqlite3.Connection) -> FileRecord:
                settled = _settle_name(conn, record, naming)
                _insert(conn, settled, written, audit)
                return settled

            return await self._write(insert, size=_size(written))

        return await self._written(content, record.created_at_ns, write)

    async def _written(
        self,
        content: Content,
        now_ns: int,
        write: Callable[[Content | _Staged], Awaitable[R]],
    ) -> R:
        """`write(content)` with the content as the file's own write takes it: itself, as
        chunk rows, when it is small; else beside the database, written ahead under a staging
        row (see files_api.store.beside). Staged content that `write` did not take (it raised,
        was cancelled or returned None) is dropped again; what a crash leaves behind,
        `purge_expired` drops after STAGE_TTL_NS."""
        if len(content) <= BESIDE_BYTES:
            return await write(content)
        if self._content_writers is None:
            raise RuntimeError("store is not open")
        content_id = _new_content_id()
        result: R | None = None
        writing: concurrent.futures.Future[None] | None = None
        try:
            await self._write(
                lambda conn: conn.execute("INSERT INTO staging VALUES (?, ?)", (content_id, now_ns))
            )
            writing = self._content_writers.submit(self._beside.write, content_id, content)
            await asyncio.wrap_future(writing)
            result = await write(_Staged(content_id))
            return result
        finally:
            if result is None:
                # Queued once the file's writer is done with it (a cancelled caller does not
                # stop a thread), not awaited: the caller may be on its way out.
                loop = asyncio.get_running_loop()

                def drop(_: object = None) -> None:
                    self._enqueue(self._drop([content_id])).add_done_callback(_log_failed_drop)

                if writing is None or writing.done():
                    drop()
                else:
                    writing.add_done_callback(lambda _: loop.call_soon_threadsafe(drop))

    def _drop(self, content_ids: Iterable[str]) -> Callable[[sqlite3.Connection], None]:
        if self._pin is None:
            raise RuntimeError("store is not open")
        return _drop_staged(self._beside, self._pin, content_ids)

    def _drop_staged_before(self, time_ns: int) -> Callable[[sqlite3.Connection], None]:
        """Drops what staging rows started by `time_ns` name; run only in a write after the
        one that left them has committed, so no row that names a file is rolled back to."""
        return lambda conn: self._drop(_staged_before(conn, time_ns))(conn)

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        def select(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute(
                "SELECT file_id, time_ns, subject, action, paths, request_id FROM audit"
                " WHERE file_id = ? ORDER BY seq",
                (file_id,),
            ).fetchall()
            return [_audit_event(r) for r in rows]

        return await self._read(select)

    async def audit_page(
        self, file_id: str, limit: int, before: int | None
    ) -> list[tuple[int, AuditEvent]]:
        def select(conn: sqlite3.Connection) -> list[tuple[int, AuditEvent]]:
            rows = conn.execute(
                "SELECT file_id, time_ns, subject, action, paths, request_id, seq FROM audit"
                " WHERE file_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (file_id, END_OF_LOG if before is None else before, limit),
            ).fetchall()
            return [(r[6], _audit_event(r)) for r in rows]

        return await self._read(select)

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        return await self._read_here(lambda conn: _select_live(conn, file_id, now_ns))

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        def read_modify_write(conn: sqlite3.Connection) -> FileRecord | None:
            record = _select_live(conn, file_id, now_ns)
            if record is None:
                return None
            new = _settle_name(conn, change(record), naming)
            _insert_audit(conn, audit(record, new) if audit is not None else None)
            columns, values = LIST_ENTRIES.changes(record, new)
            if columns:
                conn.execute(_update_statement(columns), (*values, file_id))
            return new

        return await self._write(read_modify_write)

    async def names(
        self, folder_id: str, prefix: str, now_ns: int, excluding: str = ""
    ) -> dict[str, str]:
        return await self._read_here(
            lambda conn: _names(conn, folder_id, prefix, now_ns, excluding)
        )

    async def stage(self, upload: Upload) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)", upload_row(upload))

        await self._write(insert)

    async def put_part(
        self,
        file_id: str,
        upload_id: str,
        number: int,
        data: bytes,
        *,
        now_ns: int,
        check: Callable[[int], None],
    ) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            if _pending_upload(conn, file_id, upload_id, now_ns) is None:
                return False
            (others,) = conn.execute(
                "SELECT coalesce(sum(length(data)), 0) FROM upload_parts"
                " WHERE file_id = ? AND number != ?",
                (file_id, number),
            ).fetchone()
            check(others + len(data))
            conn.execute(
                "INSERT OR REPLACE INTO upload_parts VALUES (?, ?, ?)", (file_id, number, data)
            )
            conn.execute("UPDATE uploads SET revision = revision + 1 WHERE file_id = ?", (file_id,))
            return True

        return await self._write(insert, size=len(data))

    async def pending_upload(
        self, file_id: str, upload_id: str, now_ns: int
    ) -> tuple[Upload, list[bytes]] | None:
        def select(conn: sqlite3.Connection) -> tuple[Upload, list[bytes]] | None:
            conn.execute("BEGIN")  # one snapshot for the upload and its parts
            try:
                upload = _pending_upload(conn, file_id, upload_id, now_ns)
                if upload is None:
                    return None
                parts = conn.execute(
                    "SELECT data FROM upload_parts WHERE file_id = ? ORDER BY number", (file_id,)
                )
                return upload, [data for (data,) in parts.fetchall()]
            finally:
                conn.execute("COMMIT")

        return await self._read(select)

    async def finish_upload(
        self,
        upload: Upload,
        record: FileRecord,
        content: bytes,
        *,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        file_id = upload.record.id

        async def write(written: Content | _Staged) -> FileRecord | None:
            def finish(conn: sqlite3.Connection) -> FileRecord | None:
                now = _pending_upload(conn, file_id, upload.upload_id, record.updated_at_ns)
                if now is None or now.revision != upload.revision:
                    return None
                settled = _settle_name(conn, record, naming)
                _insert(conn, settled, written, audit)
                # No longer pending; its parts (as big as the file) go in a write of their own.
                conn.execute("UPDATE uploads SET expires_at_ns = 0 WHERE file_id = ?", (file_id,))
                return settled

            return await self._write(finish, size=_size(written))

        finished = await self._written(content, record.updated_at_ns, write)
        if finished is not None:
            # A part at a time: freeing (and, with secure_delete, zeroing) 128 MiB of pages
            # in one write would hold up every other write as long as writing them did.
            for number in range(1, upload.parts + 1):
                await self._write(_drop_part(file_id, number))
            await self._write(
                lambda conn: conn.execute(
                    "DELETE FROM uploads WHERE file_id = ? AND expires_at_ns = 0", (file_id,)
                )
            )
        return finished

    async def delete(
        self,
        file_id: str,
        now_ns: int,
        check: Callable[[FileRecord], None] | None = None,
        audit: AuditEvent | None = None,
    ) -> bool:
        def delete_live(conn: sqlite3.Connection) -> tuple[bool, str | None]:
            record = _select_live(conn, file_id, now_ns)
            if record is None:
                return False, None
            if check is not None:
                check(record)
            beside = conn.execute(
                "DELETE FROM files WHERE id = ? RETURNING content_id, content_beside", (file_id,)
            ).fetchone()
            _insert_audit(conn, audit)
            return True, beside[0] if beside[1] else None

        deleted, content_id = await self._write(delete_live)
        if content_id is not None:  # the row left a staging row for it: its file goes now
            self._enqueue(self._drop([content_id])).add_done_callback(_log_failed_drop)
        return deleted

    async def list(
        self,
        folder_id: str,
        now_ns: int,
        limit: int,
        after: Cursor | None,
        order: Order = NEWEST_FIRST,
    ) -> list[FileRecord]:
        key, direction = order.key, "DESC" if order.descending else "ASC"
        past = f" AND ({key}, id) {'<' if order.descending else '>'} (?, ?)" if after else ""
        query = (
            f"SELECT {COLUMNS} FROM files WHERE folder_id = ? AND expires_at_ns > ?{past}"
            f" ORDER BY {key} {direction}, id {direction} LIMIT ?"
        )
        parameters = (folder_id, now_ns, *(after or ()), limit)

        def select(conn: sqlite3.Connection) -> list[FileRecord]:
            return [row_record(row) for row in conn.execute(query, parameters).fetchall()]

        return await self._read_here(select)

    async def list_entries(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> Listing:
        past = " AND (created_at_ns, id) < (?, ?)" if after else ""
        # The page in one step, no row built in Python: row by row, a page of 100 took 1.6
        # times as long in process, and each row's step let the gRPC thread take the GIL (18 %
        # fewer Lists/s under load). group_concat joins the rows in the order the subquery
        # gives them; SQLite does so, though its documentation leaves that order open, and
        # tests/test_list_wire.py walks pages of files made at one instant to see it hold.
        # The sizes come as text only for the last one's, which says where the next page starts.
        query = (
            "SELECT CAST(group_concat(entry, '') AS BLOB), group_concat(length(entry))"
            " FROM (SELECT entry FROM files WHERE folder_id = ? AND expires_at_ns > ?"
            f"{past} ORDER BY created_at_ns DESC, id DESC LIMIT ?)"
        )
        parameters = (folder_id, now_ns, *(after or ()), limit)

        def select(conn: sqlite3.Connection) -> Listing:
            joined, sizes = conn.execute(query, parameters).fetchone()
            if joined is None:
                return Listing(b"", 0)
            return Listing(joined, int(sizes.rpartition(",")[2]))

        return await self._read_here(select)

    async def content(self, file_id: str, now_ns: int) -> bytes | None:
        def select(conn: sqlite3.Connection) -> bytes | None:
            conn.execute("BEGIN")  # one snapshot for the file row and its chunks
            try:
                row = conn.execute(
                    "SELECT content_id, content_beside FROM files"
                    " WHERE id = ? AND expires_at_ns > ?",
                    (file_id, now_ns),
                ).fetchone()
                if row is None:
                    return None
                if row[1]:
                    data = self._beside.read(row[0])
                    if data is None:
                        raise ContentGone(file_id)
                    return data
                if row[0] == "":  # stored before content had chunks
                    query, key = "SELECT data FROM contents WHERE file_id = ?", file_id
                else:
                    query, key = "SELECT data FROM chunks WHERE content_id = ? ORDER BY seq", row[0]
                return b"".join(data for (data,) in conn.execute(query, (key,)))
            finally:
                conn.execute("COMMIT")

        return await self._read(select)

    async def open_content(self, file_id: str, now_ns: int) -> _SqliteBlob | _BesideBlob | None:
        def select(conn: sqlite3.Connection) -> _SqliteBlob | _BesideBlob | None:
            row = conn.execute(_OPEN_CONTENT, (PIECE_BYTES, file_id, now_ns)).fetchone()
            if row is None:
                return None
            record, (content_id, beside, whole) = row_record(row[:-3]), row[-3:]
            if beside:
                return _BesideBlob(self._beside, record, content_id)
            return _SqliteBlob(self, record, content_id, None if whole is None else bytes(whole))

        return await self._read_here(select)

    async def clear(self) -> None:
        def clear(conn: sqlite3.Connection) -> None:
            for table in _DATA_TABLES:
                conn.execute(f"DELETE FROM {table}")

        await self._write(clear)
        await self._write(self._drop_staged_before(0))  # the rows' content files (the trigger)

    async def totals(self, now_ns: int) -> tuple[int, int]:
        def count(conn: sqlite3.Connection) -> tuple[int, int]:
            query = "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE expires_at_ns > ?"
            files, size = conn.execute(query, (now_ns,)).fetchone()
            return int(files), int(size)

        return await self._read(count)  # on a reader thread: it walks the whole table

    async def purge_expired(self, now_ns: int) -> int:
        drop_stale = self._drop_staged_before(now_ns - STAGE_TTL_NS)

        def purge(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM uploads WHERE expires_at_ns <= ?", (now_ns,))
            drop_stale(conn)
            return conn.execute("DELETE FROM files WHERE expires_at_ns <= ?", (now_ns,)).rowcount

        purged = await self._write(purge)
        if purged:
            await self._write(self._drop_staged_before(0))  # the rows' content files
        return purged

    @contextlib.asynccontextmanager
    async def snapshot(self, now_ns: int) -> AsyncIterator[_SqliteSnapshot]:
        # A connection of its own in one read transaction: in WAL mode it sees the database as
        # of its first read, whatever the writer commits meanwhile, and holds up no writer.
        # Its reads block the caller's loop: it is for commands, not for a serving loop.
        # The pin first: a content file that the snapshot's rows name stays until it ends.
        pin = Pin(self._beside.root)
        try:
            pin.hold()
            conn = self._connect()
            try:
                conn.execute("BEGIN")
                conn.execute("SELECT count(*) FROM meta").fetchone()  # the snapshot starts here
                yield _SqliteSnapshot(conn, now_ns, self._beside)
            finally:
                conn.close()  # ends the read transaction
        finally:
            pin.close()

    @contextlib.asynccontextmanager
    async def load(self) -> AsyncIterator[_SqliteLoader]:
        # One write transaction on a connection of its own, blocking the caller's loop like a
        # snapshot: a server's writer on the same file waits for it (busy_timeout) or fails.
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("CREATE TEMP TABLE load_blobs (key TEXT, seq INTEGER, data BLOB)")
            conn.execute("CREATE INDEX temp.load_blobs_by_key ON load_blobs (key, seq)")
            yield _SqliteLoader(conn)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()


class _SqliteSnapshot:
    def __init__(self, conn: sqlite3.Connection, now_ns: int, beside: ContentFiles) -> None:
        self.conn = conn
        self.now_ns = now_ns
        self.beside = beside

    async def counts(self) -> Counts:
        files, size = self.conn.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE expires_at_ns > ?",
            (self.now_ns,),
        ).fetchone()
        (audit,) = self.conn.execute("SELECT count(*) FROM audit").fetchone()
        (uploads,) = self.conn.execute(
            "SELECT count(*) FROM uploads WHERE expires_at_ns > ?", (self.now_ns,)
        ).fetchone()
        return Counts(files, size, audit, uploads)

    async def secret(self) -> bytes | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'signing_secret'").fetchone()
        return None if row is None else bytes(row[0])

    async def files(self) -> AsyncIterator[FileRecord]:
        after = ""
        while True:
            rows = self.conn.execute(
                f"SELECT {COLUMNS} FROM files WHERE id > ? AND expires_at_ns > ? ORDER BY id"
                " LIMIT ?",
                (after, self.now_ns, PAGE_ROWS),
            ).fetchall()
            for row in rows:
                yield row_record(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]

    async def content(self, file_id: str) -> bytes:
        content_id, beside = self.conn.execute(
            "SELECT content_id, content_beside FROM files WHERE id = ?", (file_id,)
        ).fetchone()
        if beside:
            data = self.beside.read(content_id)
            if data is None:  # the pin keeps it: only a hand outside the store removes one
                raise ContentGone(file_id)
            return data
        if content_id == "":  # stored before content had chunks
            query, key = "SELECT data FROM contents WHERE file_id = ?", file_id
        else:
            query, key = "SELECT data FROM chunks WHERE content_id = ? ORDER BY seq", content_id
        return b"".join(data for (data,) in self.conn.execute(query, (key,)))

    async def audit(self) -> AsyncIterator[AuditEvent]:
        after = 0
        while True:
            rows = self.conn.execute(
                "SELECT file_id, time_ns, subject, action, paths, request_id, seq FROM audit"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, PAGE_ROWS),
            ).fetchall()
            for row in rows:
                yield _audit_event(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][6]

    async def uploads(self) -> AsyncIterator[tuple[Upload, list[tuple[int, bytes]]]]:
        rows = self.conn.execute(
            "SELECT file_id, upload_id, parts, expires_at_ns, revision, record FROM uploads"
            " WHERE expires_at_ns > ? ORDER BY file_id",
            (self.now_ns,),
        ).fetchall()
        for file_id, upload_id, parts, expires_at_ns, revision, record in rows:
            upload = upload_from_json(record, upload_id, parts, expires_at_ns, revision)
            data = self.conn.execute(
                "SELECT number, data FROM upload_parts WHERE file_id = ? ORDER BY number",
                (file_id,),
            ).fetchall()
            yield upload, [(number, bytes(part)) for number, part in data]


class _SqliteLoader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def is_empty(self) -> bool:
        return not any(
            self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("files", "audit", "uploads")
        )

    async def has_file(self, file_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM files WHERE id = ? UNION ALL SELECT 1 FROM uploads WHERE file_id = ?",
            (file_id, file_id),
        ).fetchone()
        return row is not None

    async def has_secret(self) -> bool:
        row = self.conn.execute("SELECT 1 FROM meta WHERE key = 'signing_secret'").fetchone()
        return row is not None

    async def put_secret(self, secret: bytes) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('signing_secret', ?)", (secret,))

    async def put_blob(self, key: str, chunks: Iterable[bytes]) -> None:
        rows = ((key, seq, chunk) for seq, chunk in enumerate(chunks))
        self.conn.executemany("INSERT INTO load_blobs VALUES (?, ?, ?)", rows)
        if self.conn.execute("SELECT 1 FROM load_blobs WHERE key = ?", (key,)).fetchone() is None:
            # An empty content is one empty chunk, as `_chunk_rows` writes it.
            self.conn.execute("INSERT INTO load_blobs VALUES (?, 0, x'')", (key,))

    async def put_file(self, record: FileRecord, blob: str) -> None:
        content_id = _new_content_id()
        copied = self.conn.execute(
            "INSERT INTO chunks SELECT ?, seq, data FROM load_blobs WHERE key = ? ORDER BY seq",
            (content_id, blob),
        ).rowcount
        if not copied:
            raise KeyError(blob)
        self.conn.execute(
            f"INSERT INTO files ({LIST_ENTRIES.columns}, content_id) VALUES ({_PLACES}, ?)",
            (*LIST_ENTRIES.row(record), content_id),
        )

    async def put_audit(self, event: AuditEvent) -> None:
        _insert_audit(self.conn, event)

    async def put_upload(self, upload: Upload, parts: list[tuple[int, str]]) -> None:
        self.conn.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?)", upload_row(upload))
        for number, blob in parts:
            chunks = self.conn.execute(
                "SELECT data FROM load_blobs WHERE key = ? ORDER BY seq", (blob,)
            ).fetchall()
            if not chunks:
                raise KeyError(blob)
            data = b"".join(chunk for (chunk,) in chunks)
            self.conn.execute(
                "INSERT INTO upload_parts VALUES (?, ?, ?)", (upload.record.id, number, data)
            )
