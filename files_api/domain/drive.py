"""The PDS face's calls on files: PDS names a drive (one of our folders) with every file, has
no update mask, and lists in any order with its marker convention. Uploads are `uploads.py`'s."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from files_api.auth import ANONYMOUS, Caller
from files_api.domain.limits import DEFAULT_BROWSE_LIMIT, MAX_BROWSE_LIMIT
from files_api.domain.naming import IGNORE, naming_for
from files_api.domain.records import (
    require_file_id,
    require_folder,
    require_id,
    require_path_name,
    touch,
    validate,
)
from files_api.domain.uploads import Uploads
from files_api.errors import InvalidArgument
from files_api.store import NEWEST_FIRST

if TYPE_CHECKING:
    import builtins

    from files_api.domain.core import Core
    from files_api.store import FileRecord, Order


@dataclasses.dataclass(frozen=True)
class Edits:
    """A PDS-style update: it has no mask, so each field given (not None) replaces the stored
    value and the others stay; `labels` is PDS's label list, replaced whole."""

    name: str | None = None
    description: str | None = None
    hidden: bool | None = None
    starred: bool | None = None
    local_modified_at_ns: int | None = None
    labels: tuple[str, ...] | None = None

    def apply(self, record: FileRecord, subject: str, now_ns: int) -> FileRecord:
        given = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) is not None
        }
        if "labels" in given:
            given["pds_labels"] = given.pop("labels")
        updated = record._replace(**given, updated_by=subject, updated_at_ns=now_ns)
        validate(updated, record)
        return touch(updated, now_ns)


class Drive:
    """The PDS face's file calls over a `Core`; `uploads` stages and completes new files."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.uploads = Uploads(core)

    async def edit(
        self,
        file_id: str,
        folder_id: str,
        edits: Edits,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
    ) -> FileRecord:
        """PDS's update: `folder_id` must be the file's own (else NOT_FOUND)."""
        require_file_id(file_id)
        require_id("drive_id", folder_id)
        if edits.name is not None:
            require_path_name(edits.name)
        now = self.core.clock()
        naming = naming_for(name_mode) if edits.name is not None else None
        return await self.core.change(
            file_id,
            caller,
            lambda record: edits.apply(record, caller.subject, now),
            naming,
            folder_id,
        )

    async def find(self, file_id: str, folder_id: str, caller: Caller = ANONYMOUS) -> FileRecord:
        return await self.core.find(file_id, caller, folder_id)

    async def delete(self, file_id: str, folder_id: str, caller: Caller = ANONYMOUS) -> None:
        await self.core.delete(file_id, caller, folder_id=folder_id)

    def download_url(self, record: FileRecord, base_url: str, ttl_seconds: int) -> tuple[str, int]:
        return self.core.download_url(record, base_url, ttl_seconds)

    async def browse(
        self,
        folder_id: str,
        caller: Caller = ANONYMOUS,
        *,
        limit: int = DEFAULT_BROWSE_LIMIT,
        marker: str = "",
        order: Order = NEWEST_FIRST,
    ) -> tuple[builtins.list[FileRecord], str]:
        """A page of the folder in any order, with PDS's marker convention: the marker is
        empty once the listing has nothing more."""
        require_folder(folder_id, caller, "drive_id")
        if not 1 <= limit <= MAX_BROWSE_LIMIT:
            raise InvalidArgument.field("limit", f"must be 1-{MAX_BROWSE_LIMIT}, not {limit}")
        links = self.core.links
        after = links.open_marker(marker, folder_id, order) if marker else None
        records = await self.core.store.list(folder_id, self.core.clock(), limit + 1, after, order)
        if len(records) <= limit:
            return records, ""
        records = records[:limit]
        return records, links.marker(folder_id, order, records[-1])
