"""A store that lives in the process: for tests and throwaway servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.store import Cursor, FileRecord


class MemoryStore:
    """Keeps everything in dicts; each method runs without awaiting, so each is atomic."""

    def __init__(self) -> None:
        self._records: dict[str, FileRecord] = {}
        self._contents: dict[str, bytes] = {}
        self._secret: bytes | None = None

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

    async def create(self, record: FileRecord, content: bytes) -> None:
        self._records[record.id] = record
        self._contents[record.id] = content

    async def get(self, file_id: str, now_ns: int) -> FileRecord | None:
        record = self._records.get(file_id)
        return record if record is not None and record.expires_at_ns > now_ns else None

    async def update(
        self, file_id: str, now_ns: int, change: Callable[[FileRecord], FileRecord]
    ) -> FileRecord | None:
        record = await self.get(file_id, now_ns)
        if record is None:
            return None
        self._records[file_id] = updated = change(record)
        return updated

    async def delete(self, file_id: str, now_ns: int) -> bool:
        if await self.get(file_id, now_ns) is None:
            return False
        del self._records[file_id]
        del self._contents[file_id]
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
