"""Alibaba Cloud's PDS SDK (`alibabacloud-pds20220301`) against `python -m server`'s PDS face.

tests/clients/pds_sdk.py runs each scenario once per store in the clients' environment and
reports what it observed; each test here checks one part of that report. A PDS drive is one of
our folders, and every file lives in its root.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest

from files_api.auth import add_key
from tests.support import run_client, server_process

if TYPE_CHECKING:
    from pathlib import Path

Report = dict[str, Any]

DRIVE = "drive-pds-sdk"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MAX_EXPIRE_SEC = 115_200
# Mirrors of the script's constants, so each expectation reads in one place.
LOCAL_CREATED_AT, LOCAL_MODIFIED_AT = "2020-01-02T03:04:05Z", "2020-02-03T04:05:06Z"
PAGE_LIMIT = 2
UPDATABLE = ("name", "description", "labels", "hidden", "starred", "local_modified_at")
UNCHANGING = ("drive_id", "file_id", "created_at", "size", "content_hash", "content_type")


@pytest.fixture(scope="module")
def report(module_store_url: str) -> Report:
    with server_process("--store", module_store_url) as server:
        result = run_client("pds_sdk.py", "files", server.http_address, DRIVE, timeout=120)
    observed: Report = json.loads(result.stdout)
    observed["http_address"] = server.http_address
    return observed


def ms(stamp: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 UTC time such as 2019-08-20T06:51:27.292Z."""
    parsed = datetime.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == datetime.timedelta(0), stamp
    return round(parsed.timestamp() * 1000)


def second(epoch_ms: int) -> str:
    return time.strftime("%Y%m%d_%H%M%S", time.gmtime(epoch_ms // 1000))


def stable(file: dict[str, Any]) -> dict[str, Any]:
    """The file without its download_url, whose signature changes with the second it is made."""
    return {k: v for k, v in file.items() if k != "download_url"}


def error(answer: dict[str, Any]) -> tuple[int | None, str | None]:
    return answer["status"], answer.get("code")


@pytest.mark.parametrize("upload", ["one part", "two parts"])
def test_create_answers_one_link_per_part_and_each_put_lands(report: Report, upload: str) -> None:
    done = report["uploads"][upload]
    create = done["create"]
    parts = create["part_info_list"]
    assert [p["part_number"] for p in parts] == list(range(1, len(parts) + 1))
    assert len(parts) == (1 if upload == "one part" else 2)
    assert all(p["upload_url"].startswith(f"http://{report['http_address']}/") for p in parts)
    assert done["puts"] == [200] * len(parts)
    assert create["file_id"] == done["file"]["file_id"]
    assert create["file_name"] == done["file"]["name"]
    assert (create["drive_id"], create["parent_file_id"], create["type"]) == (DRIVE, "root", "file")
    assert create["upload_id"]
    assert (create.get("exist"), create.get("rapid_upload")) == (False, False)


def test_complete_and_get_answer_every_field(report: Report) -> None:
    done = report["uploads"]["one part"]
    file = done["get"]
    assert stable(done["file"]) == stable(file)
    expected = {
        "drive_id": DRIVE,
        "parent_file_id": "root",
        "name": "notes.txt",
        "type": "file",
        "content_type": "text/plain",
        "size": done["sent_size"],
        "content_hash": done["sent_sha1"],
        "content_hash_name": "sha1",
        "file_extension": "txt",
        "description": "first description",
        "hidden": False,
        "starred": False,
        "labels": [],
        "status": "available",
        "category": "doc",
    }
    assert {k: file.get(k) for k in expected} == expected
    assert ms(file["local_created_at"]) == ms(LOCAL_CREATED_AT)
    assert ms(file["local_modified_at"]) == ms(LOCAL_MODIFIED_AT)
    assert TIMESTAMP.fullmatch(file["created_at"])
    assert TIMESTAMP.fullmatch(file["updated_at"])
    start, end = done["window_ms"]
    assert start <= ms(file["created_at"]) <= ms(file["updated_at"]) <= end


def test_a_two_part_upload_is_the_parts_in_order(report: Report) -> None:
    done = report["uploads"]["two parts"]
    file = done["get"]
    assert stable(done["file"]) == stable(file)
    assert (file["size"], file["content_hash"]) == (done["sent_size"], done["sent_sha1"])
    assert (file["name"], file["content_type"], file["category"]) == (
        "blob.bin",
        "application/octet-stream",
        "others",
    )
    assert (file["description"], file["labels"], file["hidden"], file["starred"]) == (
        "",
        [],
        False,
        False,
    )


@pytest.mark.parametrize(
    ("name", "category", "extension"),
    [
        ("photo.jpg", "image", "jpg"),
        ("clip.mp4", "video", "mp4"),
        ("song.mp3", "audio", "mp3"),
        ("readme.md", "doc", "md"),
        ("paper.pdf", "doc", "pdf"),
        ("letter.docx", "doc", "docx"),
        ("sheet.xls", "doc", "xls"),
        ("archive.tar.gz", "others", "gz"),
    ],
)
def test_category_and_extension_follow_type_and_name(
    report: Report, name: str, category: str, extension: str
) -> None:
    file = report["kinds"][name]
    assert (file["category"], file["file_extension"]) == (category, extension)


def _same(field: str, a: Any, b: Any) -> bool:
    if field == "local_modified_at":
        return ms(a) == ms(b)
    return bool(a == b)


@pytest.mark.parametrize("index", range(len(UPDATABLE)), ids=UPDATABLE)
def test_update_of_one_field_changes_only_that_field(report: Report, index: int) -> None:
    step = report["updates"][index]
    [(field, value)] = step["change"].items()
    returned, stored = step["returned"], step["stored"]
    assert stable(returned) == stable(stored), "the update's answer differs from GetFile"
    previous = (
        report["updates"][index - 1]["returned"] if index else report["uploads"]["one part"]["get"]
    )
    assert _same(field, returned[field], value)
    for other in UPDATABLE:
        if other != field:
            assert _same(other, returned.get(other), previous.get(other)), other
    assert {k: returned[k] for k in UNCHANGING} == {k: previous[k] for k in UNCHANGING}
    assert ms(returned["updated_at"]) > ms(previous["updated_at"])


def test_ignore_allows_a_duplicate_name(report: Report) -> None:
    names = report["names"]
    # auto_rename keeps a name nobody holds.
    first, duplicate = names["first"]["file"], names["duplicate"]["file"]
    assert first["name"] == duplicate["name"] == "a.jpg"
    assert first["file_id"] != duplicate["file_id"]


def test_auto_rename_appends_the_request_time_in_utc(report: Report) -> None:
    renamed = report["names"]["renamed"]
    match = re.fullmatch(r"a_(\d{8}_\d{6})\.jpg", renamed["file"]["name"])
    assert match, renamed["file"]["name"]
    assert renamed["create"]["file_name"] == renamed["file"]["name"]
    start, end = renamed["window_ms"]
    assert second(start) <= match[1] <= second(end)


def test_auto_rename_adds_a_counter_when_the_renaming_is_taken(report: Report) -> None:
    names = report["names"]
    countered = names["countered"]
    match = re.fullmatch(r"b_(\d{8}_\d{6})_1\.jpg", countered["file"]["name"])
    assert match, countered["file"]["name"]
    assert match[1] in names["occupied_stamps"], "the scenario outran its occupied seconds"
    start, end = countered["window_ms"]
    assert second(start) <= match[1] <= second(end)


def test_refuse_on_update_is_409_naming_the_holder_and_changes_nothing(report: Report) -> None:
    refused = report["names"]["refused_update"]
    answer = refused["answer"]
    assert error(answer) == (409, "AlreadyExist.File")
    assert answer["data"]["file_id"] == report["names"]["holder_id"]
    assert stable(refused["after"]) == stable(refused["before"])


def test_refuse_on_create_answers_the_holder_and_creates_nothing(report: Report) -> None:
    names = report["names"]
    refused = names["refused_create"]
    body = refused["answer"]["body"]
    assert body["exist"] is True
    assert body["file_id"] == names["holder_id"]
    assert body["file_name"] == names["renamed"]["file"]["name"]
    assert refused["ids_after"] == refused["ids_before"]


ORDERS = [(key, d) for key in ("created_at", "updated_at", "name", "size") for d in ("ASC", "DESC")]


def _expected_order(listing: dict[str, Any], key: str) -> list[str]:
    files = listing["files"]
    ids = [f["file_id"] for f in files]
    if key == "created_at":
        return ids
    if key == "updated_at":  # the scenario touched one file after creating them all
        return [i for i in ids if i != listing["touched"]] + [listing["touched"]]
    return [f["file_id"] for f in sorted(files, key=lambda f: f[key])]


@pytest.mark.parametrize(("key", "direction"), ORDERS)
def test_list_walks_each_order_in_pages_to_an_empty_marker(
    report: Report, key: str, direction: str
) -> None:
    listing = report["listing"]
    pages = listing["walks"][f"{key} {direction}"]
    expected = _expected_order(listing, key)
    if direction == "DESC":
        expected.reverse()
    assert [i for page in pages for i in page["ids"]] == expected
    assert [len(p["ids"]) for p in pages] == [2, 2, 1]
    assert pages[-1]["next_marker"] == ""
    assert all(p["next_marker"] for p in pages[:-1])


@pytest.mark.parametrize(
    ("label", "seconds"), [("download", 600), ("capped download", MAX_EXPIRE_SEC)]
)
def test_download_url_serves_the_exact_bytes_until_its_expiration(
    report: Report, label: str, seconds: int
) -> None:
    download = report[label]
    answer = download["answer"]
    assert answer["size"] == len(report["sent_two_hex"]) // 2
    assert download["fetched"] == {"status": 200, "hex": report["sent_two_hex"]}
    assert TIMESTAMP.fullmatch(answer["expiration"])
    start, end = download["window_ms"]
    # The link lives `seconds` from the request, to the second.
    assert start // 1000 * 1000 + seconds * 1000 <= ms(answer["expiration"]) <= end + seconds * 1000


def test_delete_answers_204_and_the_file_is_gone(report: Report) -> None:
    assert report["delete"] == {"status": 204, "body": None}
    assert error(report["get after delete"]) == (404, "NotFound.File")
    assert report["deleted_id"] not in report["listed after delete"]
    assert report["uploads"]["two parts"]["file"]["file_id"] in report["listed after delete"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown file", 404, "NotFound.File"),
        ("slash in name on create", 400, "InvalidParameter.Name"),
        ("slash in name on update", 400, "InvalidParameter.Name"),
        ("parent other than root", 400, None),
        ("folder", 400, None),
        ("get from another drive", 404, "NotFound.File"),
        ("delete from another drive", 404, "NotFound.File"),
    ],
)
def test_errors_carry_their_status_and_pds_code(
    report: Report, case: str, status: int, code: str | None
) -> None:
    answer = report["errors"][case]
    assert answer["status"] == status, answer
    if code is None:
        assert answer["code"].startswith("InvalidParameter"), answer
    else:
        assert answer["code"] == code, answer
    assert answer["message"]


def test_a_delete_through_another_drive_leaves_the_file(report: Report) -> None:
    assert report["after cross-drive delete"]["status"] == 200


def test_no_token_and_an_empty_token_work_against_an_anonymous_server(report: Report) -> None:
    # Every call of the scenario went without a token; this one sent bearer_token="".
    assert report["empty token get"]["status"] == 200


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Report:
    path: Path = tmp_path_factory.mktemp("keys") / "keys.toml"
    alice, root = add_key(path, "alice", ["team"]), add_key(path, "root", ["*"])
    with server_process("--store", "memory:", "--auth-keys", str(path)) as server:
        result = run_client(
            "pds_sdk.py", "auth", server.http_address, "team", alice, "elsewhere", root
        )
    observed: Report = json.loads(result.stdout)
    return observed


def test_a_key_works_in_its_own_drive(keyed: Report) -> None:
    assert keyed["own"]["drive_id"] == "team"
    assert keyed["listed"] == [keyed["own"]["file_id"]]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong key", 401, "AccessTokenInvalid"),
        ("no key", 401, None),
        ("other drive list", 403, "Forbidden"),
        ("other drive create", 403, "Forbidden"),
        ("their file through own drive", 404, "NotFound.File"),
    ],
)
def test_keys_limit_who_sees_which_drive(
    keyed: Report, case: str, status: int, code: str | None
) -> None:
    answer = keyed[case]
    assert answer["status"] == status, answer
    if code is not None:
        assert answer["code"] == code, answer
