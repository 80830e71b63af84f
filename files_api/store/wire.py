"""A record as clients are shown it: the `File` message, and its bytes on the wire.

The domain answers with it; the SQL backends also keep its bytes with each row, written in
the same statement as the row, so that a List page is those bytes joined, not Files built again
(`ListFilesResponse` is its repeated field's entries concatenated, then the token). SQLite keeps
each File as such an entry, field tag and length included, and joins a page in one statement;
PostgreSQL keeps the File's bytes, as replicas of earlier releases write them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2

from files_api.store import Listing

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from files_api.store import Cursor, FileRecord

_FILES_TAG = b"\x0a"  # ListFilesResponse.files: field 1, length-delimited
_TOKEN_TAG = b"\x12"  # ListFilesResponse.next_page_token: field 2, length-delimited


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


def file_bytes(record: FileRecord) -> bytes:
    """What PostgreSQL keeps in each row's `wire` column (`rows.FILE_BYTES`)."""
    return fill(file_pb2.File(), record).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@functools.lru_cache(maxsize=1 << 16)
def _file_prefix(size: int) -> bytes:
    """A File field's tag and length: a page of 100 asks for 100 of them, of few lengths, and
    the varint loop in Python took a third of the page's time."""
    return _FILES_TAG + _varint(size)


def list_entry(record: FileRecord) -> bytes:
    """The record's File as one `ListFilesResponse.files` entry: what SQLite keeps per row."""
    return entries((file_bytes(record),))


def entries(files: Iterable[bytes]) -> bytes:
    """Files' bytes as `ListFilesResponse.files` entries, joined, none of them parsed."""
    parts: list[bytes] = []
    for wire in files:
        parts += (_file_prefix(len(wire)), wire)
    return b"".join(parts)


def listing(files: Sequence[bytes]) -> Listing:
    """A page of Files' bytes as the store answers it."""
    return Listing(
        entries(files), len(_file_prefix(len(files[-1]))) + len(files[-1]) if files else 0
    )


def entry_sizes(joined: bytes) -> Iterator[int]:
    """The size of each entry in joined entries, in order (read only from their lengths)."""
    offset = 0
    while offset < len(joined):
        start, size, shift = offset, 0, 0
        offset += 1  # the field's tag
        while True:
            byte = joined[offset]
            offset += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        offset += size
        yield offset - start


def entry_cursor(entry: bytes) -> Cursor:
    """Where a listing in NEWEST_FIRST order goes on after this entry's file."""
    file = file_service_pb2.ListFilesResponse.FromString(entry).files[0]
    return (file.created_at.seconds * 10**9 + file.created_at.nanos, file.id)


def list_page_bytes(joined: bytes, next_page_token: str) -> bytes:
    """A serialized ListFilesResponse from its joined entries and its token."""
    if not next_page_token:
        return joined
    token = next_page_token.encode()
    return b"".join((joined, _TOKEN_TAG, _varint(len(token)), token))
