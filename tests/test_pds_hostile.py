"""Hostile input to the PDS face: any JSON value in any field the SDK sends, bodies that are not
JSON at all, and lone surrogates. Each answer is PDS's JSON error or a success, never a 500
and never a traceback in the log; a refused write changes nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.inprocess import ThreadedServer, threaded_server
from tests.test_hostile import HYPOTHESIS

if TYPE_CHECKING:
    from collections.abc import Iterator

DRIVE = "pds-hostile"
FIELDS = {
    "create": [
        "drive_id",
        "parent_file_id",
        "name",
        "type",
        "size",
        "content_type",
        "part_info_list",
        "check_name_mode",
        "description",
        "hidden",
        "local_created_at",
        "local_modified_at",
    ],
    "complete": ["drive_id", "file_id", "upload_id"],
    "get": ["drive_id", "file_id", "url_expire_sec"],
    "update": [
        "drive_id",
        "file_id",
        "name",
        "description",
        "labels",
        "hidden",
        "starred",
        "local_modified_at",
        "check_name_mode",
    ],
    "list": ["drive_id", "parent_file_id", "limit", "marker", "order_by", "order_direction"],
    "delete": ["drive_id", "file_id"],
    "get_download_url": ["drive_id", "file_id", "expire_sec"],
}
PDS_STATUSES = {200, 204, 400, 403, 404, 409, 413}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            "root",
            "file",
            "folder",
            "refuse",
            "auto_rename",
            "ignore",
            "a/b",
            "\x00",
            "\ud800",
            "2026-11-23T17:05:01.292Z",
            "9999-12-31T23:59:59.999999999Z",
            "0001-01-01T00:00:00Z",
            "x" * 1100,
            "name",
            "size",
            "ASC",
            "DESC",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def served(module_store_url: str) -> Iterator[ThreadedServer]:
    with threaded_server(module_store_url) as server:
        yield server


@pytest.fixture(scope="module")
def victim(served: ThreadedServer) -> dict[str, Any]:
    """A file the fuzzed calls aim at: refused writes must leave it as it is."""
    created = pds(served, "create", {"drive_id": DRIVE, "name": "victim.txt", "size": 1})
    url = created["part_info_list"][0]["upload_url"]
    assert served.http("PUT", url.split(str(served.http_port), 1)[1], b"v").status == 200
    ids = {"drive_id": DRIVE, "file_id": created["file_id"], "upload_id": created["upload_id"]}
    return pds(served, "complete", ids)


def pds(served: ThreadedServer, op: str, body: object) -> dict[str, Any]:
    reply = served.http("POST", f"/v2/file/{op}", json.dumps(body).encode())
    assert reply.status == 200, reply.body
    return reply.json()  # type: ignore[no-any-return]


def checked(served: ThreadedServer, op: str, raw: bytes) -> int:
    reply = served.http("POST", f"/v2/file/{op}", raw, {"Content-Type": "application/json"})
    assert reply.status in PDS_STATUSES, (reply.status, reply.body)
    if reply.status == 204:
        assert reply.body == b""
    else:
        answer = json.loads(reply.body)
        if reply.status >= 400:
            assert isinstance(answer["code"], str) and answer["message"], answer
    assert served.errors.take() == []
    return reply.status


@HYPOTHESIS
@given(
    op=st.sampled_from(sorted(FIELDS)),
    data=st.data(),
)
def test_any_field_value_is_answered_in_pds_terms(
    served: ThreadedServer, victim: dict[str, Any], op: str, data: st.DataObject
) -> None:
    fields = data.draw(st.lists(st.sampled_from(FIELDS[op]), unique=True, max_size=6))
    body: dict[str, Any] = {"drive_id": DRIVE, "file_id": victim["file_id"]}
    for field in fields:
        body[field] = data.draw(values, label=field)
    if (
        op == "delete"
        and body.get("drive_id") == DRIVE
        and body.get("file_id") == victim["file_id"]
    ):
        body["file_id"] = "spared"  # the victim outlives the run
    ids = {"drive_id": DRIVE, "file_id": victim["file_id"]}
    before = pds(served, "get", ids)
    status = checked(served, op, json.dumps(body).encode())
    if op == "update" and status != 200:
        assert _stable(pds(served, "get", ids)) == _stable(before)


def _stable(file: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in file.items() if k != "download_url"}


@HYPOTHESIS
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_body_is_answered_in_pds_terms(served: ThreadedServer, raw: bytes) -> None:
    checked(served, "list", raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"drive_id": "\\ud800"}',
        b'{"drive_id": "d", "marker": "\\udfff"}',
        b"[" * 100_000,
        b'{"drive_id": "d", "limit": 1e400}',
        b"\xff\xfe",
    ],
)
def test_bodies_no_store_could_keep_are_400(served: ThreadedServer, raw: bytes) -> None:
    assert checked(served, "list", raw) == 400


@pytest.mark.parametrize(
    ("stamp", "status"),
    [
        ("1970-01-01T00:00:00Z", 200),
        ("2262-04-11T23:47:16.854775807Z", 200),  # the last nanosecond a 64-bit column holds
        ("2262-04-11T23:47:16.854775808Z", 400),
        ("9999-12-31T23:59:59.999999999Z", 400),
        ("1969-12-31T23:59:59Z", 400),
        ("0001-01-01T00:00:00Z", 400),
        ("2026-12-31T23:59:60Z", 400),  # never rolled into the next day
        ("2026-12-31T23:59:61.5Z", 400),
        ("2026-12-31T24:00:00Z", 400),
        ("2026-12-31T23:60:00Z", 400),
    ],
)
def test_client_times_must_fit_the_stores(
    served: ThreadedServer, victim: dict[str, Any], stamp: str, status: int
) -> None:
    body = {"drive_id": DRIVE, "file_id": victim["file_id"], "local_modified_at": stamp}
    assert checked(served, "update", json.dumps(body).encode()) == status
    if status == 200:
        ids = {"drive_id": DRIVE, "file_id": victim["file_id"]}
        assert pds(served, "get", ids)["local_modified_at"] == stamp.replace("00Z", "00.000Z")
