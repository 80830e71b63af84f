"""The storage interface every backend implements, and the URL that picks a backend.

Backends keep records and bytes and make each change atomic; every rule about what a change
means (masks, defaults, validation, expiry arithmetic) lives in `server.domain`, never here.
A record whose `expires_at_ns` is at or before the `now_ns` a method is given counts as absent.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class FileRecord:
    """One file's metadata as stored: times are integer nanoseconds since the epoch."""

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


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEvent:
    """One acknowledged change, stored in the same transaction as the change itself."""

    file_id: str
    time_ns: int
    subject: str
    action: str  # create, update or delete
    paths: tuple[str, ...]  # for an update: the mask paths whose values changed
    request_id: str


COLUMNS = (
    "id, folder_id, name, description, mime_type, created_by, created_at_ns, updated_by,"
    " updated_at_ns, expiration_policy, ttl_days, expires_at_ns, labels, size"
)
"""The SQL backends' column order for a FileRecord, as `record_row` lays out its values."""

DESCRIPTION, LABELS = 3, 12  # positions a backend may store in its own way


def record_row(record: FileRecord) -> list[object]:
    """The record's values in COLUMNS order, labels as JSON text."""
    row: list[object] = [getattr(record, field.name) for field in dataclasses.fields(record)]
    row[LABELS] = json.dumps(dict(record.labels), ensure_ascii=False, sort_keys=True)
    return row


def audit_row(event: AuditEvent) -> tuple[str, int, str, str]:
    """The leading columns both SQL backends store an event under."""
    return (event.file_id, event.time_ns, event.subject, event.action)


Cursor = tuple[int, str]
"""A position in a folder's listing: (created_at_ns, id) of the last record already seen."""


class FileStore(Protocol):
    async def open(self) -> None:
        """Connects and brings the schema up to date."""

    async def close(self) -> None: ...

    async def signing_secret(self, make: Callable[[], bytes]) -> bytes:
        """The store's secret, created once with `make` and the same ever after."""

    async def create(
        self, record: FileRecord, content: bytes, audit: AuditEvent | None = None
    ) -> None: ...

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None: ...

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
    ) -> FileRecord | None:
        """Atomically replaces the record with `change(record)`; None when there is none.

        An exception from `change` leaves the record as it was. `audit(old, new)`, when given,
        is the event stored with the change.
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

    async def list(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> list[FileRecord]:
        """Up to `limit` records of the folder, newest first, past `after`."""

    async def content(self, file_id: str, now_ns: int) -> bytes | bytearray | None: ...

    async def purge_expired(self, now_ns: int) -> int:
        """Removes expired records with their content; returns how many."""


Migration = tuple[str, ...]
"""The statements that bring a SQL backend's schema from version N to N+1."""


def pending_migrations(
    migrations: Sequence[Migration], version: int
) -> list[tuple[int, Migration]]:
    """The migrations a schema at `version` still needs, each with the version it brings.

    Both SQL backends keep an append-only list and apply what this returns in one transaction
    (SQLite records the version in `PRAGMA user_version`, PostgreSQL in `schema_version`). A
    schema newer than the list needs nothing: an older replica runs on during an upgrade.
    """
    return list(enumerate(migrations[version:], start=version + 1))


_BACKENDS = {
    "memory": "server.store.memory:MemoryStore",
    "sqlite": "server.store.sqlite:SqliteStore",
    "postgresql": "server.store.postgres:PostgresStore",
    "postgres": "server.store.postgres:PostgresStore",
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
    return backend.from_url(url)  # type: ignore[attr-defined, no-any-return]


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
