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

import asyncio
import dataclasses
import functools
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
from server.errors import (
    Aborted,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from server.masks import MalformedPath, quote_segment, split_path
from server.mime import detect_mime
from server.naming import IGNORE, REFUSE, naming_for, split_extension
from server.signing import Signer, new_secret
from server.store import (
    NEWEST_FIRST,
    AuditEvent,
    FileRecord,
    Naming,
    Order,
    Upload,
    content_hash,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Mapping, Sequence

    from server.store import FileStore

Policy = common_pb2.ExpirationConfig.ExpirationPolicy
_POLICIES = frozenset(Policy.values()) - {Policy.EXPIRATION_POLICY_UNSPECIFIED}
_STATIC = Policy.STATIC  # read once: each enum lookup through the wrapper costs about 1 us

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
MAX_PDS_LABELS = 100
MAX_PDS_LABEL_CHARS = 128
MAX_PARTS = 10_000
UPLOAD_TTL_NS = NS_PER_DAY  # an upload never completed is purged after this
MAX_URL_TTL_SECONDS = 115_200  # PDS's ceiling for expire_sec
DEFAULT_BROWSE_LIMIT = 50
MAX_BROWSE_LIMIT = 100
HASH_OFF_LOOP_BYTES = 64 * 1024  # hashing more than this goes to a thread, off the event loop

_LABEL_KEY = re.compile(r"[a-z][-_./\\@0-9a-z]{0,62}")
_LABEL_VALUE = re.compile(r"[-_./\\@0-9a-z]{0,63}")
# RFC 6838 type/subtype tokens, then parameters of printable ASCII: it goes into a header.
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(?: *;[ -~]*)?", re.ASCII
)
# Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]+")
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


def plan_update(paths: Sequence[str]) -> Patch:
    """Reads an update mask (empty, or `*`, means every updatable field); every path is
    checked, so `*` does not excuse a bad one."""
    key = tuple(paths)
    # Clients send the same few masks over and over: each short one is read once (a bad one
    # raises, which is not cached); a long one is not kept, so no client can fill the memory.
    return _read_mask(key) if sum(map(len, key)) > _CACHED_MASK_CHARS else _read_cached(key)


_CACHED_MASK_CHARS = 512


def _read_mask(paths: tuple[str, ...]) -> Patch:
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


_read_cached = functools.lru_cache(maxsize=256)(_read_mask)


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
    labels: Mapping[str, str] = record.labels  # untouched unless the mask names them
    if "labels" in patch.whole or patch.label_keys:
        edited = dict(request.labels) if "labels" in patch.whole else dict(record.labels)
        for key in patch.label_keys:
            if key in request.labels:
                edited[key] = request.labels[key]
            else:
                edited.pop(key, None)
        labels = edited
    config = request.expiration_config
    policy, ttl_days = record.expiration_policy, record.ttl_days
    if "expiration_config" in patch.whole or "expiration_policy" in patch.expiration:
        policy = config.expiration_policy or DEFAULT_POLICY
    if "expiration_config" in patch.whole or "ttl_days" in patch.expiration:
        ttl_days = config.ttl_days or DEFAULT_TTL_DAYS
    updated = record._replace(
        name=name,
        description=description,
        labels=labels,
        expiration_policy=policy,
        ttl_days=ttl_days,
        updated_by=subject,
        updated_at_ns=now_ns,
        # An Update is activity: a SINCE_LAST_ACTIVE file lives ttl_days from now on.
        expires_at_ns=_expires_at(policy, ttl_days, record.created_at_ns, now_ns),
    )
    _validate(updated, record)
    return updated


def expiry(record: FileRecord, last_active_ns: int) -> int:
    return _expires_at(
        record.expiration_policy, record.ttl_days, record.created_at_ns, last_active_ns
    )


def _expires_at(policy: int, ttl_days: int, created_at_ns: int, last_active_ns: int) -> int:
    start = created_at_ns if policy == _STATIC else last_active_ns
    return start + ttl_days * NS_PER_DAY


def _validate(record: FileRecord, stored: FileRecord | None = None) -> None:
    """Every rule a record must keep. Given the `stored` record it was made from, the name and
    label sets it shares with that one are not checked again: they were valid when stored."""
    violations: list[tuple[str, str]] = []
    name, labels, pds_labels = record.name, record.labels, record.pds_labels
    if stored is not None:
        name = "" if name is stored.name else name
        labels = {} if labels is stored.labels else labels
        pds_labels = () if pds_labels is stored.pds_labels else pds_labels
    if len(name.encode()) > MAX_NAME_BYTES:
        violations.append(("name", f"must be at most {MAX_NAME_BYTES} bytes of UTF-8"))
    if _CONTROL.search(name):
        violations.append(("name", "must not contain control characters"))
    if len(record.description) > MAX_DESCRIPTION_CHARS:
        violations.append(("description", f"must be at most {MAX_DESCRIPTION_CHARS} characters"))
    if len(labels) > MAX_LABELS:
        violations.append(("labels", f"at most {MAX_LABELS} labels are allowed"))
    for key, value in sorted(labels.items()):
        if not _LABEL_KEY.fullmatch(key):
            violations.append(
                (f"labels[{key!r}]", "a key is 1-63 characters matching [a-z][-_./\\@0-9a-z]*")
            )
        if not _LABEL_VALUE.fullmatch(value):
            violations.append(
                (f"labels[{key!r}]", "a value is at most 63 characters matching [-_./\\@0-9a-z]*")
            )
    for field, ns in (
        ("local_created_at", record.local_created_at_ns),
        ("local_modified_at", record.local_modified_at_ns),
    ):
        if ns is not None and not 0 <= ns < 2**63:  # what a signed 64-bit column holds
            violations.append((field, "must be between 1970-01-01 and 2262-04-11"))
    if len(pds_labels) > MAX_PDS_LABELS:
        violations.append(("labels", f"at most {MAX_PDS_LABELS} PDS labels are allowed"))
    for label in pds_labels:
        if not 1 <= len(label) <= MAX_PDS_LABEL_CHARS or _CONTROL.search(label):
            violations.append(
                (
                    "labels",
                    f"a PDS label is 1-{MAX_PDS_LABEL_CHARS} characters with no control"
                    f" characters, not {label[:40]!r}",
                )
            )
    if record.expiration_policy not in _POLICIES:
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


def _require_file_id(value: str) -> str:
    """Ids are made here (`new_file_id`), so one with other characters names no file: saying so
    beats NOT_FOUND for `../../etc/passwd`, and no store or path ever sees such a string."""
    _require_id("file_id", value)
    if not _FILE_ID.fullmatch(value):
        raise InvalidArgument.field(
            "file_id", f"{value!r} is not a file id: only letters, digits, '-' and '_'"
        )
    return value


def new_file_id() -> str:
    """20 lowercase characters starting with a letter, like the cloud's ids: a letter and 19
    base-36 digits from one read of the system's randomness (17 bytes cover 26 * 36**19
    many times over, so no character is noticeably likelier than another)."""
    first, rest = divmod(int.from_bytes(secrets.token_bytes(17)), 36**19)
    digits = []
    for _ in range(19):
        rest, digit = divmod(rest, 36)
        digits.append(_ID_ALPHABET[digit])
    return string.ascii_lowercase[first % 26] + "".join(digits)


def to_proto(record: FileRecord) -> file_pb2.File:
    return fill(file_pb2.File(), record)


def fill(file: file_pb2.File, record: FileRecord) -> file_pb2.File:
    """Writes the record into an empty File in place: a List page fills its own repeated
    field, and setting nested fields directly skips building and copying temporaries (this
    runs for every File answered: unrolled, it costs half of a loop over the stamps)."""
    file.id = record.id
    file.folder_id = record.folder_id
    file.name = record.name
    file.description = record.description
    file.mime_type = record.mime_type
    file.created_by = record.created_by
    file.updated_by = record.updated_by
    stamp = file.created_at
    stamp.seconds, stamp.nanos = divmod(record.created_at_ns, 10**9)
    stamp = file.updated_at
    stamp.seconds, stamp.nanos = divmod(record.updated_at_ns, 10**9)
    stamp = file.expires_at
    stamp.seconds, stamp.nanos = divmod(record.expires_at_ns, 10**9)
    config = file.expiration_config
    config.expiration_policy = record.expiration_policy  # type: ignore[assignment]
    config.ttl_days = record.ttl_days
    labels = file.labels
    for key, value in record.labels.items():
        labels[key] = value
    return file


def etag(file: file_pb2.File) -> str:
    """A strong validator (RFC 9110 section 8.8.3) of the File as clients see it.

    A hash rather than a counter, so it needs no column; `expires_at` is left out, because a
    download moves it and should not spoil a client's next If-Match. It is taken out of the
    File itself for the hash and put back, which costs less than hashing a copy.
    """
    had_expiry = file.HasField("expires_at")
    seconds, nanos = file.expires_at.seconds, file.expires_at.nanos
    file.ClearField("expires_at")
    try:
        digest = hashlib.sha256(file.SerializeToString(deterministic=True)).hexdigest()
    finally:
        if had_expiry:
            file.expires_at.seconds, file.expires_at.nanos = seconds, nanos
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
    if old.labels is not new.labels:
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
        _validate(updated, record)
        return updated._replace(expires_at_ns=expiry(updated, now_ns))


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


def require_path_name(name: str) -> None:
    """PDS names are path segments: a `/` in one would be a folder we do not have."""
    if "/" in name:
        raise InvalidArgument.field("name", "must not contain '/' (folders are not supported)")
    if not name:
        raise InvalidArgument.field("name", "is required")


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
        self,
        request: file_service_pb2.CreateFileRequest,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
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
        record = record._replace(
            expires_at_ns=expiry(record, now), content_hash=await _hash(content)
        )
        event = self._event(record.id, "create", caller)
        return to_proto(await self.store.create(record, content, event, naming_for(name_mode)))

    def _event(
        self, file_id: str, action: str, caller: Caller, paths: tuple[str, ...] = ()
    ) -> AuditEvent:
        return AuditEvent(file_id, self.clock(), caller.subject, action, paths, caller.request_id)

    async def history(self, file_id: str) -> list[AuditEvent]:
        return await self.store.audit_log(file_id)

    async def get(
        self, request: file_service_pb2.GetFileRequest, caller: Caller = ANONYMOUS
    ) -> file_pb2.File:
        return to_proto(await self._visible(_require_file_id(request.file_id), caller))

    async def _visible(self, file_id: str, caller: Caller) -> FileRecord:
        record = await self.store.get(file_id, self.clock())
        return _visible_to(caller, record, file_id)

    async def update(
        self,
        request: file_service_pb2.UpdateFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
        name_mode: str = IGNORE,
    ) -> file_pb2.File:
        file_id = _require_file_id(request.file_id)
        patch = plan_update(request.update_mask.paths)
        now = self.clock()

        def change(record: FileRecord) -> FileRecord:
            _check_if_match(record, if_match)
            return apply_patch(record, patch, request, caller.subject, now)

        naming = naming_for(name_mode) if "name" in patch.whole else None
        return to_proto(await self._change(file_id, caller, change, naming))

    async def edit(
        self,
        file_id: str,
        folder_id: str,
        edits: Edits,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
    ) -> FileRecord:
        """The PDS face's Update: `folder_id` must be the file's own (else NOT_FOUND)."""
        _require_file_id(file_id)
        _require_id("drive_id", folder_id)
        if edits.name is not None:
            require_path_name(edits.name)
        now = self.clock()
        naming = naming_for(name_mode) if edits.name is not None else None
        return await self._change(
            file_id,
            caller,
            lambda record: edits.apply(record, caller.subject, now),
            naming,
            folder_id,
        )

    async def _change(
        self,
        file_id: str,
        caller: Caller,
        change: Callable[[FileRecord], FileRecord],
        naming: Naming | None,
        folder_id: str | None = None,
    ) -> FileRecord:
        def checked(record: FileRecord) -> FileRecord:
            _visible_to(caller, record, file_id, folder_id)
            return change(record)

        def audit(old: FileRecord, new: FileRecord) -> AuditEvent:
            return self._event(file_id, "update", caller, changed_paths(old, new))

        updated = await self.store.update(file_id, self.clock(), checked, audit, naming)
        return _visible_to(caller, updated, file_id, folder_id)

    async def delete(
        self,
        request: file_service_pb2.DeleteFileRequest,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
    ) -> None:
        await self.delete_file(_require_file_id(request.file_id), caller, if_match)

    async def delete_file(
        self,
        file_id: str,
        caller: Caller = ANONYMOUS,
        if_match: str | None = None,
        folder_id: str | None = None,
    ) -> None:
        def check(record: FileRecord) -> None:
            _visible_to(caller, record, file_id, folder_id)
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
        record = await self._visible(_require_file_id(request.file_id), caller)
        url, _ = self.signed_url(record, base_url, self.url_ttl_seconds)
        return file_service_pb2.GetFileUrlResponse(url=url)

    def signed_url(self, record: FileRecord, base_url: str, ttl_seconds: int) -> tuple[str, int]:
        """A download link valid for `ttl_seconds` (at most MAX_URL_TTL_SECONDS), and the second
        it expires at."""
        expires = self.clock() // 10**9 + min(ttl_seconds, MAX_URL_TTL_SECONDS)
        signature = self.signer.url_signature(record.id, expires)
        path = f"/files/v1/files/{record.id}/content"
        return f"{base_url}{path}?expires={expires}&signature={signature}", expires

    async def find(
        self, file_id: str, caller: Caller = ANONYMOUS, folder_id: str | None = None
    ) -> FileRecord:
        """The record by id, for the PDS face (which names the folder as well)."""
        _require_file_id(file_id)
        record = await self.store.get(file_id, self.clock())
        return _visible_to(caller, record, file_id, folder_id)

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
        _require_folder(folder_id, caller, "drive_id")
        if not 1 <= limit <= MAX_BROWSE_LIMIT:
            raise InvalidArgument.field("limit", f"must be 1-{MAX_BROWSE_LIMIT}, not {limit}")
        after = None
        if marker:
            payload = self.signer.open(marker)
            if payload is None:
                raise InvalidArgument.field("marker", "is not a marker this server issued")
            *issued_for, key, last_id = json.loads(payload)
            if issued_for != [folder_id, order.key, order.descending]:
                raise InvalidArgument.field("marker", "was issued for another folder or order")
            after = (key, last_id)
        records = await self.store.list(folder_id, self.clock(), limit + 1, after, order)
        if len(records) <= limit:
            return records, ""
        records = records[:limit]
        position = [folder_id, order.key, order.descending, *order.cursor(records[-1])]
        return records, self.signer.seal(json.dumps(position, separators=(",", ":")).encode())

    async def stage_upload(
        self,
        folder_id: str,
        new: NewUpload,
        base_url: str,
        caller: Caller = ANONYMOUS,
        name_mode: str = IGNORE,
    ) -> Staged:
        """Stages a file to upload in parts and signs a PUT link per part. The name policy
        is checked now (so `refuse` answers at once) and again when the upload completes."""
        _require_folder(folder_id, caller, "drive_id")
        require_path_name(new.name)
        if new.size is not None and not 0 <= new.size <= MAX_CONTENT_BYTES:
            raise (
                _too_large(new.size)
                if new.size > 0
                else InvalidArgument.field("size", "must not be negative")
            )
        if not 1 <= new.parts <= MAX_PARTS:
            raise InvalidArgument.field("part_info_list", f"must list 1-{MAX_PARTS} parts")
        if new.mime_type and (len(new.mime_type) > 255 or not _MIME_TYPE.fullmatch(new.mime_type)):
            raise InvalidArgument.field("content_type", "must be a MIME type such as text/plain")
        now = self.clock()
        record = FileRecord(
            id=new_file_id(),
            folder_id=folder_id,
            name=new.name,
            description=new.description,
            mime_type=new.mime_type,
            created_by=caller.subject,
            created_at_ns=now,
            updated_by=caller.subject,
            updated_at_ns=now,
            expiration_policy=DEFAULT_POLICY,
            ttl_days=DEFAULT_TTL_DAYS,
            expires_at_ns=0,
            labels={},
            size=new.size or 0,
            hidden=new.hidden,
            local_created_at_ns=new.local_created_at_ns,
            local_modified_at_ns=new.local_modified_at_ns,
            pds_labels=new.labels,
        )
        _validate(record)
        naming = naming_for(name_mode)
        if naming is not None:
            taken = await self.store.names(folder_id, naming.prefix(record.name), now)
            if name_mode == REFUSE and record.name in taken:
                return Staged(record, holder=taken[record.name])
            record = naming.settle(record, taken)
        upload_id = secrets.token_hex(16)
        expires_at_ns = now + UPLOAD_TTL_NS
        await self.store.stage(Upload(record, upload_id, new.parts, expires_at_ns, name_mode))
        expires = expires_at_ns // 10**9
        urls = []
        for number in range(1, new.parts + 1):
            part = f"{record.id}/{upload_id}/{number}"
            signature = self.signer.upload_signature(part, expires)
            urls.append(f"{base_url}/v2/upload/{part}?expires={expires}&signature={signature}")
        return Staged(record, upload_id, tuple(urls))

    async def put_part(self, part: str, expires: str, signature: str, data: bytes) -> None:
        """Stores one part a signed PUT link carries; the link is the authority."""
        now = self.clock()
        file_id, _, rest = part.partition("/")
        upload_id, _, number = rest.partition("/")
        if (
            not _EXPIRES.fullmatch(expires)
            or not self.signer.upload_signature_valid(part, int(expires), signature)
            or int(expires) * 10**9 <= now
        ):
            raise PermissionDenied("the upload link is invalid or has expired")

        def check(total: int) -> None:
            if total > MAX_CONTENT_BYTES:
                raise _too_large(total)

        if not await self.store.put_part(
            file_id, upload_id, int(number), data, now_ns=now, check=check
        ):
            raise NotFound(f"upload {upload_id!r} of file {file_id!r} is not pending")

    async def complete_upload(
        self, folder_id: str, file_id: str, upload_id: str, caller: Caller = ANONYMOUS
    ) -> FileRecord:
        """Makes an upload's file live once every announced part has arrived."""
        _require_folder(folder_id, caller, "drive_id")
        _require_file_id(file_id)
        _require_id("upload_id", upload_id)
        now = self.clock()
        mode = IGNORE

        def build(upload: Upload, parts: list[bytes]) -> tuple[FileRecord, bytes]:
            nonlocal mode
            _visible_to(caller, upload.record, file_id, folder_id)
            mode = upload.name_mode
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
                content_hash=content_hash(content),
                updated_at_ns=now,
            )
            return record._replace(expires_at_ns=expiry(record, now)), content

        def naming_of_upload(record: FileRecord, taken: Mapping[str, str]) -> FileRecord:
            naming = naming_for(mode)
            return record if naming is None else naming.settle(record, taken)

        # The mode is the upload's own, known once `build` has read it: the prefix must cover
        # what any mode looks for, and the stem `auto_rename` uses does.
        naming = Naming(prefix=lambda name: split_extension(name)[0], settle=naming_of_upload)
        event = self._event(file_id, "create", caller)
        record = await self.store.finish_upload(
            file_id, upload_id, now, build, audit=event, naming=naming
        )
        if record is None:
            raise NotFound(f"upload {upload_id!r} of file {file_id!r} is not pending")
        return record

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


def _require_folder(folder_id: str, caller: Caller, field: str = "folder_id") -> str:
    _require_id(field, folder_id)
    if not caller.may_use(folder_id):
        raise PermissionDenied(f"{caller.subject} may not use folder {folder_id!r}")
    return folder_id


def _visible_to(
    caller: Caller, record: FileRecord | None, file_id: str, folder_id: str | None = None
) -> FileRecord:
    """The record, if it exists and is in one of the caller's folders (and in `folder_id`,
    when the request names one): a file elsewhere is NOT_FOUND, so nobody learns it exists."""
    if (
        record is None
        or not caller.may_use(record.folder_id)
        or (folder_id is not None and record.folder_id != folder_id)
    ):
        raise _not_found(file_id)
    return record


def _too_large(size: int) -> ResourceExhausted:
    return ResourceExhausted(f"the file would be {size} bytes; at most {MAX_CONTENT_BYTES} allowed")


async def _hash(content: bytes) -> str:
    """hashlib releases the GIL on large inputs: a thread keeps the loop serving meanwhile."""
    if len(content) > HASH_OFF_LOOP_BYTES:
        return await asyncio.to_thread(content_hash, content)
    return content_hash(content)


def _touch(record: FileRecord, now_ns: int) -> FileRecord:
    return record._replace(expires_at_ns=expiry(record, now_ns))


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"file {file_id!r} not found")
