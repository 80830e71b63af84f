"""Drives a running server with the official `yandexcloud` stubs and prints what it saw as JSON.

Usage: official_stubs.py HOST:PORT. Run by test_official_clients.py with .venv-clients' Python;
the script only observes and reports, the test decides what is right.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2
from yandex.cloud.ai.common.common_pb2 import ExpirationConfig
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1.file_service_pb2_grpc import FileServiceStub

FOLDER = "folder-official-stubs"
OTHER_FOLDER = "folder-official-stubs-other"
CONTENT = bytes(range(256)) * 64 + b"\x00\r\n\xff"
MIME_TYPE = "application/x-official-stubs"
PAGE_SIZE = 2
EXTRA_FILES = 4
MAX_PAGES = 20

STATIC = ExpirationConfig.STATIC
SINCE_LAST_ACTIVE = ExpirationConfig.SINCE_LAST_ACTIVE

# (step, update_mask paths, request fields): every request also carries values for fields its
# mask leaves out, which must not be applied.
UPDATES: list[tuple[str, list[str], dict[str, Any]]] = [
    (
        "name",
        ["name"],
        {
            "name": "renamed.bin",
            "description": "ignored",
            "labels": {"ignored": "x"},
            "expiration_config": ExpirationConfig(expiration_policy=SINCE_LAST_ACTIVE, ttl_days=99),
        },
    ),
    ("description", ["description"], {"name": "ignored", "description": "second description"}),
    ("plain label key", ["labels.env"], {"labels": {"env": "dev", "ignored": "x"}}),
    ("backticked label key", ["labels.`team.name`"], {"labels": {"team.name": "platform"}}),
    ("label key absent from request", ["labels.keep"], {"labels": {"env": "ignored"}}),
    ("whole labels", ["labels"], {"labels": {"a": "1", "b": "2"}}),
    (
        "ttl_days alone",
        ["expiration_config.ttl_days"],
        {"expiration_config": ExpirationConfig(expiration_policy=SINCE_LAST_ACTIVE, ttl_days=30)},
    ),
    (
        "expiration_policy alone",
        ["expiration_config.expiration_policy"],
        {"expiration_config": ExpirationConfig(expiration_policy=SINCE_LAST_ACTIVE, ttl_days=1)},
    ),
    ("empty mask", [], {"name": "final.bin", "labels": {"z": "9"}}),
]


def timestamp_ns(timestamp: Any) -> int:
    return int(timestamp.seconds) * 10**9 + int(timestamp.nanos)


def file_json(file: Any) -> dict[str, Any]:
    return {
        "id": file.id,
        "folder_id": file.folder_id,
        "name": file.name,
        "description": file.description,
        "mime_type": file.mime_type,
        "labels": dict(file.labels),
        "expiration_policy": ExpirationConfig.ExpirationPolicy.Name(
            file.expiration_config.expiration_policy
        ),
        "ttl_days": file.expiration_config.ttl_days,
        "created_by": file.created_by,
        "updated_by": file.updated_by,
        "created_at_ns": timestamp_ns(file.created_at),
        "updated_at_ns": timestamp_ns(file.updated_at),
        "expires_at_ns": timestamp_ns(file.expires_at),
        "nanos": [file.created_at.nanos, file.updated_at.nanos, file.expires_at.nanos],
    }


def error_json(error: grpc.RpcError) -> dict[str, Any]:
    """The status code and any google.rpc.BadRequest field violations in its details."""
    assert isinstance(error, grpc.Call)
    violations = []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    violations.extend(
                        {"field": v.field, "description": v.description}
                        for v in bad_request.field_violations
                    )
    return {"code": error.code().name, "message": error.details(), "violations": violations}


def call_error(call: Any, request: Any) -> dict[str, Any]:
    try:
        call(request, timeout=10)
    except grpc.RpcError as e:
        return error_json(e)
    return {"code": "OK"}


def download(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read()
            return {
                "status": response.status,
                "content_type": response.headers["Content-Type"],
                "content_hex": body.hex(),
            }
    except urllib.error.HTTPError as e:
        with e:
            return {"status": e.code, "content_type": e.headers["Content-Type"]}


def walk_list(stub: FileServiceStub) -> list[dict[str, Any]]:
    pages = []
    token = ""
    for _ in range(MAX_PAGES):
        response = stub.List(
            fs.ListFilesRequest(folder_id=FOLDER, page_size=PAGE_SIZE, page_token=token),
            timeout=10,
        )
        pages.append(
            {"ids": [f.id for f in response.files], "next_page_token": response.next_page_token}
        )
        if not response.files:
            break
        token = response.next_page_token
    return pages


def main(address: str) -> None:
    seen: dict[str, Any] = {"content_hex": CONTENT.hex(), "mime_type": MIME_TYPE}
    with grpc.insecure_channel(address) as channel:
        stub = FileServiceStub(channel)
        created = stub.Create(
            fs.CreateFileRequest(
                folder_id=FOLDER,
                name="report.bin",
                description="first description",
                mime_type=MIME_TYPE,
                content=CONTENT,
                labels={"env": "prod", "keep": "yes", "team.name": "core"},
                expiration_config=ExpirationConfig(expiration_policy=STATIC, ttl_days=3),
            ),
            timeout=10,
        )
        seen["created"] = file_json(created)
        seen["got"] = file_json(stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10))

        seen["updates"] = []
        for step, paths, fields in UPDATES:
            request = fs.UpdateFileRequest(
                file_id=created.id, update_mask=field_mask_pb2.FieldMask(paths=paths), **fields
            )
            updated = stub.Update(request, timeout=10)
            got = stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10)
            seen["updates"].append(
                {"step": step, "updated": file_json(updated), "got": file_json(got)}
            )

        bad_mask = fs.UpdateFileRequest(
            file_id=created.id,
            update_mask=field_mask_pb2.FieldMask(paths=["name", "no_such_field"]),
            name="must not be applied",
        )
        seen["invalid_mask"] = call_error(stub.Update, bad_mask)
        seen["after_invalid_mask"] = file_json(
            stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10)
        )

        seen["extra_ids"] = [
            stub.Create(
                fs.CreateFileRequest(
                    folder_id=FOLDER, name=f"extra-{i}.txt", content=b"extra %d" % i
                ),
                timeout=10,
            ).id
            for i in range(EXTRA_FILES)
        ]
        seen["other_folder_id"] = stub.Create(
            fs.CreateFileRequest(folder_id=OTHER_FOLDER, content=b"elsewhere"), timeout=10
        ).id
        seen["pages"] = walk_list(stub)

        before_download = stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10)
        url = stub.GetUrl(fs.GetFileUrlRequest(file_id=created.id), timeout=10).url
        seen["url"] = url
        seen["download"] = download(url)
        seen["expires_at_ns_around_download"] = [
            timestamp_ns(before_download.expires_at),
            timestamp_ns(stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10).expires_at),
        ]

        stub.Delete(fs.DeleteFileRequest(file_id=created.id), timeout=10)
        seen["get_after_delete"] = call_error(stub.Get, fs.GetFileRequest(file_id=created.id))
        seen["delete_after_delete"] = call_error(
            stub.Delete, fs.DeleteFileRequest(file_id=created.id)
        )
        seen["download_after_delete"] = download(url)
    json.dump(seen, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
