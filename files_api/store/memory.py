"""A store that lives in the process: for tests and throwaway servers."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

from files_api.store import NEWEST_FIRST, READ_BYTES, Counts
from files_api.store.wire import file_bytes, listing

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable

    from files_api.store import (
        AuditEvent,
        Content,
        Cursor,
        FileRecord,
        Listing,
        Naming,
        Order,
        Upload,
    )


class MemoryStore:
    """Keeps everything in dicts; each method runs without awaiting, so each is atomic."""

    def __init__(self) -> None:
        self._records: dict[str, FileRecord] = {}
        self._contents: dict[str, Content] = {}
        self._secret: bytes | None = None
        self._audit: dict[str, list[AuditEvent]] = {}
        self._uploads: dict[str, Upload] = {}
        self._parts: dict[str, dict[int, bytes]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        if url != "memory:":
            raise ValueError(f"the memory store takes no path: use 'memory:', not {url!r}")
        return cls()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def signing_secret(self, make: Callable[[], bytes]) -> bytes:
        if self._secret is None:
            self._secret = make()
        return self._secret

    async def create(
        self,
        record: FileRecord,
        content: Content,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord:
        record = self._settle(record, naming)
        self._records[record.id] = record
        self._contents[record.id] = content
        self._append(audit)
        return record

    def _settle(self, record: FileRecord, naming: Naming | None) -> FileRecord:
        if naming is None:
            return record
        taken = self._names(
            record.folder_id, naming.prefix(record.name), record.updated_at_ns, record.id
        )
        return naming.settle(record, taken)

    def _append(self, audit: AuditEvent | None) -> None:
        if audit is not None:
            self._audit.setdefault(audit.file_id, []).append(audit)

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        return list(self._audit.get(file_id, ()))

    async def audit_page(
        self, file_id: str, limit: int, before: int | None
    ) -> list[tuple[int, AuditEvent]]:
        events = self._audit.get(file_id, [])
        end = len(events) if before is None else min(before - 1, len(events))
        return [(place + 1, events[place]) for place in range(end - 1, max(end - limit, 0) - 1, -1)]

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        record = self._records.get(file_id)
        return record if record is not None and record.expires_at_ns > now_ns else None

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        record = await self.get(file_id, now_ns)
        if record is None:
            return None
        updated = self._settle(change(record), naming)
        event = audit(record, updated) if audit is not None else None
        self._records[file_id] = updated
        self._append(event)
        return updated

    async def delete(
        self,
        file_id: str,
        now_ns: int,
        check: Callable[[FileRecord], None] | None = None,
        audit: AuditEvent | None = None,
    ) -> bool:
        record = await self.get(file_id, now_ns)
        if record is None:
            return False
        if check is not None:
            check(record)
        del self._records[file_id]
        del self._contents[file_id]
        self._append(audit)
        return True

    async def names(
        self, folder_id: str, prefix: str, now_ns: int, excluding: str = ""
    ) -> dict[str, str]:
        return self._names(folder_id, prefix, now_ns, excluding)

    def _names(self, folder_id: str, prefix: str, now_ns: int, excluding: str) -> dict[str, str]:
        return {
            r.name: r.id
            for r in self._records.values()
            if r.folder_id == folder_id
            and r.expires_at_ns > now_ns
            and r.id != excluding
            and r.name.startswith(prefix)
        }

    async def stage(self, upload: Upload) -> None:
        self._uploads[upload.record.id] = upload
        self._parts[upload.record.id] = {}

    def _pending(self, file_id: str, upload_id: str, now_ns: int) -> Upload | None:
        upload = self._uploads.get(file_id)
        if upload is None or upload.upload_id != upload_id or upload.expires_at_ns <= now_ns:
            return None
        return upload

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
        if self._pending(file_id, upload_id, now_ns) is None:
            return False
        parts = self._parts[file_id]
        check(sum(len(p) for n, p in parts.items() if n != number) + len(data))
        parts[number] = data
        upload = self._uploads[file_id]
        self._uploads[file_id] = dataclasses.replace(upload, revision=upload.revision + 1)
        return True

    async def pending_upload(
        self, file_id: str, upload_id: str, now_ns: int
    ) -> tuple[Upload, list[bytes]] | None:
        upload = self._pending(file_id, upload_id, now_ns)
        if upload is None:
            return None
        parts = self._parts[file_id]
        return upload, [parts[n] for n in sorted(parts)]

    async def finish_upload(
        self,
        upload: Upload,
        record: FileRecord,
        content: Content,
        *,
        audit: AuditEvent | None = None,
        naming: Naming | None = None,
    ) -> FileRecord | None:
        file_id = upload.record.id
        now = self._pending(file_id, upload.upload_id, record.updated_at_ns)
        if now is None or now.revision != upload.revision:
            return None
        stored = await self.create(record, content, audit, naming)
        del self._uploads[file_id], self._parts[file_id]
        return stored

    async def list(
        self,
        folder_id: str,
        now_ns: int,
        limit: int,
        after: Cursor | None,
        order: Order = NEWEST_FIRST,
    ) -> list[FileRecord]:
        def past(position: Cursor) -> bool:
            assert after is not None
            return position < after if order.descending else position > after

        live = (
            r
            for r in self._records.values()
            if r.folder_id == folder_id
            and r.expires_at_ns > now_ns
            and (after is None or past(order.cursor(r)))
        )
        return sorted(live, key=order.cursor, reverse=order.descending)[:limit]

    async def list_entries(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> Listing:
        # Nothing is stored to keep current: each File is encoded as it is listed.
        files = [file_bytes(r) for r in await self.list(folder_id, now_ns, limit, after)]
        return listing(files)

    async def content(self, file_id: str, now_ns: int) -> Content | None:
        if await self.get(file_id, now_ns) is None:
            return None
        return self._contents[file_id]

    async def open_content(self, file_id: str, now_ns: int) -> _MemoryBlob | None:
        record = await self.get(file_id, now_ns)
        if record is None:
            return None
        return _MemoryBlob(record, self._contents[file_id])

    async def clear(self) -> None:
        for kept in (self._records, self._contents, self._audit, self._uploads, self._parts):
            kept.clear()

    async def totals(self, now_ns: int) -> tuple[int, int]:
        live = [r.size for r in self._records.values() if r.expires_at_ns > now_ns]
        return len(live), sum(live)

    async def purge_expired(self, now_ns: int) -> int:
        for file_id in [i for i, u in self._uploads.items() if u.expires_at_ns <= now_ns]:
            del self._uploads[file_id], self._parts[file_id]
        expired = [i for i, r in self._records.items() if r.expires_at_ns <= now_ns]
        for file_id in expired:
            del self._records[file_id]
            del self._contents[file_id]
        return len(expired)

    @contextlib.asynccontextmanager
    async def snapshot(self, now_ns: int) -> AsyncIterator[_MemorySnapshot]:
        # Shallow copies at one moment: records, events and contents are never changed in place.
        yield _MemorySnapshot(
            {i: r for i, r in self._records.items() if r.expires_at_ns > now_ns},
            dict(self._contents),
            # Kept by file here: in time order across files (each file's own order stays).
            sorted((e for events in self._audit.values() for e in events), key=_event_time),
            {i: u for i, u in self._uploads.items() if u.expires_at_ns > now_ns},
            {file_id: dict(parts) for file_id, parts in self._parts.items()},
            self._secret,
        )

    @contextlib.asynccontextmanager
    async def load(self) -> AsyncIterator[_MemoryLoader]:
        loader = _MemoryLoader(self)
        yield loader
        # Nothing awaits from here on: the load lands at once or, after an exception, not at all.
        self._records.update(loader.records)
        for file_id, blob in loader.contents.items():
            self._contents[file_id] = loader.blobs[blob]
        for event in loader.audit:
            self._append(event)
        for upload, parts in loader.uploads:
            self._uploads[upload.record.id] = upload
            self._parts[upload.record.id] = {n: loader.blobs[blob] for n, blob in parts}
        if loader.secret is not None:
            self._secret = loader.secret


def _event_time(event: AuditEvent) -> int:
    return event.time_ns


@dataclasses.dataclass(frozen=True)
class _MemoryBlob:
    """Holds the content object itself: a delete meanwhile drops the store's reference, not
    this one, so a download begun before it ends with the bytes it began with."""

    record: FileRecord
    content: Content

    async def chunks(self, start: int, end: int) -> AsyncGenerator[Content, None]:
        view = memoryview(self.content)
        for offset in range(start, end, READ_BYTES):
            yield view[offset : min(offset + READ_BYTES, end)]


@dataclasses.dataclass
class _MemorySnapshot:
    records: dict[str, FileRecord]
    contents: dict[str, Content]
    events: list[AuditEvent]
    pending: dict[str, Upload]
    parts: dict[str, dict[int, bytes]]
    stored_secret: bytes | None

    async def counts(self) -> Counts:
        size = sum(r.size for r in self.records.values())
        return Counts(len(self.records), size, len(self.events), len(self.pending))

    async def secret(self) -> bytes | None:
        return self.stored_secret

    async def files(self) -> AsyncIterator[FileRecord]:
        for file_id in sorted(self.records):
            yield self.records[file_id]

    async def content(self, file_id: str) -> Content:
        return self.contents[file_id]

    async def audit(self) -> AsyncIterator[AuditEvent]:
        for event in self.events:
            yield event

    async def uploads(self) -> AsyncIterator[tuple[Upload, list[tuple[int, bytes]]]]:
        for file_id in sorted(self.pending):
            parts = self.parts.get(file_id, {})
            yield self.pending[file_id], sorted(parts.items())


class _MemoryLoader:
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.blobs: dict[str, bytes] = {}
        self.records: dict[str, FileRecord] = {}
        self.contents: dict[str, str] = {}
        self.audit: list[AuditEvent] = []
        self.uploads: list[tuple[Upload, list[tuple[int, str]]]] = []
        self.secret: bytes | None = None

    async def is_empty(self) -> bool:
        store = self.store
        return not (store._records or store._audit or store._uploads)

    async def has_file(self, file_id: str) -> bool:
        taken = (self.store._records, self.store._uploads, self.records)
        return any(file_id in ids for ids in taken)

    async def has_secret(self) -> bool:
        return self.store._secret is not None

    async def put_secret(self, secret: bytes) -> None:
        self.secret = secret

    async def put_blob(self, key: str, chunks: Iterable[bytes]) -> None:
        self.blobs[key] = b"".join(chunks)

    async def put_file(self, record: FileRecord, blob: str) -> None:
        if blob not in self.blobs:
            raise KeyError(blob)
        self.records[record.id] = record
        self.contents[record.id] = blob

    async def put_audit(self, event: AuditEvent) -> None:
        self.audit.append(event)

    async def put_upload(self, upload: Upload, parts: list[tuple[int, str]]) -> None:
        self.uploads.append((upload, parts))
