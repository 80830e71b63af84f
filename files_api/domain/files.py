"""The six FileService calls: request message in, response message out, no grpc in sight."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2

from files_api.auth import ANONYMOUS, Caller
from files_api.domain.limits import (
    DEFAULT_HISTORY_PAGE_SIZE,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_BYTES,
    MAX_PAGE_SIZE,
)
from files_api.domain.naming import IGNORE, naming_for
from files_api.domain.records import (
    check_if_match,
    hash_content,
    new_record,
    require_content_size,
    require_file_id,
    require_folder,
    require_mime_type,
)
from files_api.domain.update_mask import apply_patch, plan_update
from files_api.errors import InvalidArgument
from files_api.mime import detect_mime
from files_api.store.wire import entry_cursor, entry_sizes, list_page_bytes, to_proto

if TYPE_CHECKING:
    from collections.abc import Sequence

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.domain.core import Core
    from files_api.store import AuditEvent, Content, FileRecord


class History(NamedTuple):
    """A page of a file's audit records; `next_page_token` is empty once a page comes back
    short, and `folder_id` is the file's folder (for the edge's logs and spans)."""

    records: Sequence[AuditEvent]
    next_page_token: str
    folder_id: str


class Files:
    """FileService over a `Core`; a transport calls one method per RPC.

    Example: `await Files(core).get(GetFileRequest(file_id=...), caller)`.
    """

    def __init__(self, core: Core) -> None:
        self.core = core

    async def create(
        self,
        request: file_service_pb2.CreateFileRequest,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
        content: Content | None = None,
    ) -> file_pb2.File:
        """`content`, when given, stands for the request's own: the gRPC face hands big
        content over as a view into the received bytes (see `grpc_api.BigCreate`)."""
        folder_id = require_folder(request.folder_id, caller)
        if content is None:
            content = request.content  # each read of a bytes field copies it: read it once
        if not content:
            raise InvalidArgument.field("content", "is required and must not be empty")
        require_content_size("content", len(content))
        mime_type = require_mime_type(
            "mime_type", request.mime_type or detect_mime(content, request.name)
        )
        core = self.core
        config = request.expiration_config
        record = new_record(
            folder_id,
            caller,
            core.clock(),
            name=request.name,
            description=request.description,
            mime_type=mime_type,
            size=len(content),
            policy=config.expiration_policy,
            ttl_days=config.ttl_days,
            labels=dict(request.labels),
        )
        record = record._replace(content_hash=await hash_content(content))
        event = core.event(record.id, "create", caller)
        return to_proto(await core.store.create(record, content, event, naming_for(name_mode)))

    async def get(
        self, request: file_service_pb2.GetFileRequest, caller: Caller = ANONYMOUS
    ) -> file_pb2.File:
        return to_proto(await self.core.find(request.file_id, caller))

    async def update(
        self,
        request: file_service_pb2.UpdateFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
        name_mode: str = IGNORE,
    ) -> file_pb2.File:
        file_id = require_file_id(request.file_id)
        patch = plan_update(request.update_mask.paths)
        now = self.core.clock()

        def change(record: FileRecord) -> FileRecord:
            check_if_match(record, if_match)
            return apply_patch(record, patch, request, caller.subject, now)

        naming = naming_for(name_mode) if "name" in patch.whole else None
        return to_proto(await self.core.change(file_id, caller, change, naming))

    async def delete(
        self,
        request: file_service_pb2.DeleteFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
    ) -> str:
        """Deletes the file; returns the folder it was in."""
        return await self.core.delete(request.file_id, caller, if_match)

    async def list(
        self, request: file_service_pb2.ListFilesRequest, caller: Caller = ANONYMOUS
    ) -> file_service_pb2.ListFilesResponse:
        return file_service_pb2.ListFilesResponse.FromString(await self.list_page(request, caller))

    async def list_page(
        self, request: file_service_pb2.ListFilesRequest, caller: Caller = ANONYMOUS
    ) -> bytes:
        """The serialized ListFilesResponse, joined from the Files' stored bytes: gRPC sends it
        as it is, with no File built (`list` parses it, for callers in process)."""
        folder_id = require_folder(request.folder_id, caller)
        if request.page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        # AIP-158: a page size above the maximum is coerced to it.
        limit = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        links = self.core.links
        after = links.open_page_token(request.page_token, folder_id) if request.page_token else None
        entries, last = await self.core.store.list_entries(
            folder_id, self.core.clock(), limit, after
        )
        if len(entries) > MAX_PAGE_BYTES:  # rare: big labels on many files
            entries, last = _fitting(entries)
        # As the cloud does (and the SDK's files.list() needs): every page that holds files
        # carries a token past its last file; only an empty page ends the walk.
        token = links.page_token(folder_id, entry_cursor(entries[-last:])) if entries else ""
        return list_page_bytes(entries, token)

    async def history(
        self, file_id: str, caller: Caller = ANONYMOUS, page_size: int = 0, page_token: str = ""
    ) -> History:
        """A page of a live file's audit records, newest first. Whoever may see the file may
        read its history."""
        record = await self.core.find(file_id, caller)
        if page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        limit = min(page_size or DEFAULT_HISTORY_PAGE_SIZE, MAX_PAGE_SIZE)
        links = self.core.links
        before = links.open_audit_token(page_token, record.id) if page_token else None
        page = await self.core.store.audit_page(record.id, limit, before)
        token = links.audit_token(record.id, page[-1][0]) if len(page) == limit else ""
        return History([event for _, event in page], token, record.folder_id)

    async def get_url(
        self,
        request: file_service_pb2.GetFileUrlRequest,
        base_url: str,
        caller: Caller = ANONYMOUS,
    ) -> tuple[file_service_pb2.GetFileUrlResponse, str]:
        """The link, and the folder of the file it is for."""
        record = await self.core.find(request.file_id, caller)
        url, _ = self.core.download_url(record, base_url, self.core.url_ttl_seconds)
        return file_service_pb2.GetFileUrlResponse(url=url), record.folder_id


def _fitting(entries: bytes) -> tuple[bytes, int]:
    """The page's first entries that fit in MAX_PAGE_BYTES, and the last one's size; at least
    one, whatever its size."""
    kept, last = 0, 0
    for size in entry_sizes(entries):
        if kept and kept + size > MAX_PAGE_BYTES:
            break
        kept, last = kept + size, size
    return entries[:kept], last
