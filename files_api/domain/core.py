"""What both faces' calls share: the store, the clock, the links sealed under the store's
secret, and the few operations both faces run the same way (find, change, delete, sweep)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from files_api.auth import ANONYMOUS, Caller
from files_api.domain.limits import DEFAULT_URL_TTL_SECONDS, MAX_URL_TTL_SECONDS
from files_api.domain.links import Links
from files_api.domain.records import (
    check_if_match,
    not_found,
    require_file_id,
    visible_to,
)
from files_api.domain.update_mask import changed_paths
from files_api.signing import Signer, new_secret
from files_api.store import AuditEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from files_api.store import FileRecord, FileStore, Naming


class Core:
    """One store and its clock, shared by `Files`, `Drive` and `Uploads`.

    `clock` gives the time in nanoseconds (tests pass their own to step past expiry);
    `url_ttl_seconds` is how long GetUrl's links work. `start()` reads the store's secret.
    """

    def __init__(
        self,
        store: FileStore,
        *,
        clock: Callable[[], int] = time.time_ns,
        url_ttl_seconds: int = DEFAULT_URL_TTL_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.url_ttl_seconds = url_ttl_seconds
        self._links: Links | None = None

    async def start(self) -> None:
        self._links = Links(Signer(await self.store.signing_secret(new_secret)))

    @property
    def links(self) -> Links:
        assert self._links is not None, "Core.start() was not awaited"
        return self._links

    def event(
        self, file_id: str, action: str, caller: Caller, paths: tuple[str, ...] = ()
    ) -> AuditEvent:
        return AuditEvent(file_id, self.clock(), caller.subject, action, paths, caller.request_id)

    async def find(
        self, file_id: str, caller: Caller = ANONYMOUS, folder_id: str | None = None
    ) -> FileRecord:
        """The live record by id, if the caller may see it (and it is in `folder_id`, when
        given); NOT_FOUND otherwise."""
        record = await self.store.get(require_file_id(file_id), self.clock())
        return visible_to(caller, record, file_id, folder_id)

    async def change(
        self,
        file_id: str,
        caller: Caller,
        change: Callable[[FileRecord], FileRecord],
        naming: Naming | None,
        folder_id: str | None = None,
    ) -> FileRecord:
        """Applies `change` to the record inside the store's write, with the audit record of
        what it changed; the caller must be able to see the file before and after."""

        def checked(record: FileRecord) -> FileRecord:
            visible_to(caller, record, file_id, folder_id)
            return change(record)

        def audit(old: FileRecord, new: FileRecord) -> AuditEvent:
            return self.event(file_id, "update", caller, changed_paths(old, new))

        updated = await self.store.update(file_id, self.clock(), checked, audit, naming)
        return visible_to(caller, updated, file_id, folder_id)

    async def delete(
        self,
        file_id: str,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
        folder_id: str | None = None,
    ) -> str:
        """Deletes the file; returns the folder it was in (for the edge's logs and spans)."""
        require_file_id(file_id)
        found: list[str] = []

        def check(record: FileRecord) -> None:
            visible_to(caller, record, file_id, folder_id)
            check_if_match(record, if_match)
            found.append(record.folder_id)

        event = self.event(file_id, "delete", caller)
        if not await self.store.delete(file_id, self.clock(), check, event):
            raise not_found(file_id)
        return found[-1]

    def download_url(self, record: FileRecord, base_url: str, ttl_seconds: int) -> tuple[str, int]:
        """A download link valid for `ttl_seconds` (at most MAX_URL_TTL_SECONDS), and the second
        it expires at."""
        expires = self.clock() // 10**9 + min(ttl_seconds, MAX_URL_TTL_SECONDS)
        return self.links.download_url(record.id, base_url, expires), expires

    async def sweep(self) -> int:
        """Purges expired files; the store's condition is re-checked inside its transaction."""
        return await self.store.purge_expired(self.clock())
