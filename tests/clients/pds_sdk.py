"""Drives a running server's PDS face with Alibaba Cloud's PDS SDK and prints what it saw as JSON.

Usage:
  pds_sdk.py files HTTP_ADDRESS DRIVE_ID              the file scenario, with no token
  pds_sdk.py auth HTTP_ADDRESS DRIVE_ID KEY OTHER_DRIVE_ID ROOT_KEY
                                                      a server with --auth-keys: KEY may use
                                                      DRIVE_ID only, ROOT_KEY every drive

Run by test_pds_sdk.py with .venv-clients' Python; the script only observes and reports, the test
decides what is right. The SDK (`alibabacloud-pds20220301`) POSTs JSON to /v2/file/<op>; it never
touches the part upload links nor the download link, so this script PUTs and GETs those itself,
as a PDS application does. test_pds_cross.py's script reuses `client` and `upload` from here.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from alibabacloud_pds20220301 import models
from alibabacloud_pds20220301.client import Client
from alibabacloud_tea_openapi.utils_models import Config
from Tea.exceptions import TeaException

if TYPE_CHECKING:
    from collections.abc import Callable

TEXT = "Привет, PDS!\n".encode() * 50
BLOB = bytes(range(256)) * 40 + b"\x00\r\n\xff"
LOCAL_CREATED_AT = "2020-01-02T03:04:05Z"
LOCAL_MODIFIED_AT = "2020-02-03T04:05:06Z"
UNKNOWN_ID = "nosuchfile0000000000"
# (name, content_type) of small uploads whose category and file_extension the test checks.
KINDS = [
    ("photo.jpg", "image/jpeg"),
    ("clip.mp4", "video/mp4"),
    ("song.mp3", "audio/mpeg"),
    ("readme.md", "text/markdown"),
    ("paper.pdf", "application/pdf"),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("sheet.xls", "application/vnd.ms-excel"),
    ("archive.tar.gz", "application/gzip"),
]
# Each update changes one field; the test checks that the others stay.
UPDATES: list[dict[str, Any]] = [
    {"name": "renamed.txt"},
    {"description": "second description"},
    {"labels": ["red", "blue"]},
    {"hidden": True},
    {"starred": True},
    {"local_modified_at": "2021-05-06T07:08:09Z"},
]
# (name, size): names, sizes, creation and update order each sort the files differently.
LISTED = [("e.txt", 30), ("c.txt", 10), ("a.txt", 50), ("d.txt", 20), ("b.txt", 40)]
ORDERS = [(key, d) for key in ("created_at", "updated_at", "name", "size") for d in ("ASC", "DESC")]
PAGE_LIMIT = 2
MAX_PAGES = 20
URL_SECONDS, TOO_MANY_SECONDS = 600, 1_000_000
OCCUPIED_SECONDS = 10


def client(address: str, token: str | None = None) -> Client:
    return Client(Config(endpoint=address, protocol="http", bearer_token=token))


def now_ms() -> int:
    return time.time_ns() // 10**6


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """What one SDK call came to: its status and body, or the SDK's error fields. The SDK
    raises `TeaException`s whose `statusCode` exists only when the error body was JSON."""
    try:
        response = call()
    except TeaException as e:
        status = getattr(e, "statusCode", None)
        return {"status": status, "code": e.code, "message": e.message, "data": e.data}
    body = response.body.to_map() if response.body is not None else None
    return {"status": response.status_code, "body": body}


def put(url: str, data: bytes) -> int:
    """PUTs one part as PDS clients do, with no Content-Type: a PDS upload link is signed for an
    empty one (urllib would add `application/x-www-form-urlencoded`, http.client adds none)."""
    target = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(target.netloc, timeout=10)
    try:
        path = urllib.parse.urlunsplit(("", "", target.path, target.query, ""))
        connection.request("PUT", path, body=data)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def fetch(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return {"status": response.status, "hex": response.read().hex()}
    except urllib.error.HTTPError as e:
        with e:
            return {"status": e.code}


def split(content: bytes, parts: int) -> list[bytes]:
    size = -(-len(content) // parts)
    return [content[i * size : (i + 1) * size] for i in range(parts)]


def upload(
    pds: Client,
    drive: str,
    name: str,
    content: bytes,
    *,
    parts: int = 1,
    content_type: str = "text/plain",
    **fields: Any,
) -> dict[str, Any]:
    """CreateFile, a PUT of each part to its link, CompleteFile: what each step answered, and
    the client's clock (ms) before and after."""
    before = now_ms()
    created = pds.create_file(
        models.CreateFileRequest(
            drive_id=drive,
            parent_file_id="root",
            name=name,
            type="file",
            size=len(content),
            content_type=content_type,
            part_info_list=[
                models.CreateFileRequestPartInfoList(part_number=n + 1) for n in range(parts)
            ],
            **fields,
        )
    ).body
    links = [part.upload_url for part in created.part_info_list or []]
    puts = [put(link, chunk) for link, chunk in zip(links, split(content, parts), strict=True)]
    completed = pds.complete_file(
        models.CompleteFileRequest(
            drive_id=drive, file_id=created.file_id, upload_id=created.upload_id
        )
    ).body
    return {
        "create": created.to_map(),
        "puts": puts,
        "file": completed.to_map(),
        "window_ms": [before, now_ms()],
    }


def get(pds: Client, drive: str, file_id: str) -> dict[str, Any]:
    got: dict[str, Any] = pds.get_file(
        models.GetFileRequest(drive_id=drive, file_id=file_id)
    ).body.to_map()
    return got


def walk(pds: Client, drive: str, order_by: str, direction: str) -> list[dict[str, Any]]:
    """ListFile page after page until next_marker is empty (or MAX_PAGES, a runaway)."""
    pages: list[dict[str, Any]] = []
    marker = None
    for _ in range(MAX_PAGES):
        body = pds.list_file(
            models.ListFileRequest(
                drive_id=drive,
                parent_file_id="root",
                order_by=order_by,
                order_direction=direction,
                limit=PAGE_LIMIT,
                marker=marker,
            )
        ).body
        pages.append(
            {"ids": [f.file_id for f in body.items or []], "next_marker": body.next_marker}
        )
        marker = body.next_marker
        if not marker:
            break
    return pages


def all_ids(pds: Client, drive: str) -> list[str]:
    return [i for page in walk(pds, drive, "created_at", "ASC") for i in page["ids"]]


def uploads_and_updates(pds: Client, drive: str) -> dict[str, Any]:
    one = upload(
        pds,
        drive,
        "notes.txt",
        TEXT,
        description="first description",
        local_created_at=LOCAL_CREATED_AT,
        local_modified_at=LOCAL_MODIFIED_AT,
    )
    two = upload(pds, drive, "blob.bin", BLOB, parts=2, content_type="application/octet-stream")
    report: dict[str, Any] = {"uploads": {}}
    for label, done, content in (("one part", one, TEXT), ("two parts", two, BLOB)):
        report["uploads"][label] = {
            **done,
            "get": get(pds, drive, done["file"]["file_id"]),
            "sent_sha1": hashlib.sha1(content).hexdigest().upper(),
            "sent_size": len(content),
        }
    report["kinds"] = {
        name: upload(pds, drive, name, b"x" * 10, content_type=content_type)["file"]
        for name, content_type in KINDS
    }
    file_id = one["file"]["file_id"]
    report["updates"] = []
    for change in UPDATES:
        returned = pds.update_file(
            models.UpdateFileRequest(drive_id=drive, file_id=file_id, **change)
        ).body.to_map()
        report["updates"].append(
            {"change": change, "returned": returned, "stored": get(pds, drive, file_id)}
        )
    return report


def names(pds: Client, drive: str) -> dict[str, Any]:
    """check_name_mode on create and update, in a drive of its own."""

    def jpeg(name: str, mode: str | None = None) -> dict[str, Any]:
        return upload(pds, drive, name, b"jpeg", content_type="image/jpeg", check_name_mode=mode)

    first = jpeg("a.jpg", "auto_rename")
    duplicate = jpeg("a.jpg", "ignore")
    renamed = jpeg("a.jpg", "auto_rename")

    # `b.jpg` and its renamings for each second of the next few: the next renaming needs a counter.
    start = int(time.time())
    stamps = [
        time.strftime("%Y%m%d_%H%M%S", time.gmtime(start + s)) for s in range(OCCUPIED_SECONDS)
    ]
    for name in ["b.jpg", *(f"b_{stamp}.jpg" for stamp in stamps)]:
        jpeg(name)
    countered = jpeg("b.jpg", "auto_rename")

    holder = renamed["file"]
    target = duplicate["file"]["file_id"]
    before = get(pds, drive, target)
    refused_update = outcome(
        lambda: pds.update_file(
            models.UpdateFileRequest(
                drive_id=drive, file_id=target, name=holder["name"], check_name_mode="refuse"
            )
        )
    )
    ids_before = all_ids(pds, drive)
    refused_create = outcome(
        lambda: pds.create_file(
            models.CreateFileRequest(
                drive_id=drive,
                parent_file_id="root",
                name=holder["name"],
                type="file",
                size=4,
                check_name_mode="refuse",
            )
        )
    )
    return {
        "first": first,
        "duplicate": duplicate,
        "renamed": renamed,
        "occupied_stamps": stamps,
        "countered": countered,
        "holder_id": holder["file_id"],
        "refused_update": {
            "answer": refused_update,
            "before": before,
            "after": get(pds, drive, target),
        },
        "refused_create": {
            "answer": refused_create,
            "ids_before": ids_before,
            "ids_after": all_ids(pds, drive),
        },
    }


def listing(pds: Client, drive: str) -> dict[str, Any]:
    """Files whose creation order, update order, names and sizes all differ, walked in pages."""
    files = [upload(pds, drive, name, b"x" * size)["file"] for name, size in LISTED]
    touched = files[1]["file_id"]
    pds.update_file(models.UpdateFileRequest(drive_id=drive, file_id=touched, description="later"))
    return {
        "files": [{k: f[k] for k in ("file_id", "name", "size")} for f in files],
        "touched": touched,
        "walks": {f"{key} {d}": walk(pds, drive, key, d) for key, d in ORDERS},
    }


def download(pds: Client, drive: str, file_id: str, expire_sec: int) -> dict[str, Any]:
    before = now_ms()
    answer = pds.get_download_url(
        models.GetDownloadUrlRequest(drive_id=drive, file_id=file_id, expire_sec=expire_sec)
    ).body.to_map()
    return {"answer": answer, "window_ms": [before, now_ms()], "fetched": fetch(answer["url"])}


def errors(pds: Client, drive: str, other_drive: str, file_id: str) -> dict[str, Any]:
    def create(**fields: Any) -> Callable[[], Any]:
        request = {"drive_id": drive, "parent_file_id": "root", "type": "file", "size": 1}
        return lambda: pds.create_file(models.CreateFileRequest(**{**request, **fields}))

    return {
        "unknown file": outcome(
            lambda: pds.get_file(models.GetFileRequest(drive_id=drive, file_id=UNKNOWN_ID))
        ),
        "slash in name on create": outcome(create(name="a/b.txt")),
        "slash in name on update": outcome(
            lambda: pds.update_file(
                models.UpdateFileRequest(drive_id=drive, file_id=file_id, name="a/b.txt")
            )
        ),
        "parent other than root": outcome(create(name="c.txt", parent_file_id="folder-1")),
        "folder": outcome(create(name="folder", type="folder")),
        "get from another drive": outcome(
            lambda: pds.get_file(models.GetFileRequest(drive_id=other_drive, file_id=file_id))
        ),
        "delete from another drive": outcome(
            lambda: pds.delete_file(models.DeleteFileRequest(drive_id=other_drive, file_id=file_id))
        ),
    }


def files(address: str, drive: str) -> dict[str, Any]:
    pds = client(address)  # no token: the server is anonymous
    report = uploads_and_updates(pds, drive)
    one = report["uploads"]["one part"]["file"]["file_id"]
    two = report["uploads"]["two parts"]["file"]["file_id"]
    report["empty token get"] = outcome(
        lambda: client(address, "").get_file(models.GetFileRequest(drive_id=drive, file_id=two))
    )
    report["names"] = names(pds, f"{drive}-names")
    report["listing"] = listing(pds, f"{drive}-list")
    report["download"] = download(pds, drive, two, URL_SECONDS)
    report["capped download"] = download(pds, drive, two, TOO_MANY_SECONDS)
    report["sent_two_hex"] = BLOB.hex()
    report["errors"] = errors(pds, drive, f"{drive}-other", two)
    report["after cross-drive delete"] = outcome(
        lambda: pds.get_file(models.GetFileRequest(drive_id=drive, file_id=two))
    )
    report["delete"] = outcome(
        lambda: pds.delete_file(models.DeleteFileRequest(drive_id=drive, file_id=one))
    )
    report["get after delete"] = outcome(
        lambda: pds.get_file(models.GetFileRequest(drive_id=drive, file_id=one))
    )
    report["deleted_id"] = one
    report["listed after delete"] = all_ids(pds, drive)
    return report


def auth(address: str, drive: str, key: str, other_drive: str, root_key: str) -> dict[str, Any]:
    mine = client(address, key)
    own = upload(mine, drive, "keyed.txt", b"keyed\n")["file"]
    theirs = upload(client(address, root_key), other_drive, "theirs.txt", b"theirs\n")["file"]
    request = models.ListFileRequest(drive_id=drive, parent_file_id="root")
    return {
        "own": own,
        "listed": [f.file_id for f in mine.list_file(request).body.items or []],
        "wrong key": outcome(lambda: client(address, "not-a-key").list_file(request)),
        "no key": outcome(lambda: client(address).list_file(request)),
        "other drive list": outcome(
            lambda: mine.list_file(
                models.ListFileRequest(drive_id=other_drive, parent_file_id="root")
            )
        ),
        "other drive create": outcome(
            lambda: mine.create_file(
                models.CreateFileRequest(
                    drive_id=other_drive, parent_file_id="root", name="x.txt", type="file"
                )
            )
        ),
        "their file through own drive": outcome(
            lambda: mine.get_file(models.GetFileRequest(drive_id=drive, file_id=theirs["file_id"]))
        ),
    }


def direct_loopback() -> None:
    """The SDK honours HTTP(S)_PROXY but ignores NO_PROXY: keep its loopback calls direct."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(variable, None)


def main(argv: list[str]) -> None:
    direct_loopback()
    scenario, *args = argv
    scenarios: dict[str, Callable[..., dict[str, Any]]] = {"files": files, "auth": auth}
    report = scenarios[scenario](*args)
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main(sys.argv[1:])
