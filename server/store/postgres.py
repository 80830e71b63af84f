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
not one `bytea` value per file. One value of 128 MiB is encoded whole into asyncpg's buffers
on its way out: measured, a 128 MiB insert peaks at +380 MiB of client memory and takes 3 s,
against +17 MiB and 0.7 s as 1 MiB rows. Large objects would stream too, but nothing owns
them: every delete and every sweep would have to `lo_unlink` in the same transaction or leak
(or rely on the `lo` extension's trigger), and asyncpg has no large-object API, so the bytes
would travel as `bytea` arguments of `lo_put`/`lo_get` anyway. Chunk rows are ordinary rows:
they go with their file by `ON DELETE CASCADE`, in the same transaction, under the same locks,
in every `pg_dump`. Reads go chunk by chunk through a cursor into one buffer of the file's size,
so a download holds one copy of the content and one chunk, not the rows and their join.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import asyncpg

from server.errors import DomainError, Unavailable
from server.store import (
    COLUMNS,
    DESCRIPTION,
    AuditEvent,
    FileRecord,
    audit_row,
    pending_migrations,
    record_row,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from server.store import Cursor, Migration

DEFAULT_POOL_SIZE = 10
CHUNK_BYTES = 1024 * 1024
PURGE_BATCH = 500

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
]

_COLUMNS = COLUMNS

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
    values[3] = bytes(values[3]).decode()
    values[12] = json.loads(values[12])
    return FileRecord(*values)


def _row(record: FileRecord) -> tuple[object, ...]:
    row = record_row(record)
    row[DESCRIPTION] = record.description.encode()  # bytea: text cannot hold U+0000
    return tuple(row)


async def _insert_audit(conn: asyncpg.pool.PoolConnectionProxy, event: AuditEvent | None) -> None:
    if event is not None:
        await conn.execute(
            "INSERT INTO audit (file_id, time_ns, subject, action, paths, request_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            *audit_row(event),
            json.dumps(event.paths),
            event.request_id,
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
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
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
        self, record: FileRecord, content: bytes, audit: AuditEvent | None = None
    ) -> None:
        view = memoryview(content)
        chunks = (
            (record.id, seq, view[start : start + CHUNK_BYTES])
            for seq, start in enumerate(range(0, len(content), CHUNK_BYTES))
        )
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO files ({_COLUMNS}) VALUES"
                f" ({', '.join(f'${i}' for i in range(1, 15))})",
                *_row(record),
            )
            await conn.executemany("INSERT INTO contents VALUES ($1, $2, $3)", chunks)
            await _insert_audit(conn, audit)

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT file_id, time_ns, subject, action, paths, request_id FROM audit"
                " WHERE file_id = $1 ORDER BY seq",
                file_id,
            )
        return [AuditEvent(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5]) for r in rows]

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2",
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
    ) -> FileRecord | None:
        async with self._connection() as conn, conn.transaction():
            # The row lock holds off every other replica's update of this file until commit;
            # an exception from `change` leaves the block and rolls back.
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2 FOR UPDATE",
                file_id,
                now_ns,
            )
            if row is None:
                return None
            old = _record(row)
            new = change(old)
            values = _row(new)
            await conn.execute(
                "UPDATE files SET name = $2, description = $3, mime_type = $4, updated_by = $5,"
                " updated_at_ns = $6, expiration_policy = $7, ttl_days = $8, expires_at_ns = $9,"
                " labels = $10 WHERE id = $1",
                file_id,
                *values[2:5],
                *values[7:13],
            )
            await _insert_audit(conn, audit(old, new) if audit is not None else None)
            return new

    async def delete(
        self,
        file_id: str,
        now_ns: int,
        check: Callable[[FileRecord], None] | None = None,
        audit: AuditEvent | None = None,
    ) -> bool:
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2 FOR UPDATE",
                file_id,
                now_ns,
            )
            if row is None:
                return False
            if check is not None:
                check(_record(row))
            await conn.execute("DELETE FROM files WHERE id = $1", file_id)
            await _insert_audit(conn, audit)
            return True

    async def list(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> list[FileRecord]:
        # Nothing is created at the largest time, so one query serves the first page too.
        created_at_ns, last_id = after if after is not None else (2**63 - 1, "")
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM files WHERE folder_id = $1 AND expires_at_ns > $2"
                " AND (created_at_ns, id) < ($3, $4)"
                " ORDER BY created_at_ns DESC, id DESC LIMIT $5",
                folder_id,
                now_ns,
                created_at_ns,
                last_id,
                limit,
            )
        return [_record(row) for row in rows]

    async def content(self, file_id: str, now_ns: int) -> bytes | bytearray | None:
        """The bytes, gathered chunk by chunk into one buffer of their total size: at most one
        chunk is held besides it, never the rows and their join together."""
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

    async def purge_expired(self, now_ns: int) -> int:
        # FOR UPDATE re-reads each row as committed when it is locked, so a file whose expiry
        # another replica extended in the meantime no longer qualifies; SKIP LOCKED passes over
        # rows another replica is updating or purging right now. In batches, so no sweep holds
        # a long transaction.
        purged = 0
        while True:
            async with self._connection() as conn:
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
