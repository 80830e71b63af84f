"""A record as clients are shown it: the `File` message, and its bytes on the wire.

The domain answers with it; the SQL backends also keep its bytes beside each row, written in
the same statement as the row, so that a List page is those bytes joined, not Files built again
(`ListFilesResponse` is its repeated field's bytes concatenated, then the token).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

if TYPE_CHECKING:
    from collections.abc import Iterable

    from files_api.store import FileRecord

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
    """What the SQL backends keep in each row's `wire` column."""
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


def list_page_bytes(files: Iterable[bytes], next_page_token: str) -> bytes:
    """A serialized ListFilesResponse from its Files' bytes, none of them parsed."""
    parts: list[bytes] = []
    for wire in files:
        parts += (_file_prefix(len(wire)), wire)
    if next_page_token:
        token = next_page_token.encode()
        parts += (_TOKEN_TAG, _varint(len(token)), token)
    return b"".join(parts)
