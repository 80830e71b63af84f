"""The official `yandexcloud` stubs against `python -m server` on SQLite, end to end.

tests/clients/official_stubs.py runs the whole scenario once in the clients' environment and
reports what it observed; each test here checks one part of that report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from files_api.domain.limits import NS_PER_DAY
from tests.support import run_client, server_process

Report = dict[str, Any]

# What the file looks like after each Update step of official_stubs.UPDATES, in order.
FIELDS = ("name", "description", "labels", "expiration_policy", "ttl_days")
NAME, DESC = "renamed.bin", "second description"
CREATED_LABELS = {"env": "prod", "keep": "yes", "team.name": "core"}
DEV = {**CREATED_LABELS, "env": "dev"}
PLATFORM = {**DEV, "team.name": "platform"}
NO_KEEP = {"env": "dev", "team.name": "platform"}
AB = {"a": "1", "b": "2"}
AFTER_UPDATES = [
    ("name", NAME, "first description", CREATED_LABELS, "STATIC", 3),
    ("description", NAME, DESC, CREATED_LABELS, "STATIC", 3),
    ("plain label key", NAME, DESC, DEV, "STATIC", 3),
    ("backticked label key", NAME, DESC, PLATFORM, "STATIC", 3),
    ("label key absent from request", NAME, DESC, NO_KEEP, "STATIC", 3),
    ("whole labels", NAME, DESC, AB, "STATIC", 3),
    ("ttl_days alone", NAME, DESC, AB, "STATIC", 30),
    ("expiration_policy alone", NAME, DESC, AB, "SINCE_LAST_ACTIVE", 30),
    # An empty mask replaces every updatable field; absent ones take their defaults.
    ("empty mask", "final.bin", "", {"z": "9"}, "SINCE_LAST_ACTIVE", 7),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    db = tmp_path_factory.mktemp("official") / "f.db"
    with server_process("--store", f"sqlite:///{db}") as server:
        result = run_client("official_stubs.py", server.grpc_address, timeout=60)
    observed: Report = json.loads(result.stdout)
    observed["http_address"] = server.http_address
    return observed


def test_create_returns_the_file_and_get_returns_it_unchanged(report: Report) -> None:
    created = report["created"]
    assert created["name"] == "report.bin"
    assert created["description"] == "first description"
    assert created["mime_type"] == report["mime_type"]
    assert created["labels"] == CREATED_LABELS
    assert (created["expiration_policy"], created["ttl_days"]) == ("STATIC", 3)
    assert created["folder_id"] == "folder-official-stubs"
    assert created["id"]
    assert created["created_at_ns"] == created["updated_at_ns"]
    assert created["expires_at_ns"] == created["created_at_ns"] + 3 * NS_PER_DAY
    # SQLite keeps every nanosecond: Get gives back exactly what Create returned.
    assert report["got"] == created


@pytest.mark.parametrize(
    ("index", "expected"),
    [(i, (step, *values)) for i, (step, *values) in enumerate(AFTER_UPDATES)],
    ids=[row[0] for row in AFTER_UPDATES],
)
def test_update_changes_only_what_the_mask_names(
    report: Report, index: int, expected: tuple[Any, ...]
) -> None:
    observed = report["updates"][index]
    updated = observed["updated"]
    assert updated == observed["got"], "Update's answer differs from the stored file"
    assert (observed["step"], *(updated[f] for f in FIELDS)) == expected
    created = report["created"]
    previous = report["updates"][index - 1]["updated"] if index else created
    for unchanged in ("id", "folder_id", "mime_type", "created_by", "created_at_ns"):
        assert updated[unchanged] == created[unchanged], unchanged
    assert updated["updated_at_ns"] > previous["updated_at_ns"] > 0
    assert updated["updated_at_ns"] > updated["created_at_ns"]


def test_expiry_follows_policy_and_ttl_after_updates(report: Report) -> None:
    after = {u["step"]: u["updated"] for u in report["updates"]}
    created_ns = report["created"]["created_at_ns"]
    # STATIC counts from creation whatever the updates; SINCE_LAST_ACTIVE from the last update.
    assert after["whole labels"]["expires_at_ns"] == created_ns + 3 * NS_PER_DAY
    assert after["ttl_days alone"]["expires_at_ns"] == created_ns + 30 * NS_PER_DAY
    since = after["expiration_policy alone"]
    assert since["expires_at_ns"] == since["updated_at_ns"] + 30 * NS_PER_DAY
    final = after["empty mask"]
    assert final["expires_at_ns"] == final["updated_at_ns"] + 7 * NS_PER_DAY


def test_timestamps_carry_nanoseconds(report: Report) -> None:
    nanos = [n for u in report["updates"] for n in u["got"]["nanos"]] + report["created"]["nanos"]
    # Microsecond (or coarser) storage would make every one a multiple of 1000.
    assert any(n % 1000 for n in nanos), nanos


def test_invalid_mask_path_is_invalid_argument_naming_update_mask(report: Report) -> None:
    error = report["invalid_mask"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert "no_such_field" in error["message"]
    assert [v["field"] for v in error["violations"]] == ["update_mask"]
    assert "no_such_field" in error["violations"][0]["description"]
    # Nothing changed, not even the valid `name` path in the same mask.
    assert report["after_invalid_mask"] == report["updates"][-1]["got"]


def test_list_walks_newest_first_in_pages_until_an_empty_page(report: Report) -> None:
    pages = report["pages"]
    assert [len(p["ids"]) for p in pages] == [2, 2, 1, 0]
    assert all(p["next_page_token"] for p in pages[:-1])
    assert pages[-1]["next_page_token"] == ""
    listed = [file_id for p in pages for file_id in p["ids"]]
    assert listed == [*reversed(report["extra_ids"]), report["created"]["id"]]
    assert report["other_folder_id"] not in listed


def test_get_url_downloads_the_exact_bytes_and_type(report: Report) -> None:
    assert report["url"].startswith(f"http://{report['http_address']}/")
    download = report["download"]
    assert download["status"] == 200
    assert download["content_type"] == report["mime_type"]
    assert download["content_hex"] == report["content_hex"]
    before, after = report["expires_at_ns_around_download"]
    # Activity is recorded as relatime does: a download within a minute of the last write
    # leaves expires_at as it is (tests/test_downloads.py moves a controlled clock past that);
    # it never moves it back.
    assert after >= before, "a download must never move an expiry back"


def test_delete_then_the_file_is_gone(report: Report) -> None:
    assert report["get_after_delete"]["code"] == "NOT_FOUND"
    assert report["delete_after_delete"]["code"] == "NOT_FOUND"
    assert report["download_after_delete"]["status"] == 404
