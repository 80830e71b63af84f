"""Content that moves on its own links: PDS's staged multipart uploads (stage, a signed PUT per
part, complete) and the downloads behind signed links (GetUrl's and PDS's alike)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from files_api.auth import ANONYMOUS, Caller
from files_api.domain.limits import MAX_CONTENT_BYTES, MAX_PARTS, UPLOAD_TTL_NS
from files_api.domain.naming import IGNORE, REFUSE, naming_for
from files_api.domain.records import (
    activity,
    hash_content,
    new_record,
    not_found,
    require_file_id,
    require_folder,
    require_id,
    require_mime_type,
    require_path_name,
    touch,
    visible_to,
)
from files_api.errors import InvalidArgument, NotFound, ResourceExhausted, Unavailable
from files_api.mime import detect_mime
from files_api.store import Upload

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from files_api.domain.core import Core
    from files_api.store import Blob, FileRecord

# Completion reads the parts, then writes the file only if no part was put in between; a
# client that keeps re-sending parts meanwhile is told to try again after this many reads.
COMPLETE_ATTEMPTS = 5


@dataclasses.dataclass(frozen=True)
class NewUpload:
    """What a client announces before uploading a file in parts (PDS's CreateFile)."""

    name: str
    size: int | None
    mime_type: str
    parts: int
    description: str = ""
    hidden: bool = False
    labels: tuple[str, ...] = ()
    local_created_at_ns: int | None = None
    local_modified_at_ns: int | None = None


@dataclasses.dataclass(frozen=True)
class Staged:
    """A staged upload and where each part goes; `holder` instead when `refuse` found the
    name taken and nothing was staged."""

    record: FileRecord
    upload_id: str = ""
    part_urls: tuple[str, ...] = ()
    holder: str | None = None


def too_large(size: int) -> ResourceExhausted:
    return ResourceExhausted(f"the file would be {size} bytes; at most {MAX_CONTENT_BYTES} allowed")


class Uploads:
    """Staged uploads and signed downloads over a `Core`."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def stage(
        self,
        folder_id: str,
        new: NewUpload,
        base_url: str,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
    ) -> Staged:
        """Stages a file to upload in parts and signs a PUT link per part. The name policy
        is checked now (so `refuse` answers at once) and again when the upload completes."""
        require_folder(folder_id, caller, "drive_id")
        require_path_name(new.name)
        if new.size is not None and not 0 <= new.size <= MAX_CONTENT_BYTES:
            raise (
                too_large(new.size)
                if new.size > 0
                else InvalidArgument.field("size", "must not be negative")
            )
        if not 1 <= new.parts <= MAX_PARTS:
            raise InvalidArgument.field("part_info_list", f"must list 1-{MAX_PARTS} parts")
        if new.mime_type:
            require_mime_type("content_type", new.mime_type)
        core = self.core
        now = core.clock()
        record = new_record(
            folder_id,
            caller,
            now,
            name=new.name,
            description=new.description,
            mime_type=new.mime_type,
            size=new.size or 0,
            hidden=new.hidden,
            local_created_at_ns=new.local_created_at_ns,
            local_modified_at_ns=new.local_modified_at_ns,
            pds_labels=new.labels,
        )
        naming = naming_for(name_mode)
        if naming is not None:
            taken = await core.store.names(folder_id, naming.prefix(record.name), now)
            if name_mode == REFUSE and record.name in taken:
                return Staged(record, holder=taken[record.name])
            record = naming.settle(record, taken)
        links = core.links
        upload_id = links.new_upload_id()
        expires_at_ns = now + UPLOAD_TTL_NS
        await core.store.stage(Upload(record, upload_id, new.parts, expires_at_ns, name_mode))
        urls = links.part_urls(record.id, upload_id, new.parts, base_url, expires_at_ns // 10**9)
        return Staged(record, upload_id, urls)

    async def put_part(
        self, part: str, expires: str, signature: str, data: bytes | Callable[[], Awaitable[bytes]]
    ) -> None:
        """Stores one part a signed PUT link carries; the link is the authority. `data` may be
        a reader of the body, called only once the link has been checked: a request with a
        forged link costs no reading."""
        now = self.core.clock()
        file_id, upload_id, number = self.core.links.check_part(part, expires, signature, now)
        if not isinstance(data, bytes):
            data = await data()

        def check(total: int) -> None:
            if total > MAX_CONTENT_BYTES:
                raise too_large(total)

        stored = await self.core.store.put_part(
            file_id, upload_id, number, data, now_ns=now, check=check
        )
        if not stored:
            raise _no_upload(file_id, upload_id)

    async def complete(
        self, folder_id: str, file_id: str, upload_id: str, caller: Caller = ANONYMOUS
    ) -> FileRecord:
        """Makes an upload's file live once every announced part has arrived.

        The parts are read, joined, sniffed and hashed outside any write (the hash on a
        thread), then written in one transaction that first checks no part was put since.
        """
        require_folder(folder_id, caller, "drive_id")
        require_file_id(file_id)
        require_id("upload_id", upload_id)
        store = self.core.store
        for _ in range(COMPLETE_ATTEMPTS):
            now = self.core.clock()
            pending = await store.pending_upload(file_id, upload_id, now)
            if pending is None:
                raise _no_upload(file_id, upload_id)
            upload, parts = pending
            visible_to(caller, upload.record, file_id, folder_id)
            record, content = await _assemble(upload, parts, now)
            event = self.core.event(file_id, "create", caller)
            naming = naming_for(upload.name_mode)
            done = await store.finish_upload(upload, record, content, audit=event, naming=naming)
            if done is not None:
                return done
        raise Unavailable(f"the parts of upload {upload_id!r} kept changing; complete it again")

    async def download(
        self, file_id: str, expires: str, signature: str, *, active: bool = True
    ) -> Blob:
        """The content behind a signed URL, opened to be read a range at a time (the link is
        checked before anything is read). A download (`active`; not a HEAD) is activity for
        SINCE_LAST_ACTIVE files, written as `activity` decides: most downloads write nothing.
        """
        core = self.core
        now = core.clock()
        core.links.check_download(file_id, expires, signature, now)
        blob = await core.store.open_content(file_id, now)
        if blob is None:
            raise not_found(file_id)
        if active and activity(blob.record, now) is not None:

            def record_activity(record: FileRecord) -> FileRecord:
                # The time is taken inside the write, after any write queued before it (an
                # Update, another download): activity never sets an earlier expiry than theirs.
                return activity(record, core.clock()) or record

            if await core.store.update(file_id, now, record_activity) is None:
                raise not_found(file_id)
        return blob


async def _assemble(upload: Upload, parts: list[bytes], now_ns: int) -> tuple[FileRecord, bytes]:
    """The live record and content of an upload whose parts have all arrived."""
    if len(parts) != upload.parts:
        raise InvalidArgument.field(
            "upload_id", f"{len(parts)} of {upload.parts} parts have been uploaded"
        )
    content = b"".join(parts)
    declared = upload.record.size
    if declared and len(content) != declared:
        raise InvalidArgument.field(
            "size", f"the parts hold {len(content)} bytes, not the {declared} announced"
        )
    record = upload.record._replace(
        # Unannounced, the type is found from the bytes as Create finds it.
        mime_type=upload.record.mime_type or detect_mime(content, upload.record.name),
        size=len(content),
        content_hash=await hash_content(content),
        updated_at_ns=now_ns,
    )
    return touch(record, now_ns), content


def _no_upload(file_id: str, upload_id: str) -> NotFound:
    return NotFound(f"upload {upload_id!r} of file {file_id!r} is not pending")
