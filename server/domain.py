"""Every rule of the Files API, in one place: what each request means and what it may change.

The transports (gRPC servicer, HTTP handlers) decode a request, call a `Files` method with the
request message and encode what comes back; the store only keeps records. Nothing here knows
about grpc. File.Update follows AIP-134 and AIP-161 as the public doc of the API words them:

* only the fields named in `update_mask` change; a named field absent from the request is reset
  to its default;
* an empty mask, a missing mask and `*` all mean every updatable field;
* `labels` replaces the whole map, ``labels.<key>`` sets or removes one entry;
* unknown, output-only and immutable paths are INVALID_ARGUMENT and nothing changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import string
import time
from typing import TYPE_CHECKING

from yandex.cloud.ai.common import common_pb2
from yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2

from server.auth import ANONYMOUS, Caller
from server.errors import Aborted, InvalidArgument, NotFound, PermissionDenied
from server.masks import MalformedPath, quote_segment, split_path
from server.mime import detect_mime
from server.signing import Signer, new_secret
from server.store import AuditEvent, FileRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.store import FileStore

Policy = common_pb2.ExpirationConfig.ExpirationPolicy

DEFAULT_POLICY = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE
DEFAULT_TTL_DAYS = 7
MAX_TTL_DAYS = 3650
MAX_CONTENT_BYTES = 128 * 1024 * 1024
MAX_NAME_BYTES = 1024
MAX_DESCRIPTION_CHARS = 1024
MAX_LABELS = 64
MAX_ID_CHARS = 128
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
NS_PER_DAY = 86_400 * 10**9

_LABEL_KEY = re.compile(r"[a-z][-_./\\@0-9a-z]{0,62}")
_LABEL_VALUE = re.compile(r"[-_./\\@0-9a-z]{0,63}")
# RFC 6838 type/subtype tokens, then parameters of printable ASCII: it goes into a header.
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(?: *;[ -~]*)?", re.ASCII
)
# Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EXPIRES = re.compile(r"[0-9]{1,15}")
_ID_ALPHABET = string.ascii_lowercase + string.digits

UPDATABLE = ("name", "description", "labels", "expiration_config")
OUTPUT_ONLY = (
    "id",
    "folder_id",
    "mime_type",
    "created_by",
    "created_at",
    "updated_by",
    "updated_at",
    "expires_at",
)
EXPIRATION_SUBFIELDS = ("expiration_policy", "ttl_days")


@dataclasses.dataclass(frozen=True)
class Patch:
    """What an Update changes, decided from its mask before the store is touched.

    `whole` holds the top-level fields to take from the request; `label_keys` the single map
    entries; `expiration` the ExpirationConfig subfields.
    """

    whole: frozenset[str]
    label_keys: tuple[str, ...]
    expiration: frozenset[str]


def plan_update(paths: list[str]) -> Patch:
    """Reads an update mask (empty, or `*`, means every updatable field); every path is
    checked, so `*` does not excuse a bad one."""
    whole: set[str] = set()
    label_keys: list[str] = []
    expiration: set[str] = set()
    everything = not paths
    for path in paths:
        if path == "*":
            everything = True
            continue
        try:
            segments = split_path(path)
        except MalformedPath as e:
            raise _bad_path(path, str(e)) from None
        field, rest = segments[0], segments[1:]
        if field in OUTPUT_ONLY:
            raise _bad_path(path, f"{field} is output-only or immutable and cannot be updated")
        if field not in UPDATABLE:
            raise _bad_path(path, f"File has no updatable field {field!r}")
        if not rest:
            whole.add(field)
        elif field == "labels" and len(rest) == 1:
            label_keys.append(rest[0])
        elif field == "expiration_config" and len(rest) == 1 and rest[0] in EXPIRATION_SUBFIELDS:
            expiration.add(rest[0])
        elif field == "labels":
            raise _bad_path(path, "a label value is a string: name one key, in backticks if needed")
        elif field == "expiration_config":
            raise _bad_path(path, "expiration_config has only expiration_policy and ttl_days")
        else:
            raise _bad_path(path, f"{field} is a string and has no subfields")
    if everything:
        return Patch(frozenset(UPDATABLE), (), frozenset())
    return Patch(frozenset(whole), tuple(label_keys), frozenset(expiration))


def _bad_path(path: str, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid update_mask path {path!r}: {why}",
        violations=[("update_mask", f"{path!r}: {why}")],
    )


def apply_patch(
    record: FileRecord,
    patch: Patch,
    request: file_service_pb2.UpdateFileRequest,
    subject: str,
    now_ns: int,
) -> FileRecord:
    """The record after the Update; raises InvalidArgument if the result breaks a rule."""
    name = request.name if "name" in patch.whole else record.name
    description = request.description if "description" in patch.whole else record.description
    labels = dict(request.labels) if "labels" in patch.whole else dict(record.labels)
    for key in patch.label_keys:
        if key in request.labels:
            labels[key] = request.labels[key]
        else:
            labels.pop(key, None)
    config = request.expiration_config
    policy, ttl_days = record.expiration_policy, record.ttl_days
    if "expiration_config" in patch.whole or "expiration_policy" in patch.expiration:
        policy = config.expiration_policy or DEFAULT_POLICY
    if "expiration_config" in patch.whole or "ttl_days" in patch.expiration:
        ttl_days = config.ttl_days or DEFAULT_TTL_DAYS
    updated = dataclasses.replace(
        record,
        name=name,
        description=description,
        labels=labels,
        expiration_policy=policy,
        ttl_days=ttl_days,
        updated_by=subject,
        updated_at_ns=now_ns,
    )
    _validate(updated)
    # An Update is activity: a SINCE_LAST_ACTIVE file lives ttl_days from now on.
    return dataclasses.replace(updated, expires_at_ns=expiry(updated, now_ns))


def expiry(record: FileRecord, last_active_ns: int) -> int:
    start = record.created_at_ns if record.expiration_policy == Policy.STATIC else last_active_ns
    return start + record.ttl_days * NS_PER_DAY


def _validate(record: FileRecord) -> None:
    violations: list[tuple[str, str]] = []
    if len(record.name.encode()) > MAX_NAME_BYTES:
        violations.append(("name", f"must be at most {MAX_NAME_BYTES} bytes of UTF-8"))
    if _CONTROL.search(record.name):
        violations.append(("name", "must not contain control characters"))
    if len(record.description) > MAX_DESCRIPTION_CHARS:
        violations.append(("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters"))
    if len(record.labels) > MAX_LABELS:
        violations.append(("labels", f"at most {MAX_LABELS} labels are allowed"))
    for key, value in sorted(record.labels.items()):
        if not _LABEL_KEY.fullmatch(key):
            violations.append(
                (f"labels[{key!r}]", "a key is 1-63 characters matching [a-z][-_./\\@0-9a-z]*")
            )
        if not _LABEL_VALUE.fullmatch(value):
            violations.append(
                (f"labels[{key!r}]", "a value is at most 63 characters matching [-_./\\@0-9a-z]*")
            )
    if record.expiration_policy not in Policy.values() or record.expiration_policy == 0:
        violations.append(
            (
                "expiration_config.expiration_policy",
                f"unknown policy {record.expiration_policy}: use STATIC or SINCE_LAST_ACTIVE",
            )
        )
    if not 1 <= record.ttl_days <= MAX_TTL_DAYS:
        violations.append(
            (
                "expiration_config.ttl_days",
                f"must be 1-{MAX_TTL_DAYS} (0 for the default of {DEFAULT_TTL_DAYS}),"
                f" not {record.ttl_days}",
            )
        )
    if violations:
        raise InvalidArgument(
            "; ".join(f"{field}: {why}" for field, why in violations), violations=violations
        )


def _require_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if len(value) > MAX_ID_CHARS or _CONTROL.search(value):
        raise InvalidArgument.field(
            field, f"must be at most {MAX_ID_CHARS} characters with no control characters"
        )
    return value


def new_file_id() -> str:
    """20 lowercase characters starting with a letter, like the cloud's ids."""
    return secrets.choice(string.ascii_lowercase) + "".join(
        secrets.choice(_ID_ALPHABET) for _ in range(19)
    )


def to_proto(record: FileRecord) -> file_pb2.File:
    return fill(file_pb2.File(), record)


def fill(file: file_pb2.File, record: FileRecord) -> file_pb2.File:
    """Writes the record into an empty File in place: a List page fills its own repeated
    field, and setting nested fields directly skips building and copying temporaries."""
    file.id = record.id
    file.folder_id = record.folder_id
    file.name = record.name
    file.description = record.description
    file.mime_type = record.mime_type
    file.created_by = record.created_by
    file.updated_by = record.updated_by
    for stamp, ns in (
        (file.created_at, record.created_at_ns),
        (file.updated_at, record.updated_at_ns),
        (file.expires_at, record.expires_at_ns),
    ):
        stamp.seconds, stamp.nanos = divmod(ns, 10**9)
    config = file.expiration_config
    config.expiration_policy = record.expiration_policy  # type: ignore[assignment]
    config.ttl_days = record.ttl_days
    file.labels.update(record.labels)
    return file


def etag(file: file_pb2.File) -> str:
    """A strong validator (RFC 9110 section 8.8.3) of the File as clients see it.

    A hash rather than a counter, so it needs no column; `expires_at` is left out, because a
    download moves it and should not spoil a client's next If-Match.
    """
    visible = file_pb2.File()
    visible.CopyFrom(file)
    visible.ClearField("expires_at")
    digest = hashlib.sha256(visible.SerializeToString(deterministic=True)).hexdigest()
    return f'"{digest[:32]}"'


def _check_if_match(record: FileRecord, if_match: str | None) -> None:
    """An extension: `if-match` (gRPC metadata or HTTP header) makes a write conditional."""
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" in tags:
        return
    if etag(to_proto(record)) not in tags:
        raise Aborted(f"file {record.id!r} has changed since the etag in if-match was issued")


def changed_paths(old: FileRecord, new: FileRecord) -> tuple[str, ...]:
    """The mask paths whose values differ, as an audit record lists them."""
    paths = [
        field for field in ("name", "description") if getattr(old, field) != getattr(new, field)
    ]
    for key in sorted(old.labels.keys() | new.labels.keys()):
        if old.labels.get(key) != new.labels.get(key):
            paths.append(f"labels.{quote_segment(key)}")
    if old.expiration_policy != new.expiration_policy:
        paths.append("expiration_config.expiration_policy")
    if old.ttl_days != new.ttl_days:
        paths.append("expiration_config.ttl_days")
    return tuple(paths)


@dataclasses.dataclass(frozen=True)
class Download:
    record: FileRecord
    content: bytes | bytearray


class Files:
    """The Files API's behaviour over a store; a transport calls one method per RPC.

    `clock` gives the time in nanoseconds (tests pass their own to step past expiry).
    """

    def __init__(
        self,
        store: FileStore,
        *,
        clock: Callable[[], int] = time.time_ns,
        url_ttl_seconds: int = 3600,
    ) -> None:
        self.store = store
        self.clock = clock
        self.url_ttl_seconds = url_ttl_seconds
        self._signer: Signer | None = None

    async def start(self) -> None:
        self._signer = Signer(await self.store.signing_secret(new_secret))

    @property
    def signer(self) -> Signer:
        assert self._signer is not None, "Files.start() was not awaited"
        return self._signer

    async def create(
        self, request: file_service_pb2.CreateFileRequest, caller: Caller = ANONYMOUS
    ) -> file_pb2.File:
        folder_id = _require_folder(request.folder_id, caller)
        content = request.content  # each read of a bytes field copies it: read it once
        if not content:
            raise InvalidArgument.field("content", "is required and must not be empty")
        if len(content) > MAX_CONTENT_BYTES:
            raise InvalidArgument.field(
                "content", f"is {len(content)} bytes; at most {MAX_CONTENT_BYTES} allowed"
            )
        mime_type = request.mime_type or detect_mime(content, request.name)
        if len(mime_type) > 255 or not _MIME_TYPE.fullmatch(mime_type):
            raise InvalidArgument.field("mime_type", "must be a MIME type such as text/plain")
        now = self.clock()
        config = request.expiration_config
        record = FileRecord(
            id=new_file_id(),
            folder_id=folder_id,
            name=request.name,
            description=request.description,
            mime_type=mime_type,
            created_by=caller.subject,
            created_at_ns=now,
            updated_by=caller.subject,
            updated_at_ns=now,
            expiration_policy=config.expiration_policy or DEFAULT_POLICY,
            ttl_days=config.ttl_days or DEFAULT_TTL_DAYS,
            expires_at_ns=0,
            labels=dict(request.labels),
            size=len(content),
        )
        _validate(record)
        record = dataclasses.replace(record, expires_at_ns=expiry(record, now))
        await self.store.create(record, content, self._event(record.id, "create", caller))
        return to_proto(record)

    def _event(
        self, file_id: str, action: str, caller: Caller, paths: tuple[str, ...] = ()
    ) -> AuditEvent:
        return AuditEvent(file_id, self.clock(), caller.subject, action, paths, caller.request_id)

    async def history(self, file_id: str) -> list[AuditEvent]:
        return await self.store.audit_log(file_id)

    async def get(
        self, request: file_service_pb2.GetFileRequest, caller: Caller = ANONYMOUS
    ) -> file_pb2.File:
        return to_proto(await self._visible(_require_id("file_id", request.file_id), caller))

    async def _visible(self, file_id: str, caller: Caller) -> FileRecord:
        record = await self.store.get(file_id, self.clock())
        return _visible_to(caller, record, file_id)

    async def update(
        self,
        request: file_service_pb2.UpdateFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
    ) -> file_pb2.File:
        file_id = _require_id("file_id", request.file_id)
        patch = plan_update(list(request.update_mask.paths))
        now = self.clock()

        def change(record: FileRecord) -> FileRecord:
            _visible_to(caller, record, file_id)
            _check_if_match(record, if_match)
            return apply_patch(record, patch, request, caller.subject, now)

        def audit(old: FileRecord, new: FileRecord) -> AuditEvent:
            return self._event(file_id, "update", caller, changed_paths(old, new))

        updated = await self.store.update(file_id, now, change, audit)
        return to_proto(_visible_to(caller, updated, file_id))

    async def delete(
        self,
        request: file_service_pb2.DeleteFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
    ) -> None:
        file_id = _require_id("file_id", request.file_id)

        def check(record: FileRecord) -> None:
            _visible_to(caller, record, file_id)
            _check_if_match(record, if_match)

        event = self._event(file_id, "delete", caller)
        if not await self.store.delete(file_id, self.clock(), check, event):
            raise _not_found(file_id)

    async def list(
        self, request: file_service_pb2.ListFilesRequest, caller: Caller = ANONYMOUS
    ) -> file_service_pb2.ListFilesResponse:
        folder_id = _require_folder(request.folder_id, caller)
        if request.page_size < 0:
            raise InvalidArgument.field("page_size", "must not be negative")
        # AIP-158: a page size above the maximum is coerced to it.
        limit = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = self._open_page_token(request.page_token, folder_id) if request.page_token else None
        records = await self.store.list(folder_id, self.clock(), limit, after)
        # As the cloud does (and the SDK's files.list() needs): every page that holds files
        # carries a token past its last file; only an empty page ends the walk.
        token = self._page_token(folder_id, records[-1]) if records else ""
        page = file_service_pb2.ListFilesResponse(next_page_token=token)
        for record in records:
            fill(page.files.add(), record)
        return page

    def _page_token(self, folder_id: str, last: FileRecord) -> str:
        payload = json.dumps([folder_id, last.created_at_ns, last.id], separators=(",", ":"))
        return self.signer.seal(payload.encode())

    def _open_page_token(self, token: str, folder_id: str) -> tuple[int, str]:
        payload = self.signer.open(token)
        invalid = InvalidArgument.field("page_token", "is not a token this server issued")
        if payload is None:
            raise invalid
        token_folder, created_at_ns, file_id = json.loads(payload)
        if token_folder != folder_id:
            raise InvalidArgument.field("page_token", "was issued for another folder")
        return created_at_ns, file_id

    async def get_url(
        self,
        request: file_service_pb2.GetFileUrlRequest,
        base_url: str,
        caller: Caller = ANONYMOUS,
    ) -> file_service_pb2.GetFileUrlResponse:
        record = await self._visible(_require_id("file_id", request.file_id), caller)
        expires = self.clock() // 10**9 + self.url_ttl_seconds
        signature = self.signer.url_signature(record.id, expires)
        url = (
            f"{base_url}/files/v1/files/{record.id}/content?expires={expires}&signature={signature}"
        )
        return file_service_pb2.GetFileUrlResponse(url=url)

    async def download(self, file_id: str, expires: str, signature: str) -> Download:
        """The bytes behind a signed URL; a download is activity for SINCE_LAST_ACTIVE files."""
        now = self.clock()
        if (
            not _EXPIRES.fullmatch(expires)
            or not self.signer.url_signature_valid(file_id, int(expires), signature)
            or int(expires) * 10**9 <= now
        ):
            raise PermissionDenied("the download link is invalid or has expired")
        content = await self.store.content(file_id, now)
        record = await self.store.update(file_id, now, lambda r: _touch(r, now))
        if content is None or record is None:
            raise _not_found(file_id)
        return Download(record, content)

    async def sweep(self) -> int:
        """Purges expired files; the store's condition is re-checked inside its transaction."""
        return await self.store.purge_expired(self.clock())


def _require_folder(folder_id: str, caller: Caller) -> str:
    _require_id("folder_id", folder_id)
    if not caller.may_use(folder_id):
        raise PermissionDenied(f"{caller.subject} may not use folder {folder_id!r}")
    return folder_id


def _visible_to(caller: Caller, record: FileRecord | None, file_id: str) -> FileRecord:
    """The record, if it exists and is in one of the caller's folders: a file elsewhere is
    NOT_FOUND, so nobody learns that it exists."""
    if record is None or not caller.may_use(record.folder_id):
        raise _not_found(file_id)
    return record


def _touch(record: FileRecord, now_ns: int) -> FileRecord:
    return dataclasses.replace(record, expires_at_ns=expiry(record, now_ns))


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"file {file_id!r} not found")
