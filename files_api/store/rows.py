"""How the SQL backends (SQLite, PostgreSQL) lay out records, uploads and audit events in
rows, and how their append-only migrations are applied: shared so neither writes it again."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
from typing import TYPE_CHECKING

from files_api.store import FileRecord, Upload
from files_api.store.wire import file_bytes, list_entry

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from files_api.store import AuditEvent


FIELDS = FileRecord._fields
COLUMNS = ", ".join(FIELDS)
"""The SQL backends' column order for a FileRecord, as `record_row` lays out its values."""

# Positions a backend may store in its own way.
DESCRIPTION, LABELS, PDS_LABELS = (FIELDS.index(f) for f in ("description", "labels", "pds_labels"))
HIDDEN, STARRED = FIELDS.index("hidden"), FIELDS.index("starred")


def _column_value(index: int, value: object) -> object:
    """A record's value as the SQL backends store it: both label sets as JSON text."""
    if index == LABELS:
        return json.dumps(dict(value), ensure_ascii=False, sort_keys=True)  # type: ignore[call-overload]
    if index == PDS_LABELS:
        return json.dumps(list(value), ensure_ascii=False) if value else "[]"  # type: ignore[call-overload]
    return value


def record_row(record: FileRecord) -> list[object]:
    """The record's values in COLUMNS order, both label sets as JSON text."""
    row: list[object] = list(record)
    for index in (LABELS, PDS_LABELS):
        row[index] = _column_value(index, row[index])
    return row


END_OF_LOG = 2**63 - 1
"""Past every audit record's `seq` (a signed 64-bit integer on both SQL backends)."""


@dataclasses.dataclass(frozen=True)
class Listed:
    """The column in which a backend keeps each row's File for List, and the File's form there:
    a row is written with its record's columns and then this one."""

    column: str
    encode: Callable[[FileRecord], bytes]

    @property
    def columns(self) -> str:
        """The columns a `files` row is written with, in `row`'s order."""
        return f"{COLUMNS}, {self.column}"

    def row(self, record: FileRecord) -> list[object]:
        """`record_row`, then the File in this form."""
        row = record_row(record)
        row.append(self.encode(record))
        return row

    def changes(self, old: FileRecord, new: FileRecord) -> tuple[tuple[str, ...], list[object]]:
        """The columns (never the id) whose values differ between two versions of a record, and
        their new values as `record_row` gives them, with the File again when anything
        changed: an UPDATE that writes only these leaves the indexes on the others alone and
        encodes no label set that did not change."""
        names: list[str] = []
        values: list[object] = []
        for index in range(1, len(FIELDS)):
            value = new[index]
            if value is not old[index] and value != old[index]:
                names.append(FIELDS[index])
                values.append(_column_value(index, value))
        if names:
            names.append(self.column)
            values.append(self.encode(new))
        return tuple(names), values


FILE_BYTES = Listed("wire", file_bytes)
"""PostgreSQL's: the File's bytes, as every release that has the column writes them."""

LIST_ENTRIES = Listed("entry", list_entry)
"""SQLite's: the File as a `ListFilesResponse` entry, so a page is joined in its statement."""


@functools.lru_cache(maxsize=1024)
def _label_map(text: str) -> Mapping[str, str]:
    """Files share a few label sets, and a List page decodes a hundred: each set once, read-only
    so that records may share it (at most ~8 KiB each, so the cache stays small)."""
    return types.MappingProxyType(json.loads(text))


def row_record(row: Sequence[object]) -> FileRecord:
    """The record from values in COLUMNS order with both label sets as JSON text (and the
    flags as SQLite's 0 and 1 or as booleans)."""
    values = list(row)
    values[LABELS] = _label_map(str(values[LABELS]))
    pds_labels = str(values[PDS_LABELS])
    values[PDS_LABELS] = () if pds_labels == "[]" else tuple(json.loads(pds_labels))
    values[HIDDEN] = bool(values[HIDDEN])
    values[STARRED] = bool(values[STARRED])
    return FileRecord._make(values)


def audit_row(event: AuditEvent) -> tuple[str, int, str, str]:
    """The leading columns both SQL backends store an event under."""
    return (event.file_id, event.time_ns, event.subject, event.action)


Migration = tuple[str, ...]
"""The statements that bring a SQL backend's schema from version N to N+1."""


def pending_migrations(
    migrations: Sequence[Migration], version: int
) -> list[tuple[int, Migration]]:
    """The migrations a schema at `version` still needs, each with the version it brings.

    Both SQL backends keep an append-only list and apply what this returns in one transaction
    (SQLite records the version in `PRAGMA user_version`, PostgreSQL in `schema_version`). A
    schema newer than the list needs nothing: an older replica runs on during an upgrade.
    """
    return list(enumerate(migrations[version:], start=version + 1))


def upload_json(upload: Upload) -> str:
    """The upload's record and name mode, as a backend keeps them in one text column."""
    return json.dumps([record_row(upload.record), upload.name_mode], ensure_ascii=False)


def upload_row(upload: Upload) -> tuple[object, ...]:
    """An upload's row in `uploads` (file id, upload id, parts, expiry, record as text,
    revision), as both SQL backends store it, staged or imported."""
    return (
        upload.record.id,
        upload.upload_id,
        upload.parts,
        upload.expires_at_ns,
        upload_json(upload),  # text, not jsonb: jsonb cannot hold U+0000
        upload.revision,
    )


def upload_from_json(
    text: str, upload_id: str, parts: int, expires_at_ns: int, revision: int
) -> Upload:
    row, name_mode = json.loads(text)
    return Upload(row_record(row), upload_id, parts, expires_at_ns, name_mode, revision)
