"""The storage interface every backend implements, and the URL that picks a backend.

Backends keep records and bytes and make each change atomic; every rule about what a change
means (masks, defaults, validation, expiry arithmetic) lives in `files_api.domain`, never here.
A record whose `expires_at_ns` is at or before the `now_ns` a method is given counts as absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
    from contextlib import AbstractAsyncContextManager


def _ignore(_: float) -> None:
    pass


@dataclasses.dataclass
class WriteTimings:
    """Where the SQL backends report their writes: seconds until a write was durable, and (on
    SQLite) how many writes one group commit made durable. No-ops until files_api.metrics sets
    them, so a store used without metrics pays two clock reads per write."""

    durable: Callable[[float], None] = _ignore
    group: Callable[[float], None] = _ignore


WRITE_TIMINGS = WriteTimings()


class FileRecord(NamedTuple):
    """One file's metadata as stored: times are integer nanoseconds since the epoch.

    A named tuple rather than a frozen dataclass: as immutable, but made ten times faster
    (0.4 against 4.2 us; a frozen dataclass sets each of its 20 fields through
    `object.__setattr__`), and a List page makes a hundred of them. Change one with `_replace`.
    """

    id: str
    folder_id: str
    name: str
    description: str
    mime_type: str
    created_by: str
    created_at_ns: int
    updated_by: str
    updated_at_ns: int
    expiration_policy: int
    ttl_days: int
    expires_at_ns: int
    labels: Mapping[str, str]
    size: int
    # The PDS face's attributes; the Yandex face neither shows nor changes them.
    hidden: bool = False
    starred: bool = False
    local_created_at_ns: int | None = None  # client-supplied times, None when never given
    local_modified_at_ns: int | None = None
    content_hash: str = ""  # SHA-1 of the content, upper-case hex
    pds_labels: tuple[str, ...] = ()  # PDS's label list: not the Yandex label map


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEvent:
    """One acknowledged change, stored in the same transaction as the change itself."""

    file_id: str
    time_ns: int
    subject: str
    action: str  # create, update or delete
    paths: tuple[str, ...]  # for an update: the mask paths whose values changed
    request_id: str


Content = bytes | bytearray | memoryview
"""A file's bytes: a view into the request that carried them, when copying 128 MiB on the
event loop would stall every other call (see `grpc_api._split_create`)."""


def content_hash(content: Content) -> str:
    """What PDS calls `content_hash` (with `content_hash_name` sha1)."""
    return hashlib.sha1(content, usedforsecurity=False).hexdigest().upper()


class ContentGone(Exception):
    """Raised by `Blob.chunks` when the file was deleted (or swept) after `open_content`: its
    content is no longer there to read, and no byte of another content is ever given instead."""


class Blob(Protocol):
    """A live file's content, opened for reading a range at a time (a download's body).

    `record` is the file as it was when opened: `size` and `content_hash` are its content's.
    Each chunk is read when the one before has been taken (content of one chunk may be read
    with the record): a reader holds one chunk (at most READ_BYTES), never the file. A reader
    that stops early closes `chunks` (`aclose`) rather than leave that to the loop.
    Content never changes under a file id, so chunks read at different moments belong to the
    same content; if the file is deleted meanwhile, `chunks` raises ContentGone.
    """

    @property
    def record(self) -> FileRecord: ...

    def chunks(self, start: int, end: int) -> AsyncGenerator[Content, None]:
        """Bytes [start, end) of the content, in order, in pieces of at most READ_BYTES."""


READ_BYTES = 1024 * 1024
"""The most a `Blob` reads at once: the chunk rows of the SQL backends are this size."""


Cursor = tuple[int | str, str]
"""A position in a folder's listing: (sort key, id) of the last record already seen."""

SORT_KEYS = ("created_at_ns", "updated_at_ns", "name", "size")


@dataclasses.dataclass(frozen=True, slots=True)
class Order:
    """How a listing is sorted: by one of SORT_KEYS, then by id in the same direction."""

    key: str = "created_at_ns"
    descending: bool = True

    def __post_init__(self) -> None:
        if self.key not in SORT_KEYS:
            raise ValueError(f"cannot sort by {self.key!r}")

    def cursor(self, record: FileRecord) -> Cursor:
        return (getattr(record, self.key), record.id)


NEWEST_FIRST = Order()


class Listing(NamedTuple):
    """A page of a folder's files, made to be sent as they are: their `ListFilesResponse.files`
    entries, joined, and the size of the last of them (0 for no file), which says where the
    next page starts (`files_api.store.wire.entry_cursor`)."""

    entries: bytes
    last_size: int


@dataclasses.dataclass(frozen=True)
class Naming:
    """How a write keeps a name unique in its folder, decided inside the write's transaction.

    The store hands `settle` the record to write and the names of the folder's *other* files
    live at the record's `updated_at_ns` (the time of the write) that start with
    `prefix(record.name)`, name -> id; it writes the record `settle` returns, which may be
    renamed, or rolls back if `settle` raises.
    """

    prefix: Callable[[str], str]
    settle: Callable[[FileRecord, Mapping[str, str]], FileRecord]


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    """A file being uploaded in parts: invisible until completed, purged at `expires_at_ns`."""

    record: FileRecord  # the file as it will be, but for its size and content hash
    upload_id: str
    parts: int  # the client announced parts 1..parts
    expires_at_ns: int
    name_mode: str  # the name-conflict policy to apply again on completion
    revision: int = 0  # how many parts have been put: completion checks it did not move


@dataclasses.dataclass(frozen=True, slots=True)
class Counts:
    """What a snapshot holds: live files, their content's bytes, audit records, pending uploads."""

    files: int
    content_bytes: int
    audit_records: int
    pending_uploads: int


class Snapshot(Protocol):
    """A store as it was at one instant (one read-only transaction), for `export`.

    Every method reads that instant: writes committed after it began are not seen. Files come
    in id order, audit records in the order they were stored; content is read one file at a
    time, so what a reader holds is bounded by the largest content, not by the store.
    """

    async def counts(self) -> Counts: ...

    async def secret(self) -> bytes | None: ...

    def files(self) -> AsyncIterator[FileRecord]:
        """The files live at the snapshot's `now_ns`."""

    async def content(self, file_id: str) -> Content: ...

    def audit(self) -> AsyncIterator[AuditEvent]: ...

    def uploads(self) -> AsyncIterator[tuple[Upload, list[tuple[int, bytes]]]]:
        """The uploads pending at `now_ns`, each with its parts as (number, bytes)."""


class Loader(Protocol):
    """One transaction that fills a store in bulk, for `import`: nothing of it is seen, and
    nothing is kept, unless the `load()` block it came from ends without an exception.

    Content goes in first as blobs under a key (the archive's SHA-256), then files and upload
    parts name the blob they take; a blob no file took is dropped at the end.
    """

    async def is_empty(self) -> bool:
        """No file (expired ones included), audit record or upload was stored before."""

    async def has_file(self, file_id: str) -> bool:
        """Whether a file or a pending upload has this id (expired ones too)."""

    async def has_secret(self) -> bool: ...

    async def put_secret(self, secret: bytes) -> None: ...

    async def put_blob(self, key: str, chunks: Iterable[bytes]) -> None:
        """Stores one content from its chunks (raising from the iterable rolls the load back)."""

    async def put_file(self, record: FileRecord, blob: str) -> None: ...

    async def put_audit(self, event: AuditEvent) -> None: ...

    async def put_upload(self, upload: Upload, parts: list[tuple[int, str]]) -> None:
        """A pending upload with its parts, each (number, blob key)."""


class FileStore(Protocol):
    """What a backend does; `open_store` picks one by the URL's scheme."""

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        """The backend for a URL of its scheme; raises ValueError for a malformed one."""

    async def open(self) -> None:
        """Connects and brings the schema up to date."""

    async def close(self) -> None: ...

    async def signing_secret(self, make: Callable[[], bytes]) -> bytes:
        """The store's secret, created once with `make` and the same ever after."""

    async def create(
        self,
        record: FileRecord,
        content: Content,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord:
        """Stores the record (as `naming` settles it, when given) and returns what it stored."""

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None: ...

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        """Atomically replaces the record with `change(record)`; None when there is none.

        An exception from `change` leaves the record as it was. `audit(old, new)`, when given,
        is the event stored with the change. `naming`, when given, settles the new name.
        """

    async def names(
        self, folder_id: str, prefix: str, now_ns: int, excluding: str = ""
    ) -> dict[str, str]:
        """The live files of the folder whose names start with `prefix`, name -> id."""

    async def stage(self, upload: Upload) -> None:
        """Keeps an upload until it completes or expires."""

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
        """Stores (or replaces) one part and moves the upload's revision; False when no such
        upload is pending.

        `check(total)` sees the byte count of all the upload's parts with this one, in the same
        transaction: an exception from it stores nothing.
        """

    async def pending_upload(
        self, file_id: str, upload_id: str, now_ns: int
    ) -> tuple[Upload, list[bytes]] | None:
        """The pending upload and its parts' bytes in number order, read at one moment;
        None when no such upload is pending."""

    async def finish_upload(
        self,
        upload: Upload,
        record: FileRecord,
        content: bytes,
        *,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        """Makes `record` with `content` live in place of `upload`, in one transaction, and
        returns what it stored (as `naming` settles it, when given). None, with nothing
        changed, when the upload is no longer pending at `record.updated_at_ns` or a part was
        put since it was read (its revision moved). An exception from `naming` changes nothing.
        """

    async def delete(
        self,
        file_id: str,
        now_ns: int,
        check: Callable[[FileRecord], None] | None = None,
        audit: AuditEvent | None = None,
    ) -> bool:
        """Removes the record and its content; False when there was none.

        `check(record)` runs first, in the same transaction: an exception from it keeps the file.
        """

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        """Every stored event of the file, oldest first."""

    async def audit_page(
        self, file_id: str, limit: int, before: int | None
    ) -> list[tuple[int, AuditEvent]]:
        """Up to `limit` events of the file, newest first, each with its place in the log (a
        number that only grows); `before` starts the page past an earlier page's last place."""

    async def list(
        self,
        folder_id: str,
        now_ns: int,
        limit: int,
        after: Cursor | None,
        order: Order = NEWEST_FIRST,
    ) -> list[FileRecord]:
        """Up to `limit` records of the folder in `order`, past `after`."""

    async def list_entries(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> Listing:
        """Like `list` in NEWEST_FIRST order, each file as its `ListFilesResponse.files` entry
        (`files_api.store.wire.list_entry` of the record, from what is stored with it)."""

    async def content(self, file_id: str, now_ns: int) -> Content | None: ...

    async def open_content(self, file_id: str, now_ns: int) -> Blob | None:
        """The live file's record with its content ready to read a range at a time (reading
        only the record now); None when there is no live file."""

    async def totals(self, now_ns: int) -> tuple[int, int]:
        """How many live files there are and their bytes (for the metrics' gauges)."""

    async def purge_expired(self, now_ns: int) -> int:
        """Removes expired records with their content, and expired uploads; returns how many
        records."""

    def snapshot(self, now_ns: int) -> AbstractAsyncContextManager[Snapshot]:
        """The store at one instant, read in one read-only transaction until the block ends."""

    def load(self) -> AbstractAsyncContextManager[Loader]:
        """One bulk-load transaction, committed when the block ends without an exception."""

    async def clear(self) -> None:
        """Drops every file with its content and audit records, and every pending upload;
        keeps the signing secret. For test suites that share one server between tests."""


_BACKENDS = {
    "memory": "files_api.store.memory:MemoryStore",
    "sqlite": "files_api.store.sqlite:SqliteStore",
    "postgresql": "files_api.store.postgres:PostgresStore",
    "postgres": "files_api.store.postgres:PostgresStore",
}


def open_store(url: str) -> FileStore:
    """The backend for a store URL (`memory:`, `sqlite:///rel.db`, `sqlite:////abs.db`,
    `postgresql://user:password@host:port/database?pool_size=10`).

    The backend module is imported here, so a driver is loaded only when its URL is used.
    """
    scheme, sep, _ = url.partition(":")
    target = _BACKENDS.get(scheme) if sep else None
    if target is None:
        known = ", ".join(f"{s}:" for s in _BACKENDS)
        raise ValueError(f"unsupported store URL {url!r}: use one of {known}")
    module_name, _, class_name = target.partition(":")
    backend: type[FileStore] = getattr(importlib.import_module(module_name), class_name)
    return backend.from_url(url)


def with_pool_size(url: str, size: int | None) -> str:
    """The URL with `pool_size` set (PostgreSQL only; the embedded stores have no pool)."""
    if size is None:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"--pool-size applies to a PostgreSQL store, not {parts.scheme or url!r}")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "pool_size"]
    return parts._replace(query=urlencode([*query, ("pool_size", str(size))])).geturl()


def without_password(url: str) -> str:
    """The store URL fit for a log line: a password in it, or in its query, becomes `***`."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(key != "password" for key, _ in query):
        return url  # untouched: urlunsplit would turn sqlite://// into sqlite://
    user, at, host = parts.netloc.rpartition("@")
    if parts.password is not None:
        user = f"{user.partition(':')[0]}:***"
    hidden = [(key, "***" if key == "password" else value) for key, value in query]
    return parts._replace(netloc=f"{user}{at}{host}", query=urlencode(hidden, safe="*")).geturl()
