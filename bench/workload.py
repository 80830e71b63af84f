"""What the benchmark sends and what the floor answers: one place for both, so they match.

Requests go to h2load as gRPC frames (a 5-byte prefix — compression flag 0 and a 4-byte
big-endian length — then the serialized message, as the gRPC-over-HTTP/2 spec words it).
"""

from __future__ import annotations

import dataclasses
import json
import random
import struct

from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2
from google.protobuf import field_mask_pb2, timestamp_pb2

SERVICE = "yandex.cloud.ai.files.v1.FileService"

FOLDER_ID = "b1gbenchfolder"
LIST_FOLDER_ID = "b1gbenchlistfolder"
CREATE_FOLDER_ID = "b1gbenchcreatefolder"
LIST_PAGE_SIZE = 100
NAME = "bench.txt"
DESCRIPTION = "a file the benchmark reads and updates"
LABELS = {"team": "ml", "env": "bench"}
CONTENT = b"benchmark content\n" * 8

# One instant with nine-digit nanos, so the floor's timestamps are as long as real ones.
_NOW = timestamp_pb2.Timestamp(seconds=1_790_000_000, nanos=123_456_789)
_EXPIRES = timestamp_pb2.Timestamp(seconds=1_790_604_800, nanos=123_456_789)


def grpc_frame(message: bytes) -> bytes:
    """One uncompressed gRPC length-prefixed message."""
    return struct.pack(">BI", 0, len(message)) + message


def constant_file() -> file_pb2.File:
    """The floor's answer: every field set, sized like the files the benchmark makes."""
    return file_pb2.File(
        id="bq7k3xw9m2p5r8t1v4y6",
        folder_id=FOLDER_ID,
        name=NAME,
        description=DESCRIPTION,
        mime_type="text/plain",
        created_by="anonymous",
        created_at=_NOW,
        updated_by="anonymous",
        updated_at=_NOW,
        expiration_config=common_pb2.ExpirationConfig(
            expiration_policy=common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE, ttl_days=7
        ),
        expires_at=_EXPIRES,
        labels=LABELS,
    )


def constant_page() -> file_service_pb2.ListFilesResponse:
    # A page token of the length ours issues (folder, time and id, sealed and base64'd).
    return file_service_pb2.ListFilesResponse(
        files=[constant_file()] * LIST_PAGE_SIZE, next_page_token="t" * 96
    )


def create_request(
    content: bytes = CONTENT, folder_id: str = FOLDER_ID, name: str = NAME
) -> file_service_pb2.CreateFileRequest:
    # No mime_type, as a client that leaves it to the server: detection is part of the work.
    return file_service_pb2.CreateFileRequest(
        folder_id=folder_id, name=name, description=DESCRIPTION, content=content, labels=LABELS
    )


def update_request(file_id: str) -> file_service_pb2.UpdateFileRequest:
    return file_service_pb2.UpdateFileRequest(
        file_id=file_id,
        update_mask=field_mask_pb2.FieldMask(paths=["name", "description"]),
        name="renamed-" + NAME,
        description="updated by the benchmark",
    )


def update_name_request(file_id: str, name: str) -> file_service_pb2.UpdateFileRequest:
    return file_service_pb2.UpdateFileRequest(
        file_id=file_id, update_mask=field_mask_pb2.FieldMask(paths=["name"]), name=name
    )


def update_label_request(file_id: str) -> file_service_pb2.UpdateFileRequest:
    return file_service_pb2.UpdateFileRequest(
        file_id=file_id,
        update_mask=field_mask_pb2.FieldMask(paths=["labels.stage"]),
        labels={"stage": "two"},
    )


def get_request(file_id: str) -> file_service_pb2.GetFileRequest:
    return file_service_pb2.GetFileRequest(file_id=file_id)


def get_url_request(file_id: str) -> file_service_pb2.GetFileUrlRequest:
    return file_service_pb2.GetFileUrlRequest(file_id=file_id)


def list_request(folder_id: str = LIST_FOLDER_ID) -> file_service_pb2.ListFilesRequest:
    return file_service_pb2.ListFilesRequest(folder_id=folder_id, page_size=LIST_PAGE_SIZE)


@dataclasses.dataclass(frozen=True)
class RestCall:
    """One REST request: what h2load repeats and what the probes send."""

    method: str
    path: str
    body: bytes


def rest_update(file_id: str) -> RestCall:
    """`update_request` over REST, as the cloud's users send it: the mask as one camelCase string
    (AIP-161 over HTTP), JSON fields in lowerCamel."""
    body = {
        "updateMask": "name,description",
        "name": "renamed-" + NAME,
        "description": "updated by the benchmark",
    }
    return RestCall("PATCH", f"/files/v1/files/{file_id}", json.dumps(body).encode())


DOWNLOAD_SIZES = {"download_1m": 1024 * 1024, "download_64k": 64 * 1024}
"""The download part's files by scenario key: what ours stores and the floor holds in memory."""


def download_content(size: int) -> bytes:
    """The bytes of a download file of `size` bytes, alike on ours and on the floor."""
    return random_content(size)


def rest_download(path: str) -> RestCall:
    """A GET of a download link's path and query (ours: signed; the floor: any)."""
    return RestCall("GET", path, b"")


def json_array(size: int) -> bytes:
    """`[1,1,...,1]` of exactly `size` bytes (at least 3), a newline last when `size` is even:
    text that a server sniffing only the ends of big content should call application/json."""
    if size < 3:
        raise ValueError(f"a JSON array takes at least 3 bytes, not {size}")
    if size % 2:
        return b"[" + b"1," * ((size - 3) // 2) + b"1]"
    return b"[" + b"1," * ((size - 4) // 2) + b"1]\n"


def random_content(size: int) -> bytes:
    """`size` bytes that look random, the same on every run: a fresh os.urandom could, once in
    a few thousand runs, open with a file signature that makes them another type than
    application/octet-stream."""
    return random.Random(16).randbytes(size)
