"""The floor: a bare grpc.aio FileService that answers with constants and does nothing else.

It has our server's gRPC options and our generated servicer base, so what separates the two in a
benchmark is our work (domain rules, SQLite, building responses), not the gRPC stack.

    python -m bench.floor [--listen H:P]
        [--sqlite PATH | --postgres URL | --durable-uploads DIR | --recorded-uploads DIR]

prints `floor serving gRPC on HOST:PORT` on stdout once it accepts calls; SIGTERM stops it.
With `--sqlite`, it is the SQLite floor: the same, plus the least SQLite work a durable server
does per Get and Update (`SqliteFloorServicer`); with `--postgres`, the PostgreSQL floor, the
same through asyncpg (`PostgresFloorServicer`). With `--durable-uploads`, it is the
durable-upload floor: each Create's content is fsynced to a file before the answer
(`DurableUploadFloorServicer`); with `--recorded-uploads`, the recorded-upload floor: that,
plus the content's SHA-1 and a row committed for it (`RecordedUploadFloorServicer`).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import (
    file_pb2,
    file_service_pb2,
    file_service_pb2_grpc,
)

from bench.seed import INSERT_FILE, migrate, seed, seed_records
from bench.stopping import until_stopped
from bench.workload import constant_file, constant_page
from files_api.app import MAX_MESSAGE_BYTES
from files_api.store import content_hash
from files_api.store.beside import write_durably
from files_api.store.rows import COLUMNS, FIELDS, LIST_ENTRIES, record_row

_FILE = constant_file()
_PAGE = constant_page()
_URL = file_service_pb2.GetFileUrlResponse(url="http://127.0.0.1/files/v1/files/f/content")
_DELETED = file_service_pb2.DeleteFileResponse()


class FloorServicer(file_service_pb2_grpc.FileServiceServicer):
    """Every method answers one prebuilt message, whatever it is asked."""

    async def Create(
        self, request: file_service_pb2.CreateFileRequest, context: Any
    ) -> file_pb2.File:
        return _FILE

    async def Get(self, request: file_service_pb2.GetFileRequest, context: Any) -> file_pb2.File:
        return _FILE

    async def Update(
        self, request: file_service_pb2.UpdateFileRequest, context: Any
    ) -> file_pb2.File:
        return _FILE

    async def GetUrl(
        self, request: file_service_pb2.GetFileUrlRequest, context: Any
    ) -> file_service_pb2.GetFileUrlResponse:
        return _URL

    async def Delete(
        self, request: file_service_pb2.DeleteFileRequest, context: Any
    ) -> file_service_pb2.DeleteFileResponse:
        return _DELETED

    async def List(
        self, request: file_service_pb2.ListFilesRequest, context: Any
    ) -> file_service_pb2.ListFilesResponse:
        return _PAGE


# What an Update of name and description writes, as ours writes it (only the changed columns).
_UPDATE = "UPDATE files SET name = ?, description = ?, updated_at_ns = ? WHERE id = ?"
_SELECT = "SELECT * FROM files WHERE id = ? AND expires_at_ns > ?"
SQLITE_FLOOR_FILES = 1000


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.cancelled():
            future.set_result(None)


class GroupCommit:
    """One writer thread on a connection of its own (WAL, `synchronous=FULL`), as ours writes:
    whatever statements queued up during one commit go into the next, one fsync for them all,
    and each caller is answered once its statement is durable."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self._pending: list[tuple[str, tuple[object, ...], asyncio.Future[None]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        threading.Thread(target=self._write_forever, args=(loop,), daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def write(self, sql: str, values: tuple[object, ...]) -> None:
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append((sql, values, future))
        self._wake.set()
        await future

    def _write_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                return
            with self._lock:
                batch, self._pending = self._pending, []
                self._wake.clear()
            self.conn.execute("BEGIN IMMEDIATE")
            for sql, values, _ in batch:
                self.conn.execute(sql, values)
            self.conn.execute("COMMIT")
            loop.call_soon_threadsafe(_settle, [future for _, _, future in batch])


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class SqliteFloorServicer(FloorServicer):
    """The floor plus the least SQLite work a durable server does, on our own schema and a store
    of 1,000 files (`main` seeds it). Get reads one row on the loop's own connection. Update
    writes one row in a group commit (WAL, `synchronous=FULL`, one writer thread) and answers
    once that is durable. No rules, no audit, no File built from the row. So floor → SQLite
    floor is what SQLite costs on this machine, and SQLite floor → ours is our own Python."""

    def __init__(self, path: Path) -> None:
        self._reader = connect(path)
        self.commits = GroupCommit(path)
        (self._row_id,) = self._reader.execute("SELECT id FROM files LIMIT 1").fetchone()

    async def Get(self, request: file_service_pb2.GetFileRequest, context: Any) -> file_pb2.File:
        self._reader.execute(_SELECT, (self._row_id, time.time_ns())).fetchone()
        return _FILE

    async def Update(
        self, request: file_service_pb2.UpdateFileRequest, context: Any
    ) -> file_pb2.File:
        values = (request.name, request.description, time.time_ns(), self._row_id)
        await self.commits.write(_UPDATE, values)
        return _FILE


class DurableUploadFloorServicer(FloorServicer):
    """The floor plus the least a server does to make an upload durable before it answers:
    Create writes the request's content to a new file (on a thread, as ours writes off the
    loop), fsyncs it and the directory, and answers. No id, no hash, no type sniffing, no
    database.

    It keeps every file, as a store does. An earlier version kept only the last 64 and
    unlinked the rest; on a VM whose free pages go back to the host (free page reporting), a
    write into pages just freed costs a fraction of one into fresh pages, so that version
    measured the page cache recycling its pages, at 1.7 times the rate of this one."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._count = 0

    def _write(self, number: int, content: bytes) -> str:
        path = self._directory / f"{number}.bin"
        path.unlink(missing_ok=True)  # from an earlier run in the same directory
        write_durably(path, content)  # what our SQLite store does with big content
        return path.name

    async def Create(
        self, request: file_service_pb2.CreateFileRequest, context: Any
    ) -> file_pb2.File:
        self._count += 1
        await asyncio.to_thread(self._write, self._count, request.content)
        return _FILE


RECORDS = "records.db"  # the recorded-upload floor's store, in its directory


class RecordedUploadFloorServicer(DurableUploadFloorServicer):
    """The durable-upload floor plus the least a server does to keep a record of each upload,
    as our SQLite store keeps it: the content's SHA-1 (on the same thread as the write), then
    one row on our schema in a group commit once the content is durable (`GroupCommit`). No
    rules, no type sniffing, no audit, no staging row. So the durable-upload floor → this floor
    is what recording an upload costs here; this floor → ours is our own work."""

    def __init__(self, directory: Path) -> None:
        """`directory / RECORDS` must hold our schema (`migrate`)."""
        super().__init__(directory)
        self.commits = GroupCommit(directory / RECORDS)
        (self._record,) = seed_records(1, "recorded-upload-floor", time.time_ns())

    def _write_and_hash(self, number: int, content: bytes) -> tuple[str, str]:
        return self._write(number, content), content_hash(content)

    async def Create(
        self, request: file_service_pb2.CreateFileRequest, context: Any
    ) -> file_pb2.File:
        self._count += 1
        content = request.content
        name, digest = await asyncio.to_thread(self._write_and_hash, self._count, content)
        now = time.time_ns()
        record = self._record._replace(
            id=f"{now:x}{name}", size=len(content), content_hash=digest, created_at_ns=now
        )
        await self.commits.write(INSERT_FILE, tuple(LIST_ENTRIES.row(record)))
        return _FILE


POSTGRES_FLOOR_FILE_ID = "f"  # the file the PostgreSQL floor makes for itself
_PG_SELECT = f"SELECT {COLUMNS} FROM files WHERE id = $1 AND expires_at_ns > $2"
_PG_UPDATE = (
    "UPDATE files SET name = $2, description = $3, updated_at_ns = $4 WHERE id = $1"
    f" RETURNING {COLUMNS}"
)


class PostgresFloorServicer(FloorServicer):
    """The floor plus the least PostgreSQL work a durable server does, through asyncpg with a
    pool of our size and kind (10, growing from one, no reset query), on our own schema
    (migrated by our store): Get reads the row the request names with one prepared SELECT;
    Update writes name, description and update time of that row with one prepared UPDATE ...
    RETURNING the row, in autocommit, and answers once it returned (committed, durable on a
    durable cluster). No rules, no audit, no version check, no File built from the row. It acts
    on the file the request names: the bench gives it ours, made through our server on the same
    database, and it makes `POSTGRES_FLOOR_FILE_ID` for a run of its own. So floor → PostgreSQL
    floor is what PostgreSQL costs here, and PostgreSQL floor → ours is our Python and our round
    trips."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: Any = None

    async def start(self) -> None:
        import asyncpg  # noqa: PLC0415 (only with --postgres)

        from files_api.store.postgres import (  # noqa: PLC0415
            DEFAULT_POOL_SIZE,
            PostgresStore,
            keep_session,
        )

        store = PostgresStore.from_url(self._url)
        await store.open()  # our schema, migrated
        await store.close()
        # As ours: no reset round trip when a connection goes back to the pool.
        self._pool = await asyncpg.create_pool(
            store.dsn, min_size=1, max_size=DEFAULT_POOL_SIZE, reset=keep_session
        )
        (record,) = seed_records(1, "postgres-floor", time.time_ns())
        row = record_row(record._replace(id=POSTGRES_FLOOR_FILE_ID))
        row[FIELDS.index("description")] = str(row[FIELDS.index("description")]).encode()
        places = ", ".join(f"${i}" for i in range(1, len(FIELDS) + 1))
        await self._pool.execute(
            f"INSERT INTO files ({COLUMNS}) VALUES ({places}) ON CONFLICT DO NOTHING", *row
        )

    async def stop(self) -> None:
        await self._pool.close()

    async def Get(self, request: file_service_pb2.GetFileRequest, context: Any) -> file_pb2.File:
        await self._pool.fetchrow(_PG_SELECT, request.file_id, time.time_ns())
        return _FILE

    async def Update(
        self, request: file_service_pb2.UpdateFileRequest, context: Any
    ) -> file_pb2.File:
        await self._pool.fetchrow(
            _PG_UPDATE,
            request.file_id,
            request.name,
            request.description.encode(),
            time.time_ns(),
        )
        return _FILE


async def serve(
    listen: str,
    sqlite_path: Path | None = None,
    postgres_url: str | None = None,
    uploads_dir: Path | None = None,
    recorded_dir: Path | None = None,
) -> None:
    # The same options as files_api.app.Server.start(), nothing else.
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    servicer = FloorServicer()
    commits = None
    if sqlite_path is not None:
        servicer = sqlite_servicer = SqliteFloorServicer(sqlite_path)
        commits = sqlite_servicer.commits
    if uploads_dir is not None:
        servicer = DurableUploadFloorServicer(uploads_dir)
    if recorded_dir is not None:
        servicer = recorded = RecordedUploadFloorServicer(recorded_dir)
        commits = recorded.commits
    if commits is not None:
        commits.start(asyncio.get_running_loop())
    postgres = None
    if postgres_url is not None:
        servicer = postgres = PostgresFloorServicer(postgres_url)
        await postgres.start()
    file_service_pb2_grpc.add_FileServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(listen)
    await server.start()
    host = listen.rpartition(":")[0]
    print(f"floor serving gRPC on {host}:{port}", flush=True)
    await until_stopped()
    await server.stop(1)
    if commits is not None:
        commits.stop()
    if postgres is not None:
        await postgres.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--sqlite", type=Path, metavar="PATH", help="be the SQLite floor, on a new store at PATH"
    )
    group.add_argument(
        "--postgres",
        metavar="URL",
        help="be the PostgreSQL floor, on this database (migrated to our schema)",
    )
    group.add_argument(
        "--durable-uploads",
        type=Path,
        metavar="DIR",
        help="be the durable-upload floor: each Create's content fsynced to a file in DIR",
    )
    group.add_argument(
        "--recorded-uploads",
        type=Path,
        metavar="DIR",
        help="be the recorded-upload floor: the durable-upload floor in DIR, plus each"
        " content's SHA-1 and a row for it committed to a SQLite store in DIR",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.sqlite is not None:
        seed(args.sqlite, SQLITE_FLOOR_FILES, "sqlite-floor")
    if args.recorded_uploads is not None:
        args.recorded_uploads.mkdir(parents=True, exist_ok=True)
        migrate(args.recorded_uploads / RECORDS)
    asyncio.run(
        serve(args.listen, args.sqlite, args.postgres, args.durable_uploads, args.recorded_uploads)
    )


if __name__ == "__main__":
    main()
