"""A store that lives in the process: for tests and throwaway servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.store import AuditEvent, Cursor, FileRecord


class MemoryStore:
    """Keeps everything in dicts; each method runs without awaiting, so each is atomic."""

    def __init__(self) -> None:
        self._records: dict[str, FileRecord] = {}
        self._contents: dict[str, bytes] = {}
        self._secret: bytes | None = None
        self._audit: dict[str, list[AuditEvent]] = {}

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
        self, record: FileRecord, content: bytes, audit: AuditEvent | None = None
    ) -> None:
        self._records[record.id] = record
        self._contents[record.id] = content
        self._append(audit)

    def _append(self, audit: AuditEvent | None) -> None:
        if audit is not None:
            self._audit.setdefault(audit.file_id, []).append(audit)

    async def audit_log(self, file_id: str) -> list[AuditEvent]:
        return list(self._audit.get(file_id, ()))

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        record = self._records.get(file_id)
        return record if record is not None and record.expires_at_ns > now_ns else None

    async def update(
        self,
        file_id: str,
        now_ns: int,
        change: Callable[[FileRecord], FileRecord],
        audit: Callable[[FileRecord, FileRecord], AuditEvent] | None = None,
    ) -> FileRecord | None:
        record = await self.get(file_id, now_ns)
        if record is None:
            return None
        updated = change(record)
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

    async def list(
        self, folder_id: str, now_ns: int, limit: int, after: Cursor | None
    ) -> list[FileRecord]:
        live = (
            r
            for r in self._records.values()
            if r.folder_id == folder_id
            and r.expires_at_ns > now_ns
            and (after is None or (r.created_at_ns, r.id) < after)
        )
        return sorted(live, key=lambda r: (r.created_at_ns, r.id), reverse=True)[:limit]

    async def content(self, file_id: str, now_ns: int) -> bytes | None:
        if await self.get(file_id, now_ns) is None:
            return None
        return self._contents[file_id]

    async def purge_expired(self, now_ns: int) -> int:
        expired = [i for i, r in self._records.items() if r.expires_at_ns <= now_ns]
        for file_id in expired:
            del self._records[file_id]
            del self._contents[file_id]
        return len(expired)
