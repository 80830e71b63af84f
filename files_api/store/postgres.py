"""The store for many replicas: every replica points at one PostgreSQL database.

`postgresql://user:password@host:port/database?pool_size=10` selects it. `pool_size` (default
10) caps the connections this replica opens: the pool keeps one open and grows on demand. Every
other query parameter goes to asyncpg as libpq would take it (`sslmode=require`,
`host=/run/postgresql` for a unix socket, ...). A lost connection fails the call that was using
it with UNAVAILABLE; the pool connects afresh for the next call, so a replica outlives a
database restart without being restarted itself.

Times are BIGINT nanoseconds, since `timestamptz` keeps only microseconds. Labels are `jsonb`.
`description` is `bytea` holding UTF-8, because the API lets it hold U+0000, which PostgreSQL
`text` cannot.

Content is `bytea` cut into rows of `CHUNK_BYTES` in a table of its own, not large objects and
not one `bytea` value per file. One value of 128 MiB is encoded whole into asyncpg's buffers on
its way out: a 128 MiB insert peaks at +380 MiB of client memory and takes 3 s, against +17 MiB
and 0.7 s as 1 MiB rows, and reading it back costs +128 MiB besides the result against +4 MiB
(`python -m bench.pg_content URL` measures both; tests/test_postgres.py bounds the rows' figures).
Large objects would stream too, but nothing owns them: every delete and every sweep would have to
`lo_unlink` in the same transaction or leak (or rely on the `lo` extension's trigger), and asyncpg
has no large-object API, so the bytes would travel as `bytea` arguments of `lo_put`/`lo_get`
anyway. Chunk rows are ordinary rows: they go with their file by `ON DELETE CASCADE`, in the same
transaction, under the same locks, in every `pg_dump`. Reads go chunk by chunk through a cursor
into one buffer of the file's size, so a download holds one copy of the content and one chunk, not
the rows and their join.

Update is optimistic: two round trips, where locking the row took five (BEGIN, SELECT ... FOR
UPDATE, UPDATE, INSERT audit, COMMIT). A trigger moves each row's `version` on every UPDATE,
whoever runs it. Update reads the live row and its version without a lock, runs the domain's
`change` in Python, then sends one statement, its own implicit transaction (atomic, durable
once it returns): UPDATE the changed columns WHERE the version is the one read and the file is
still live, and INSERT the audit record from what that UPDATE returned. If any other write came
in between, it writes nothing, and Update reads again: at most UPDATE_TRIES times, then ABORTED.
In one replica, updates of a file that lost a race, and those that come while any is queued,
queue up, and one task writes all the queue holds at a time: it applies their changes in turn,
each to what the one before made, and writes the last with every audit record in one statement
(each caller gets its own change's record, or its own exception). So a hot file costs one
write per queue-full rather than a lost race per update (on one file at 16x8 it outruns one
prepared UPDATE per call, which waits for the row lock and the commit before it); only
replicas race each other, and the first update of a quiet file goes alone. A replica also
remembers the files it last updated as it wrote them (KNOWN_FILES of them): the next update of
one starts from there without reading, one round trip, and reads only when its write finds the
version moved. A `change` that refuses a remembered record (a stale if-match etag, say) is asked
again with the file as read.

Every other write stays safe without knowing of the version:
- Another Update, ours or an older release's, moves the version (the trigger), so whichever
  writes second matches no row. One that waited for the other's row lock re-checks its WHERE
  on the row as committed (READ COMMITTED's re-check), so it too finds the version moved.
- A rename that must stay unique in its folder (`naming`) takes today's path: the folder's
  naming lock and the row locked from read to commit, as older releases do for every Update.
  An optimistic write waits on that lock, then finds the version moved.
- Delete and the sweeper remove the row: a conditional UPDATE after them matches nothing, the
  read again finds nothing, and Update answers NOT_FOUND as if it came after. The sweeper skips
  rows being written (SKIP LOCKED) and re-checks expiry on the committed row, so a file an
  acknowledged Update extended is never swept.
- Create and upload completion insert rows under new ids, and ids are never reused: a file
  deleted and made again cannot pass for the version read. (Only an import into an emptied
  store brings ids back, each at version 0: `clear` forgets what this replica remembered, and
  replicas are not meant to run through an import.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg

from files_api.errors import Aborted, DomainError, Unavailable
from files_api.store import (
    NEWEST_FIRST,
    WRITE_TIMINGS,
    AuditEvent,
    ContentGone,
    Counts,
    FileRecord,
    content_hash,
)
from files_api.store.rows import (
    COLUMNS,
    DESCRIPTION,
    END_OF_LOG,
    FIELDS,
    FILE_BYTES,
    audit_row,
    pending_migrations,
    row_record,
    upload_from_json,
    upload_row,
)
from files_api.store.wire import file_bytes, listing

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence

    from files_api.store import Content, Cursor, Listing, Naming, Order, Upload
    from files_api.store.rows import Migration

DEFAULT_POOL_SIZE = 10
CHUNK_BYTES = 1024 * 1024
PURGE_BATCH = 500
PAGE_ROWS = 500  # snapshots read files and audit records in pages of this many
UPDATE_TRIES = 16  # an Update that loses this many races in a row fails with ABORTED
KNOWN_FILES = 4096  # how many files a replica remembers as it last wrote them
QUEUE_LINGER_S = 0.005  # how long a file's emptied update queue waits for more

# Taken for the whole migration transaction, so replicas starting together queue up and the
# later ones find the schema current. Any bigint would do; this one spells "files".
MIGRATION_LOCK = 0x66696C6573

# Each entry brings the schema from version N to N+1 (a row in schema_version); never edit one
# that has shipped, append a new one. Keep them additive: replicas still on the previous
# release go on running against the new schema during a rolling upgrade.
MIGRATIONS: list[Migration] = [
    (
        "CREATE TABLE meta (key text PRIMARY KEY, value bytea NOT NULL)",
        # COLLATE "C": ids order by code point, as on the other backends, whatever the
        # database's locale.
        """CREATE TABLE files (
            id text COLLATE "C" PRIMARY KEY,
            folder_id text COLLATE "C" NOT NULL,
            name text NOT NULL,
            description bytea NOT NULL,
            mime_type text NOT NULL,
            created_by text NOT NULL,
            created_at_ns bigint NOT NULL,
            updated_by text NOT NULL,
            updated_at_ns bigint NOT NULL,
            expiration_policy integer NOT NULL,
            ttl_days bigint NOT NULL,
            expires_at_ns bigint NOT NULL,
            labels jsonb NOT NULL,
            size bigint NOT NULL
        )""",
        "CREATE INDEX files_by_folder ON files (folder_id, created_at_ns DESC, id DESC)",
        "CREATE INDEX files_by_expiry ON files (expires_at_ns)",
        """CREATE TABLE contents (
            file_id text COLLATE "C" NOT NULL REFERENCES files (id) ON DELETE CASCADE,
            seq integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (file_id, seq)
        )""",
    ),
    (
        # Kept after the file is gone: it is the file's history.
        """CREATE TABLE audit (
            seq bigserial PRIMARY KEY,
            file_id text COLLATE "C" NOT NULL,
            time_ns bigint NOT NULL,
            subject text NOT NULL,
            action text NOT NULL,
            paths jsonb NOT NULL,
            request_id text NOT NULL
        )""",
        "CREATE INDEX audit_by_file ON audit (file_id, seq)",
    ),
    (
        # The PDS face's attributes. Content hashes of older files are filled in by
        # `_backfill_hashes`: PostgreSQL has no built-in SHA-1.
        "ALTER TABLE files ADD COLUMN hidden boolean NOT NULL DEFAULT false",
        "ALTER TABLE files ADD COLUMN starred boolean NOT NULL DEFAULT false",
        "ALTER TABLE files ADD COLUMN local_created_at_ns bigint",
        "ALTER TABLE files ADD COLUMN local_modified_at_ns bigint",
        "ALTER TABLE files ADD COLUMN content_hash text NOT NULL DEFAULT ''",
        "ALTER TABLE files ADD COLUMN pds_labels jsonb NOT NULL DEFAULT '[]'",
        'CREATE INDEX files_by_name ON files (folder_id, name COLLATE "C")',
        """CREATE TABLE uploads (
            file_id text COLLATE "C" PRIMARY KEY,
            upload_id text NOT NULL,
            parts integer NOT NULL,
            expires_at_ns bigint NOT NULL,
            record text NOT NULL
        )""",
        "CREATE INDEX uploads_by_expiry ON uploads (expires_at_ns)",
        """CREATE TABLE upload_parts (
            file_id text COLLATE "C" NOT NULL REFERENCES uploads (file_id) ON DELETE CASCADE,
            number integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (file_id, number)
        )""",
    ),
    (
        # Completion reads the parts outside its write, then checks that none was put since.
        "ALTER TABLE uploads ADD COLUMN revision bigint NOT NULL DEFAULT 0",
    ),
    (
        # Update is optimistic (see the module docstring). The trigger, not the UPDATE, moves
        # the version, so every writer moves it: replicas of the previous release too, whose
        # UPDATE knows nothing of the column. A metadata-only change (PostgreSQL 11+).
        "ALTER TABLE files ADD COLUMN version bigint NOT NULL DEFAULT 0",
        """CREATE FUNCTION files_next_version() RETURNS trigger LANGUAGE plpgsql AS
        $$BEGIN NEW.version := OLD.version + 1; RETURN NEW; END$$""",
        "CREATE TRIGGER files_version BEFORE UPDATE ON files FOR EACH ROW"
        " EXECUTE FUNCTION files_next_version()",
    ),
    (
        # Each row's File as clients see it, kept current by every write (files_api.store.wire):
        # a List page joins these. Files stored before get theirs on the way (`_backfill_wire`).
        "ALTER TABLE files ADD COLUMN wire bytea NOT NULL DEFAULT ''",
    ),
]

HASH_VERSION = 3  # the schema that added content_hash: older files get theirs on the way
WIRE_VERSION = 6  # the schema that added wire

# Names compare as "C" (code point order, like the other backends) whatever the database's
# locale, so a prefix's names lie between it and it followed by the highest code point.
_NAMES = (
    'SELECT name, id FROM files WHERE folder_id = $1 AND name COLLATE "C" >= $2'
    ' AND name COLLATE "C" < $3 AND expires_at_ns > $4 AND id <> $5'
)
# Writes that settle names in one folder take turns (a transaction-scoped lock in a key space
# of its own, "name" and the folder's hash), so two of them cannot both find a name free.
_NAMING_LOCK = "SELECT pg_advisory_xact_lock(1851878757, hashtext($1))"

_PLACES = ", ".join(f"${i}" for i in range(1, len(FIELDS) + 2))  # FILE_BYTES.columns


@functools.lru_cache(maxsize=256)
def _update_statement(columns: tuple[str, ...]) -> str:
    """The UPDATE of just these columns, the file's id as $1."""
    assignments = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=2))
    return f"UPDATE files SET {assignments} WHERE id = $1"


# Update's read: the live row and its version, no lock.
_READ_VERSIONED = f"SELECT version, {COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2"
_AUDIT_ARGS = 5  # time_ns, subject, action, paths, request_id


@functools.lru_cache(maxsize=256)
def _write_if_unmoved(columns: tuple[str, ...], audited: bool) -> str:
    """One statement (one implicit transaction) that writes these columns of file $1 only if it
    is still at version $2 and live at $3, and appends its audit records (the next five
    parameters, arrays of one value per record) only if it wrote; it returns a row only if it
    wrote. With no column to write, it checks the version instead. The column values come last.
    """
    first = 4 + _AUDIT_ARGS * audited
    target = "WHERE id = $1 AND version = $2 AND expires_at_ns > $3"
    if columns:
        sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(columns, start=first))
        written = f"UPDATE files SET {sets} {target} RETURNING id"
    else:
        written = f"SELECT id FROM files {target}"
    if not audited:
        return written
    return (
        f"WITH written AS ({written}) INSERT INTO audit"
        " (file_id, time_ns, subject, action, paths, request_id)"
        " SELECT written.id, e.time_ns, e.subject, e.action, e.paths::jsonb, e.request_id"
        " FROM written, unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])"
        " WITH ORDINALITY AS e (time_ns, subject, action, paths, request_id, n)"
        " ORDER BY e.n RETURNING seq"
    )


_DELETE_IF_UNMOVED = "DELETE FROM files WHERE id = $1 AND version = $2 AND expires_at_ns > $3"
# The same, appending its audit record only if it deleted; both return a row only if it did.
_DELETE_IF_UNMOVED_AUDITED = (
    f"WITH gone AS ({_DELETE_IF_UNMOVED} RETURNING id)"
    " INSERT INTO audit (file_id, time_ns, subject, action, paths, request_id)"
    " SELECT gone.id, $4, $5, $6, $7::jsonb, $8 FROM gone RETURNING seq"
)


# What asyncpg raises when the database is down, restarting or unreachable: the caller gets
# UNAVAILABLE, and the pool replaces the dead connection on the next acquire.
_CONNECTION_LOST = (
    OSError,  # refused, reset, unreachable, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.AdminShutdownError,  # the server is shutting down
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,  # the server is starting up
    asyncpg.TooManyConnectionsError,
)


def _record(row: asyncpg.Record) -> FileRecord:
    values = list(row.values())
    values[DESCRIPTION] = bytes(values[DESCRIPTION]).decode()
    return row_record(values)


def _to_column(name: str, value: object) -> object:
    """A value as this backend stores it: `description` is bytea, as text cannot hold U+0000."""
    return value.encode() if name == "description" and isinstance(value, str) else value


def _row(record: FileRecord) -> tuple[object, ...]:
    """The values of FILE_BYTES.columns."""
    values = FILE_BYTES.row(record)
    values[DESCRIPTION] = _to_column("description", values[DESCRIPTION])
    return tuple(values)


async def _lock_live(
    conn: asyncpg.pool.PoolConnectionProxy, file_id: str, now_ns: int
) -> FileRecord | None:
    """The live record, locked until the transaction ends."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2 FOR UPDATE",
        file_id,
        now_ns,
    )
    return None if row is None else _record(row)


async def _names(
    conn: asyncpg.pool.PoolConnectionProxy, folder_id: str, prefix: str, now_ns: int, excluding: str
) -> dict[str, str]:
    rows = await conn.fetch(_NAMES, folder_id, prefix, prefix + "\U0010ffff", now_ns, excluding)
    return {row[0]: row[1] for row in rows}


async def _settle_name(
    conn: asyncpg.pool.PoolConnectionProxy, record: FileRecord, naming: Naming | None
) -> FileRecord:
    if naming is None:
        return record
    await conn.execute(_NAMING_LOCK, record.folder_id)
    taken = await _names(
        conn, record.folder_id, naming.prefix(record.name), record.updated_at_ns, record.id
    )
    return naming.settle(record, taken)


async def _insert(
    conn: asyncpg.pool.PoolConnectionProxy,
    record: FileRecord,
    content: Content,
    audit: AuditEvent | None,
) -> None:
    view = memoryview(content)
    chunks = (
        (record.id, seq, view[start : start + CHUNK_BYTES])
        for seq, start in enumerate(range(0, len(content), CHUNK_BYTES))
    )
    await conn.execute(
        f"INSERT INTO files ({FILE_BYTES.columns}) VALUES ({_PLACES})", *_row(record)
    )
    await conn.executemany("INSERT INTO contents VALUES ($1, $2, $3)", chunks)
    await _insert_audit(conn, audit)


async def _backfill_hashes(conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """Files stored before content hashes existed get theirs, one file's content at a time."""
    for file_id, size in await conn.fetch(
        "SELECT id, (SELECT coalesce(sum(octet_length(data)), 0) FROM contents"
        " WHERE file_id = files.id) FROM files WHERE content_hash = ''"
    ):
        digest = content_hash(await _gather(conn, file_id, size))
        await conn.execute("UPDATE files SET content_hash = $2 WHERE id = $1", file_id, digest)


async def _backfill_wire(conn: asyncpg.pool.PoolConnectionProxy) -> None:
    """Files stored before the `wire` column get theirs, a page of rows at a time."""
    after = ""
    while rows := await conn.fetch(
        f"SELECT {COLUMNS} FROM files WHERE id > $1 ORDER BY id LIMIT $2", after, PAGE_ROWS
    ):
        records = [_record(row) for row in rows]
        await conn.executemany(
            "UPDATE files SET wire = $2 WHERE id = $1", [(r.id, file_bytes(r)) for r in records]
        )
        after = records[-1].id


async def _gather(conn: asyncpg.pool.PoolConnectionProxy, file_id: str, size: int) -> bytearray:
    """The file's chunks, one at a time through a cursor (in the caller's transaction), into one
    buffer of `size` bytes: never the rows and their join together."""
    buffer = bytearray(size)
    offset = 0
    async for row in conn.cursor(
        "SELECT data FROM contents WHERE file_id = $1 ORDER BY seq", file_id, prefetch=1
    ):
        chunk = row[0]
        buffer[offset : offset + len(chunk)] = chunk
        offset += len(chunk)
    if offset != size:
        raise RuntimeError(f"file {file_id!r} has {offset} bytes of content, not {size}")
    return buffer


# One stored row's bytes in a range, if the file still has the content it was opened with: a
# content hash that matches means the same bytes, whatever happened to the file meanwhile.
_PIECE = (
    "SELECT substring(contents.data FROM $3 FOR $4) FROM contents"
    " JOIN files ON files.id = contents.file_id"
    " WHERE contents.file_id = $1 AND contents.seq = $2 AND files.content_hash = $5"
)


async def _pending_upload(
    conn: asyncpg.pool.PoolConnectionProxy, file_id: str, upload_id: str, now_ns: int
) -> Upload | None:
    row = await conn.fetchrow(
        "SELECT record, parts, expires_at_ns, revision FROM uploads"
        " WHERE file_id = $1 AND upload_id = $2 AND expires_at_ns > $3 FOR UPDATE",
        file_id,
        upload_id,
        now_ns,
    )
    if row is None:
        return None
    return upload_from_json(row[0], upload_id, row[1], row[2], row[3])


class _Moved(Exception):
    """Another writer changed the file between an optimistic update's read and its write."""


Known = tuple[int, FileRecord]
"""A file as this replica last read or wrote it, with its version then."""


async def _read_versioned(
    conn: asyncpg.pool.PoolConnectionProxy, file_id: str, now_ns: int
) -> Known | None:
    row = await conn.fetchrow(_READ_VERSIONED, file_id, now_ns)
    if row is None:
        return None
    values = list(row.values())
    values[1 + DESCRIPTION] = bytes(values[1 + DESCRIPTION]).decode()
    return values[0], row_record(values[1:])


Change = tuple[
    "Callable[[FileRecord], FileRecord]", "Callable[[FileRecord, FileRecord], AuditEvent] | None"
]
"""One Update's `change` and `audit`."""


async def _try_changes(
    conn: asyncpg.pool.PoolConnectionProxy,
    file_id: str,
    now_ns: int,
    changes: Sequence[Change],
    *,
    known: Known | None,
) -> tuple[list[FileRecord | Exception] | None, Known | None]:
    """Applies the changes in Python, each to what the one before made, and writes the result
    with their audit records in one statement, only if the file's version did not move since it
    was read: from `known` in one round trip, else from a read first, in two; no lock held
    between. A change that raises is left out and gets its exception as its outcome.

    Returns each change's outcome (None for a file that is not live) and what is now known of
    the file; raises _Moved when another write came first, or when a change refused a `known`
    record, which may be out of date.
    """
    if known is None:
        known = await _read_versioned(conn, file_id, now_ns)
        if known is None:
            return None, None
        read = True
    else:
        read = False
    version, old = known
    outcomes: list[FileRecord | Exception] = []
    events: list[AuditEvent] = []
    current = old
    for change, audit in changes:
        try:
            new = change(current)
        except Exception as e:
            if not read:
                raise _Moved from e  # refused what may be out of date: read, and ask again
            outcomes.append(e)  # writes nothing of its own
            continue
        if audit is not None:
            events.append(audit(current, new))
        outcomes.append(new)
        current = new
    columns, changed = FILE_BYTES.changes(old, current)
    if not columns and not events and read:
        return outcomes, (version, current)  # nothing to write: the read was the change
    # One array per audit column, a value per event (the file's id comes from the UPDATE).
    rows = (_audit_args(e)[1:] for e in events)
    audit_arrays = [list(column) for column in zip(*rows, strict=True)]
    started = time.perf_counter()
    written = await conn.fetchval(
        _write_if_unmoved(columns, bool(events)),
        file_id,
        version,
        now_ns,
        *audit_arrays,
        *(_to_column(c, v) for c, v in zip(columns, changed, strict=True)),
    )
    if written is None:
        raise _Moved
    WRITE_TIMINGS.durable(time.perf_counter() - started)
    return outcomes, (version + 1 if columns else version, current)  # the trigger moved it


_Queued = tuple[Change, int, "asyncio.Future[FileRecord | None]"]
"""An update waiting in its file's queue: its change, its time, its caller's answer."""


def _outcome(outcomes: list[FileRecord | Exception] | None) -> FileRecord | None:
    if outcomes is None:
        return None
    (outcome,) = outcomes
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _audit_args(event: AuditEvent) -> tuple[object, ...]:
    return (*audit_row(event), json.dumps(event.paths), event.request_id)


def _audit_event(row: asyncpg.Record) -> AuditEvent:
    return AuditEvent(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])), row[5])


async def _insert_audit(conn: asyncpg.pool.PoolConnectionProxy, event: AuditEvent | None) -> None:
    if event is not None:
        await conn.execute(
            "INSERT INTO audit (file_id, time_ns, subject, action, paths, request_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            *_audit_args(event),
        )


class PostgresStore:
    """Files and their bytes in one PostgreSQL database, shared by any number of replicas.

    >>> store = PostgresStore.from_url("postgresql://files:secret@db:5432/files?pool_size=20")
    """

    def __init__(self, dsn: str, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        # Updates of a file in this replica that lost a race, and those that came since: one
        # task writes them, all of the queue at a time (see `update`).
        self._queues: dict[str, list[_Queued]] = {}
        self._drains: set[asyncio.Task[None]] = set()
        # The files this replica last updated, each as it wrote it: the next update of one
        # starts from there, without reading it, and its write checks that it did not move.
        self._known: dict[str, Known] = {}

    @classmethod
    def from_url(cls, url: str) -> PostgresStore:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError(
                f"bad PostgreSQL URL {url!r}: use"
                " postgresql://user:password@host:port/database?pool_size=10"
            )
        # The rest of the query goes to asyncpg exactly as written.
        base, _, query = url.partition("?")
        params = [p for p in query.split("&") if p]
        sizes = [p.partition("=")[2] for p in params if p.partition("=")[0] == "pool_size"]
        if len(sizes) > 1 or not all(s.isdigit() for s in sizes):
            raise ValueError(f"bad PostgreSQL URL {url!r}: pool_size takes one whole number")
        rest = "&".join(p for p in params if p.partition("=")[0] != "pool_size")
        dsn = f"{base}?{rest}" if rest else base
        return cls(dsn, int(sizes[0]) if sizes else DEFAULT_POOL_SIZE)

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, reset=keep_session
            )
            async with self._pool.acquire() as conn:
                await self._migrate(conn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            await self.close()
            # An OSError, so `python -m server` reports it in one line like a refused connect.
            raise ConnectionError(f"cannot open the PostgreSQL store: {e}") from e
        except BaseException:
            await self.close()
            raise

    @staticmethod
    async def _migrate(conn: asyncpg.pool.PoolConnectionProxy) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
            for number, statements in pending_migrations(MIGRATIONS, version):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
                if number == HASH_VERSION:
                    await _backfill_hashes(conn)
                if number == WIRE_VERSION:
                    await _backfill_wire(conn)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection; losing the database on the way becomes `Unavailable`."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("store is not open")
        try:
            async with pool.acquire() as conn:
                try:
                    yield conn
                except asyncpg.InterfaceError as e:
                    # "connection is closed": it died before this call could use it.
                    if _closed(conn):
                        raise _unavailable() from e
                    raise
        except DomainError:
            raise
        except Exception as e:
            if _caused_by_lost_connection(e):
                raise _unavailable() from e
            raise

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A transaction on a pooled connection, timed until its COMMIT returned (durable)."""
        started = time.perf_counter()
        async with self._connection() as conn, conn.transaction():
            yield conn
        WRITE_TIMINGS.durable(time.perf_counter() - started)

    async def signing_secret(self, make: Callable[[], bytes]) -> bytes:
        async with self._connection() as conn:
            select = "SELECT value FROM meta WHERE key = 'signing_secret'"
            secret = await conn.fetchval(select)
            if secret is None:
                # Replicas starting together race here: one insert wins, all read the winner.
                await conn.execute(
                    "INSERT INTO meta VALUES ('signing_secret', $1) ON CONFLICT DO NOTHING", make()
                )
                secret = await conn.fetchval(select)
            return bytes(secret)

    async def create(
        self,
        record: FileRecord,
        content: Content,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord:
        async with self._writing() as conn:
            record = await _settle_name(conn, record, naming)
            await _insert(conn, record, content, audit)
        return record

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT file_id, time_ns, subject, action, paths, request_id FROM audit"
                " WHERE file_id = $1 ORDER BY seq",
                file_id,
            )
        return [_audit_event(r) for r in rows]

    async def audit_page(
        self, file_id: str, limit: int, before: int | None
    ) -> list[tuple[int, AuditEvent]]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT file_id, time_ns, subject, action, paths, request_id, seq FROM audit"
                " WHERE file_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
                file_id,
                END_OF_LOG if before is None else before,
                limit,
            )
        return [(r[6], _audit_event(r)) for r in rows]

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2",
                file_id,
                now_ns,
            )
        return None if row is None else _record(row)

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        if naming is not None:
            return await self._update_locked(file_id, now_ns, change, audit, naming)
        if file_id not in self._queues:  # no update of this file in this replica lost a race
            with contextlib.suppress(_Moved):
                async with self._connection() as conn:
                    outcomes = await self._try(conn, file_id, now_ns, [(change, audit)])
                return _outcome(outcomes)
        # Lost, or came while the file has a queue: it joins the queue, and one write takes all
        # the queue holds (see the module docstring).
        future: asyncio.Future[FileRecord | None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(file_id)
        if queue is None:
            queue = self._queues[file_id] = []
            drain = asyncio.create_task(self._drain(file_id, queue))
            self._drains.add(drain)  # held, or the loop could collect it half-way
            drain.add_done_callback(self._drains.discard)
        queue.append(((change, audit), now_ns, future))
        return await future

    async def _try(
        self,
        conn: asyncpg.pool.PoolConnectionProxy,
        file_id: str,
        now_ns: int,
        changes: Sequence[Change],
    ) -> list[FileRecord | Exception] | None:
        """One try, from what this replica knows of the file when it knows something; what it
        knows afterwards is kept, or forgotten when the try lost its race."""
        known = self._known.pop(file_id, None)
        outcomes, now_known = await _try_changes(conn, file_id, now_ns, changes, known=known)
        if now_known is not None:
            if len(self._known) >= KNOWN_FILES:
                del self._known[next(iter(self._known))]  # the longest known
            self._known[file_id] = now_known
        return outcomes

    async def _drain(self, file_id: str, queue: list[_Queued]) -> None:
        """Writes what the file's queue holds, all of it at a time, until it stays empty for
        QUEUE_LINGER_S: a client that sent several updates of the file at once has most likely
        sent the next ones by then, and they queue rather than race each other afresh."""
        batch: list[_Queued] = []
        try:
            while queue:
                while queue:
                    batch = queue[:]
                    del queue[:]
                    await self._write_queued(file_id, batch)
                await asyncio.sleep(QUEUE_LINGER_S)
        finally:
            del self._queues[file_id]
            for _, _, future in [*batch, *queue]:
                future.cancel()  # a no-op unless this task itself was cancelled half-way

    async def _write_queued(self, file_id: str, batch: list[_Queued]) -> None:
        # Live at the latest of their times is live at each of them.
        now_ns = max(now for _, now, _ in batch)
        try:
            async with self._connection() as conn:
                for _ in range(UPDATE_TRIES - 1):  # the first to queue lost once already
                    with contextlib.suppress(_Moved):
                        outcomes = await self._try(conn, file_id, now_ns, [c for c, _, _ in batch])
                        break
                else:
                    raise Aborted(
                        f"file {file_id!r} was changed by other writers {UPDATE_TRIES} times"
                        " while this update was being made; try again"
                    )
        except Exception as e:
            outcomes = [e] * len(batch)
        answers: Sequence[FileRecord | Exception | None] = outcomes or [None] * len(batch)
        for (_, _, future), outcome in zip(batch, answers, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def _update_locked(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None,
        naming: Naming,
    ) -> FileRecord | None:
        """A rename that must stay unique in its folder: the folder's naming lock and the row
        lock held from the read to the commit, as names of other files are part of the rule."""
        self._known.pop(file_id, None)  # its version is about to move
        async with self._writing() as conn:
            # The row lock holds off every other writer of this file until commit; an
            # exception from `change` leaves the block and rolls back.
            old = await _lock_live(conn, file_id, now_ns)
            if old is None:
                return None
            new = await _settle_name(conn, change(old), naming)
            columns, values = FILE_BYTES.changes(old, new)
            if columns:
                values = [_to_column(c, v) for c, v in zip(columns, values, strict=True)]
                await conn.execute(_update_statement(columns), file_id, *values)
            await _insert_audit(conn, audit(old, new) if audit is not None else None)
            return new

    async def names(
        self, folder_id: str, prefix: str, now_ns: int, excluding: str = ""
    ) -> dict[str, str]:
        async with self._connection() as conn:
            return await _names(conn, folder_id, prefix, now_ns, excluding)

    async def stage(self, upload: Upload) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO uploads VALUES ($1, $2, $3, $4, $5, $6)", *upload_row(upload)
            )

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
        async with self._writing() as conn:
            if await _pending_upload(conn, file_id, upload_id, now_ns) is None:
                return False
            others = await conn.fetchval(
                "SELECT coalesce(sum(octet_length(data)), 0) FROM upload_parts"
                " WHERE file_id = $1 AND number <> $2",
                file_id,
                number,
            )
            check(others + len(data))
            await conn.execute(
                "INSERT INTO upload_parts VALUES ($1, $2, $3)"
                " ON CONFLICT (file_id, number) DO UPDATE SET data = excluded.data",
                file_id,
                number,
                data,
            )
            await conn.execute(
                "UPDATE uploads SET revision = revision + 1 WHERE file_id = $1", file_id
            )
            return True

    async def pending_upload(
        self, file_id: str, upload_id: str, now_ns: int
    ) -> tuple[Upload, list[bytes]] | None:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await conn.fetchrow(
                "SELECT record, parts, expires_at_ns, revision FROM uploads"
                " WHERE file_id = $1 AND upload_id = $2 AND expires_at_ns > $3",
                file_id,
                upload_id,
                now_ns,
            )
            if row is None:
                return None
            upload = upload_from_json(row[0], upload_id, row[1], row[2], row[3])
            parts = await conn.fetch(
                "SELECT data FROM upload_parts WHERE file_id = $1 ORDER BY number", file_id
            )
            return upload, [part[0] for part in parts]

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
        async with self._writing() as conn:
            now = await _pending_upload(conn, file_id, upload.upload_id, record.updated_at_ns)
            if now is None or now.revision != upload.revision:
                return None
            settled = await _settle_name(conn, record, naming)
            await _insert(conn, settled, content, audit)
            await conn.execute("DELETE FROM uploads WHERE file_id = $1", file_id)
            return settled

    async def delete(
        self,
        file_id: str,
        now_ns: int,
        check: Callable[[FileRecord], None] | None = None,
        audit: AuditEvent | None = None,
    ) -> bool:
        """Optimistic, as Update is: the row is read without a lock (or taken from what this
        replica knows of it), checked in Python, and deleted with its audit record in one
        statement only if its version has not moved meanwhile; else read and checked again,
        up to UPDATE_TRIES times, then ABORTED."""
        known = self._known.pop(file_id, None)
        read = known is None
        async with self._connection() as conn:
            for _ in range(UPDATE_TRIES):
                if read:
                    known = await _read_versioned(conn, file_id, now_ns)
                    if known is None:
                        return False
                assert known is not None
                version, record = known
                if check is not None:
                    try:
                        check(record)
                    except Exception:
                        if read:
                            raise
                        read = True  # refused what may be out of date: read, and ask again
                        continue
                if audit is None:
                    gone = await conn.fetchrow(
                        f"{_DELETE_IF_UNMOVED} RETURNING id", file_id, version, now_ns
                    )
                else:
                    gone = await conn.fetchrow(
                        _DELETE_IF_UNMOVED_AUDITED,
                        file_id,
                        version,
                        now_ns,
                        *_audit_args(audit)[1:],
                    )
                if gone is not None:
                    return True
                read = True
        raise Aborted(
            f"file {file_id!r} was changed by other writers {UPDATE_TRIES} times while this"
            " delete was being made; try again"
        )

    async def list(
        self,
        folder_id: str,
        now_ns: int,
        limit: int,
        after: Cursor | None,
        order: Order = NEWEST_FIRST,
    ) -> list[FileRecord]:
        # Names sort as "C", by code point, as on the other backends.
        key = 'name COLLATE "C"' if order.key == "name" else order.key
        direction = "DESC" if order.descending else "ASC"
        past = f" AND ({key}, id) {'<' if order.descending else '>'} ($4, $5)" if after else ""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {COLUMNS} FROM files WHERE folder_id = $1 AND expires_at_ns > $2{past}"
                f" ORDER BY {key} {direction}, id {direction} LIMIT $3",
                folder_id,
                now_ns,
                limit,
                *(after or ()),
            )
        return [_record(row) for row in rows]

    async def list_entries(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> Listing:
        past = " AND (created_at_ns, id) < ($4, $5)" if after else ""
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT wire FROM files WHERE folder_id = $1 AND expires_at_ns > $2{past}"
                " ORDER BY created_at_ns DESC, id DESC LIMIT $3",
                folder_id,
                now_ns,
                limit,
                *(after or ()),
            )
        return listing([row[0] for row in rows])

    async def content(self, file_id: str, now_ns: int) -> bytes | bytearray | None:
        async with self._connection() as conn, conn.transaction(isolation="repeatable_read"):
            # One snapshot for the size and every chunk: a delete halfway cannot tear them.
            size = await conn.fetchval(
                "SELECT coalesce(sum(octet_length(contents.data)), 0) FROM files"
                " LEFT JOIN contents ON contents.file_id = files.id"
                " WHERE files.id = $1 AND files.expires_at_ns > $2 GROUP BY files.id",
                file_id,
                now_ns,
            )
            if size is None:
                return None
            return await _gather(conn, file_id, size)

    async def open_content(self, file_id: str, now_ns: int) -> _PostgresBlob | None:
        record = await self.get(file_id, now_ns)
        return None if record is None else _PostgresBlob(self, record)

    async def clear(self) -> None:
        async with self._connection() as conn:
            await conn.execute("TRUNCATE upload_parts, uploads, audit, contents, files")
        self._known.clear()  # an import may bring the same ids back, from version 0

    async def totals(self, now_ns: int) -> tuple[int, int]:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE expires_at_ns > $1",
                now_ns,
            )
        assert row is not None
        return int(row[0]), int(row[1])

    async def purge_expired(self, now_ns: int) -> int:
        # FOR UPDATE re-reads each row as committed when it is locked, so a file whose expiry
        # another replica extended in the meantime no longer qualifies; SKIP LOCKED passes over
        # rows another replica is updating or purging right now. In batches, so no sweep holds
        # a long transaction.
        purged = 0
        while True:
            async with self._connection() as conn:
                if not purged:
                    await conn.execute("DELETE FROM uploads WHERE expires_at_ns <= $1", now_ns)
                status = await conn.execute(
                    "DELETE FROM files WHERE id IN (SELECT id FROM files WHERE expires_at_ns <= $1"
                    " LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    now_ns,
                    PURGE_BATCH,
                )
            count = int(status.split()[-1])
            purged += count
            if count < PURGE_BATCH:
                return purged

    @contextlib.asynccontextmanager
    async def snapshot(self, now_ns: int) -> AsyncIterator[_PostgresSnapshot]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield _PostgresSnapshot(conn, now_ns)

    @contextlib.asynccontextmanager
    async def load(self) -> AsyncIterator[_PostgresLoader]:
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE load_blobs (key text, seq integer, data bytea,"
                " PRIMARY KEY (key, seq)) ON COMMIT DROP"
            )
            yield _PostgresLoader(conn)


class _PostgresBlob:
    """A file's content read a stored row at a time (`substring` for the ends of a range),
    each row in a statement of its own on a connection taken from the pool for just that
    statement. Not one snapshot for the whole download: a client that stops reading would hold
    a pooled connection (and a transaction that holds back vacuum) for as long as it stalled,
    and ten of them would take the pool. Each statement checks the file still has the content
    hash it was opened with, so every piece is of one content or the read ends (ContentGone).
    """

    def __init__(self, store: PostgresStore, record: FileRecord) -> None:
        self.store = store
        self.record = record

    async def chunks(self, start: int, end: int) -> AsyncGenerator[bytes, None]:
        record = self.record
        offset = start
        while offset < end:
            seq, within = divmod(offset, CHUNK_BYTES)
            size = min(end - offset, CHUNK_BYTES - within)
            async with self.store._connection() as conn:
                data = await conn.fetchval(
                    _PIECE, record.id, seq, within + 1, size, record.content_hash
                )
            if data is None or len(data) != size:
                raise ContentGone(record.id)
            yield data
            offset += size


class _PostgresSnapshot:
    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy, now_ns: int) -> None:
        self.conn = conn
        self.now_ns = now_ns

    async def counts(self) -> Counts:
        row = await self.conn.fetchrow(
            "SELECT count(*), coalesce(sum(size), 0) FROM files WHERE expires_at_ns > $1",
            self.now_ns,
        )
        assert row is not None  # an aggregate always has its row
        files, size = row
        audit = await self.conn.fetchval("SELECT count(*) FROM audit")
        uploads = await self.conn.fetchval(
            "SELECT count(*) FROM uploads WHERE expires_at_ns > $1", self.now_ns
        )
        return Counts(files, int(size), audit, uploads)

    async def secret(self) -> bytes | None:
        secret = await self.conn.fetchval("SELECT value FROM meta WHERE key = 'signing_secret'")
        return None if secret is None else bytes(secret)

    async def files(self) -> AsyncIterator[FileRecord]:
        after = ""
        while True:
            rows = await self.conn.fetch(
                f"SELECT {COLUMNS} FROM files WHERE id > $1 AND expires_at_ns > $2 ORDER BY id"
                " LIMIT $3",
                after,
                self.now_ns,
                PAGE_ROWS,
            )
            for row in rows:
                yield _record(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][0]

    async def content(self, file_id: str) -> bytearray:
        size = await self.conn.fetchval(
            "SELECT coalesce(sum(octet_length(data)), 0) FROM contents WHERE file_id = $1", file_id
        )
        return await _gather(self.conn, file_id, size)

    async def audit(self) -> AsyncIterator[AuditEvent]:
        after = 0
        while True:
            rows = await self.conn.fetch(
                "SELECT file_id, time_ns, subject, action, paths, request_id, seq FROM audit"
                " WHERE seq > $1 ORDER BY seq LIMIT $2",
                after,
                PAGE_ROWS,
            )
            for row in rows:
                yield _audit_event(row)
            if len(rows) < PAGE_ROWS:
                return
            after = rows[-1][6]

    async def uploads(self) -> AsyncIterator[tuple[Upload, list[tuple[int, bytes]]]]:
        rows = await self.conn.fetch(
            "SELECT file_id, upload_id, parts, expires_at_ns, revision, record FROM uploads"
            " WHERE expires_at_ns > $1 ORDER BY file_id",
            self.now_ns,
        )
        for file_id, upload_id, parts, expires_at_ns, revision, record in rows:
            upload = upload_from_json(record, upload_id, parts, expires_at_ns, revision)
            data = await self.conn.fetch(
                "SELECT number, data FROM upload_parts WHERE file_id = $1 ORDER BY number",
                file_id,
            )
            yield upload, [(number, bytes(part)) for number, part in data]


class _PostgresLoader:
    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        self.conn = conn

    async def is_empty(self) -> bool:
        return not await self.conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM files) OR EXISTS (SELECT 1 FROM audit)"
            " OR EXISTS (SELECT 1 FROM uploads)"
        )

    async def has_file(self, file_id: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT 1 FROM files WHERE id = $1 UNION ALL SELECT 1 FROM uploads"
                " WHERE file_id = $1",
                file_id,
            )
        )

    async def has_secret(self) -> bool:
        return bool(await self.conn.fetchval("SELECT 1 FROM meta WHERE key = 'signing_secret'"))

    async def put_secret(self, secret: bytes) -> None:
        await self.conn.execute(
            "INSERT INTO meta VALUES ('signing_secret', $1)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            secret,
        )

    async def put_blob(self, key: str, chunks: Iterable[bytes]) -> None:
        # Row by row: executemany would take the whole iterable (the whole content) at once.
        for seq, chunk in enumerate(chunks):
            await self.conn.execute("INSERT INTO load_blobs VALUES ($1, $2, $3)", key, seq, chunk)
        await self.conn.execute(
            "INSERT INTO load_blobs VALUES ($1, -1, '') ON CONFLICT DO NOTHING", key
        )  # a marker: the blob exists, even when it has no bytes

    async def put_file(self, record: FileRecord, blob: str) -> None:
        await self.conn.execute(
            f"INSERT INTO files ({FILE_BYTES.columns}) VALUES ({_PLACES})", *_row(record)
        )
        status = await self.conn.execute(
            "INSERT INTO contents SELECT $1, seq, data FROM load_blobs"
            " WHERE key = $2 AND seq >= 0 AND octet_length(data) > 0",
            record.id,
            blob,
        )
        if status == "INSERT 0 0" and not await self._exists(blob):
            raise KeyError(blob)

    async def _exists(self, blob: str) -> bool:
        return bool(
            await self.conn.fetchval("SELECT 1 FROM load_blobs WHERE key = $1 AND seq = -1", blob)
        )

    async def put_audit(self, event: AuditEvent) -> None:
        await _insert_audit(self.conn, event)

    async def put_upload(self, upload: Upload, parts: list[tuple[int, str]]) -> None:
        await self.conn.execute(
            "INSERT INTO uploads VALUES ($1, $2, $3, $4, $5, $6)", *upload_row(upload)
        )
        for number, blob in parts:
            if not await self._exists(blob):
                raise KeyError(blob)
            await self.conn.execute(
                "INSERT INTO upload_parts SELECT $1, $2, coalesce(string_agg(data, ''::bytea"
                " ORDER BY seq), ''::bytea) FROM load_blobs WHERE key = $3 AND seq >= 0",
                upload.record.id,
                number,
                blob,
            )


async def keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back, besides rolling back a transaction left
    open (which it always does): nothing. By default it sends `SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL;`, one more round trip after every call, to undo session
    state this store never makes: it runs no SET, no LISTEN, takes advisory locks only for a
    transaction, and opens cursors only inside one."""


def _closed(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True  # released while still ours: only a connection that closes does that


def _caused_by_lost_connection(error: BaseException) -> bool:
    """Whether `error` is a lost connection, or arose from one (as a failed ROLLBACK does)."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        if isinstance(seen, _CONNECTION_LOST):
            return True
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return False


def _unavailable() -> Unavailable:
    return Unavailable("the database is unavailable; try again later")
