"""File.Update's mask rules (AIP-134, AIP-161), as pure functions of messages and records.

As the public doc of the API words them:

* only the fields named in `update_mask` change; a named field absent from the request is reset
  to its default;
* an empty mask, a missing mask and `*` all mean every updatable field;
* `labels` replaces the whole map, ``labels.<key>`` sets or removes one entry;
* unknown, output-only and immutable paths are INVALID_ARGUMENT and nothing changes.

`plan_update` reads a mask before any store is touched; `apply_patch` gives the record after
the Update; `changed_paths` names, for the audit trail, what an Update really changed.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

from files_api.domain.limits import DEFAULT_POLICY, DEFAULT_TTL_DAYS
from files_api.domain.records import touch, validate
from files_api.errors import InvalidArgument
from files_api.masks import MalformedPath, quote_segment, split_path

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2

    from files_api.store import FileRecord

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
    return read_mask(key) if sum(map(len, key)) > _CACHED_MASK_CHARS else read_cached(key)


_CACHED_MASK_CHARS = 512


def read_mask(paths: tuple[str, ...]) -> Patch:
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


read_cached = functools.lru_cache(maxsize=256)(read_mask)


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
    )
    validate(updated, record)
    return touch(updated, now_ns)  # an Update is activity


def changed_paths(old: FileRecord, new: FileRecord) -> tuple[str, ...]:
    """The paths whose values differ, as an audit record lists them: FileService's mask
    paths, then the PDS attributes."""
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
    # The PDS face's own attributes, as PDS names them. Its label list is a bare `labels`,
    # which no FileService path is (those name a key: `labels.<key>`).
    for field, path in _PDS_PATHS:
        if getattr(old, field) != getattr(new, field):
            paths.append(path)
    return tuple(paths)


_PDS_PATHS = (
    ("hidden", "hidden"),
    ("starred", "starred"),
    ("local_modified_at_ns", "local_modified_at"),
    ("pds_labels", "labels"),
)
