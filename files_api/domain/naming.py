"""The name-conflict policy (PDS's `check_name_mode`), shared by both faces.

* `ignore` (the default): several files of a folder may share a name;
* `auto_rename`: a name another live file of the folder holds gets the write's time (UTC)
  before its extension, `a.jpg` -> `a_20261123_170501.jpg`, then a counter if that is taken
  too (`a_20261123_170501_1.jpg`); a long stem is cut so that the new name still fits;
* `refuse`: such a write fails with ALREADY_EXISTS naming the file that holds the name.

Unnamed files never conflict. The store applies the policy inside the write's transaction
(see `files_api.store.Naming`), so two writes cannot both take one name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from files_api.domain.limits import MAX_NAME_BYTES
from files_api.errors import AlreadyExists, InvalidArgument
from files_api.store import Naming

if TYPE_CHECKING:
    from collections.abc import Mapping

    from files_api.store import FileRecord

IGNORE, AUTO_RENAME, REFUSE = MODES = ("ignore", "auto_rename", "refuse")
MAX_RENAMES = 10_000


def parse_mode(value: str | None, field: str = "check_name_mode") -> str:
    if value is None or value == "":
        return IGNORE
    if value not in MODES:
        raise InvalidArgument.field(field, f"must be one of {', '.join(MODES)}, not {value!r}")
    return value


def split_extension(name: str) -> tuple[str, str]:
    """`a.tar.gz` -> (`a.tar`, `.gz`); a name with no dot past its first character has none."""
    stem, dot, extension = name.rpartition(".")
    return (stem, dot + extension) if stem else (name, "")


def naming_for(mode: str) -> Naming | None:
    """What the store needs to apply `mode`; None for `ignore`, which needs nothing."""
    if mode == REFUSE:
        return Naming(prefix=lambda name: name, settle=_refuse)
    if mode == AUTO_RENAME:
        return Naming(prefix=lambda name: _renamable(name)[0], settle=_auto_rename)
    return None


# What a renaming adds: `_20261123_170501`, then `_N` for N below MAX_RENAMES.
_RENAMING_BYTES = len("_20261123_170501") + len(f"_{MAX_RENAMES - 1}")


def _renamable(name: str) -> tuple[str, str]:
    """The stem and extension a renaming of `name` is built from: the stem cut (at a
    character) so that every renaming still fits MAX_NAME_BYTES, and the extension too when
    it alone leaves no room."""
    stem, extension = split_extension(name)
    if len(extension.encode()) + _RENAMING_BYTES >= MAX_NAME_BYTES:
        stem, extension = name, ""
    room = MAX_NAME_BYTES - _RENAMING_BYTES - len(extension.encode())
    return stem.encode()[:room].decode(errors="ignore"), extension


def _refuse(record: FileRecord, taken: Mapping[str, str]) -> FileRecord:
    holder = taken.get(record.name) if record.name else None
    if holder is not None:
        raise AlreadyExists(
            f"file {holder!r} in folder {record.folder_id!r} is already named {record.name!r}",
            resource=holder,
        )
    return record


def _auto_rename(record: FileRecord, taken: Mapping[str, str]) -> FileRecord:
    if not record.name or record.name not in taken:
        return record
    stem, extension = _renamable(record.name)
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime(record.updated_at_ns // 10**9))
    for counter in range(MAX_RENAMES):
        name = f"{stem}_{stamp}{f'_{counter}' if counter else ''}{extension}"
        if name not in taken:
            return record._replace(name=name)
    raise AlreadyExists(
        f"{MAX_RENAMES} files in folder {record.folder_id!r} already hold renamings of"
        f" {record.name!r}",
        resource=taken[record.name],
    )
