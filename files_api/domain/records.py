"""What a stored file may be: validation, ids, expiry, who may see it, and the File (with its
etag) that clients are shown of it. Every face's calls build and check records through here."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import string
from typing import TYPE_CHECKING, Any

from files_api_stubs.yandex.cloud.ai.common import common_pb2
from google.protobuf import timestamp_pb2

from files_api.domain.limits import (
    ACTIVITY_SLACK_NS,
    DEFAULT_POLICY,
    DEFAULT_TTL_DAYS,
    HASH_OFF_LOOP_BYTES,
    MAX_CONTENT_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_LABELS,
    MAX_MIME_TYPE_CHARS,
    MAX_NAME_BYTES,
    MAX_PDS_LABEL_CHARS,
    MAX_PDS_LABELS,
    MAX_TTL_DAYS,
    NS_PER_DAY,
)
from files_api.errors import InvalidArgument, NotFound, PermissionDenied, PreconditionFailed
from files_api.store import Content, FileRecord, content_hash
from files_api.store.wire import to_proto

if TYPE_CHECKING:
    from collections.abc import Mapping

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.auth import Caller
    from files_api.store import AuditEvent

Policy = common_pb2.ExpirationConfig.ExpirationPolicy
_POLICIES = frozenset(Policy.values()) - {Policy.EXPIRATION_POLICY_UNSPECIFIED}
_STATIC = Policy.STATIC  # read once: each enum lookup through the wrapper costs about 1 us

_LABEL_KEY = re.compile(r"[a-z][-_./\\@0-9a-z]{0,62}")
_LABEL_VALUE = re.compile(r"[-_./\\@0-9a-z]{0,63}")
# RFC 6838 type/subtype tokens, then parameters of printable ASCII: it goes into a header.
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(?: *;[ -~]*)?", re.ASCII
)
# Unicode's control characters (category Cc): C0, DEL and C1.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]+")
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_record(
    folder_id: str,
    caller: Caller,
    now_ns: int,
    *,
    name: str,
    description: str,
    mime_type: str,
    size: int,
    policy: int = 0,
    ttl_days: int = 0,
    labels: Mapping[str, str] | None = None,
    hidden: bool = False,
    local_created_at_ns: int | None = None,
    local_modified_at_ns: int | None = None,
    pds_labels: tuple[str, ...] = (),
) -> FileRecord:
    """A new file's record, with a fresh id and the defaults for what was not given (a policy
    or ttl_days of 0 means the default), checked against every rule; raises InvalidArgument."""
    record = FileRecord(
        id=new_file_id(),
        folder_id=folder_id,
        name=name,
        description=description,
        mime_type=mime_type,
        created_by=caller.subject,
        created_at_ns=now_ns,
        updated_by=caller.subject,
        updated_at_ns=now_ns,
        expiration_policy=policy or DEFAULT_POLICY,
        ttl_days=ttl_days or DEFAULT_TTL_DAYS,
        expires_at_ns=0,
        labels={} if labels is None else labels,
        size=size,
        hidden=hidden,
        local_created_at_ns=local_created_at_ns,
        local_modified_at_ns=local_modified_at_ns,
        pds_labels=pds_labels,
    )
    validate(record)
    return touch(record, now_ns)


def require_mime_type(field: str, mime_type: str) -> str:
    if len(mime_type) > MAX_MIME_TYPE_CHARS or not _MIME_TYPE.fullmatch(mime_type):
        raise InvalidArgument.field(field, "must be a MIME type such as text/plain")
    return mime_type


def validate(record: FileRecord, stored: FileRecord | None = None) -> None:
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


# --- ids -----------------------------------------------------------------------------------


def require_id(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if len(value) > MAX_ID_CHARS or _CONTROL.search(value):
        raise InvalidArgument.field(
            field, f"must be at most {MAX_ID_CHARS} characters with no control characters"
        )
    return value


def require_file_id(value: str) -> str:
    """Ids are made here (`new_file_id`), so one with other characters names no file: saying so
    beats NOT_FOUND for `../../etc/passwd`, and no store or path ever sees such a string."""
    require_id("file_id", value)
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


def require_path_name(name: str) -> str:
    """PDS names are path segments: a `/` in one would be a folder we do not have."""
    if "/" in name:
        raise InvalidArgument.field("name", "must not contain '/' (folders are not supported)")
    if not name:
        raise InvalidArgument.field("name", "is required")
    return name


# --- who may see a file --------------------------------------------------------------------


def require_folder(folder_id: str, caller: Caller, field: str = "folder_id") -> str:
    require_id(field, folder_id)
    if not caller.may_use(folder_id):
        raise PermissionDenied(f"{caller.subject} may not use folder {folder_id!r}")
    return folder_id


def visible_to(
    caller: Caller, record: FileRecord | None, file_id: str, folder_id: str | None = None
) -> FileRecord:
    """The record, if it exists and is in one of the caller's folders (and in `folder_id`,
    when the request names one): a file elsewhere is NOT_FOUND, so nobody learns it exists."""
    if (
        record is None
        or not caller.may_use(record.folder_id)
        or (folder_id is not None and record.folder_id != folder_id)
    ):
        raise not_found(file_id)
    return record


def not_found(file_id: str) -> NotFound:
    return NotFound(f"file {file_id!r} not found")


# --- expiry --------------------------------------------------------------------------------


def expires_at(policy: int, ttl_days: int, created_at_ns: int, last_active_ns: int) -> int:
    start = created_at_ns if policy == _STATIC else last_active_ns
    return start + ttl_days * NS_PER_DAY


def touch(record: FileRecord, now_ns: int) -> FileRecord:
    """The record with its expiry from activity at `now_ns` (a SINCE_LAST_ACTIVE file lives
    ttl_days from then on; a STATIC one keeps its own)."""
    return record._replace(
        expires_at_ns=expires_at(
            record.expiration_policy, record.ttl_days, record.created_at_ns, now_ns
        )
    )


def activity(record: FileRecord, now_ns: int) -> FileRecord | None:
    """The record as a download at `now_ns` leaves it, or None when there is nothing to write.

    The rule for downloads, in one place: a STATIC file's expiry never moves; a
    SINCE_LAST_ACTIVE one's moves only forward, and only once it would move by ACTIVITY_SLACK_NS
    or more (so a file downloaded all day costs a write a minute, and its expires_at lags what
    its last download would set by less than that). Never backwards: an Update that lowered
    `ttl_days` meanwhile is not undone, and a download racing it does not shorten the file.
    """
    due = touch(record, now_ns).expires_at_ns
    if record.expiration_policy == _STATIC or due - record.expires_at_ns < ACTIVITY_SLACK_NS:
        return None
    return record._replace(expires_at_ns=due)


# --- content -------------------------------------------------------------------------------


def require_content_size(field: str, size: int) -> int:
    if size > MAX_CONTENT_BYTES:
        raise InvalidArgument.field(field, f"is {size} bytes; at most {MAX_CONTENT_BYTES} allowed")
    return size


async def hash_content(content: Content) -> str:
    """hashlib releases the GIL on large inputs: a thread keeps the loop serving meanwhile."""
    if len(content) > HASH_OFF_LOOP_BYTES:
        return await asyncio.to_thread(content_hash, content)
    return content_hash(content)


# --- what clients see ----------------------------------------------------------------------


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


def json_time(ns: int) -> str:
    """RFC 3339 in UTC with as many fraction digits as the nanoseconds need, as protobuf's JSON
    spells a Timestamp."""
    seconds, nanos = divmod(ns, 10**9)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).ToJsonString()


def audit_json(event: AuditEvent) -> dict[str, Any]:
    """An audit record as the history extension answers it and an archive's audit.jsonl holds
    it (its `fileId` with it)."""
    return {
        "fileId": event.file_id,
        "time": json_time(event.time_ns),
        "subject": event.subject,
        "action": event.action,
        "paths": list(event.paths),
        "requestId": event.request_id,
    }


def check_if_match(record: FileRecord, if_match: str | None) -> None:
    """An extension: `if-match` (gRPC metadata or HTTP header) makes a write conditional."""
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" in tags:
        return
    if etag(to_proto(record)) not in tags:
        raise PreconditionFailed(
            f"file {record.id!r} has changed since the etag in if-match was issued"
        )
