"""One store, three faces: a file made through one face is changed through another and read back
through a third (tests/clients/pds_cross.py does it and reports; the checks are here).

A PDS drive is a folder and a PDS file is a File: name, description, content type and bytes are
shared; Yandex's label map and PDS's label list are separate fields that never touch.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import run_client, server_process

Report = dict[str, Any]

FOLDER = "folder-pds-cross"


@pytest.fixture(scope="module")
def report(module_store_url: str) -> Report:
    with server_process("--store", module_store_url) as server:
        result = run_client(
            "pds_cross.py", server.grpc_address, server.http_address, FOLDER, timeout=90
        )
    observed: Report = json.loads(result.stdout)
    return observed


def test_pds_reads_a_file_the_stubs_made(report: Report) -> None:
    seen = report["yandex first"]
    made, pds = seen["created"], seen["pds_get"]
    assert (pds["drive_id"], pds["file_id"], pds["parent_file_id"]) == (FOLDER, made["id"], "root")
    assert (pds["name"], pds["description"], pds["content_type"]) == (
        made["name"],
        made["description"],
        made["mime_type"],
    )
    assert (pds["size"], pds["content_hash"]) == (len(seen["sent_hex"]) // 2, seen["sent_sha1"])
    assert pds["labels"] == [], "the Yandex label map is not the PDS label list"
    assert seen["pds_download"] == {"status": 200, "hex": seen["sent_hex"]}


def test_a_pds_update_shows_through_the_ai_studio_sdk_but_leaves_yandex_labels(
    report: Report,
) -> None:
    seen = report["yandex first"]
    updated = seen["pds_update"]
    assert (updated["name"], updated["labels"], updated["starred"]) == (
        "renamed-by-pds.txt",
        ["pds", "label"],
        True,
    )
    assert seen["studio"] == {
        "name": "renamed-by-pds.txt",
        "description": "by yandex",
        "mime_type": "text/plain",
        "labels": {"env": "dev"},
    }
    assert seen["studio_download_hex"] == seen["sent_hex"]


def test_the_stubs_see_a_pds_upload_without_its_label_list(report: Report) -> None:
    seen = report["pds first"]
    made = seen["created"]
    assert seen["stub_get"] == {
        "id": made["file_id"],
        "name": "from-pds.csv",
        "description": "",
        "mime_type": "text/csv",
        "labels": {},
    }


def test_a_yandex_update_shows_through_pds_but_leaves_pds_labels(report: Report) -> None:
    seen = report["pds first"]
    assert seen["stub_update"]["labels"] == {"team": "core"}
    assert seen["studio"] == {
        "name": "from-pds.csv",
        "description": "changed by yandex",
        "mime_type": "text/csv",
        "labels": {"team": "core"},
    }
    assert seen["studio_download_hex"] == seen["sent_hex"]
    pds = seen["pds_get"]
    assert (pds["name"], pds["description"], pds["labels"]) == (
        "from-pds.csv",
        "changed by yandex",
        ["a", "b"],
    )
    assert pds["content_hash"] == seen["created"]["content_hash"]


def test_both_faces_list_the_same_files(report: Report) -> None:
    listed = report["listed"]
    assert listed["stubs"] == listed["pds"]
    assert len(listed["pds"]) == 2
