"""One `x-request-id` rule on every face: the id a response carries is the one its audit
record holds. A client's id is kept when it is 1-128 printable ASCII characters; any other
is replaced with a fresh one, on gRPC, REST and PDS alike."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import aiohttp
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2

if TYPE_CHECKING:
    from tests.conftest import Running

FRESH = re.compile(r"[0-9a-f]{32}")
# (what the client sends, or None for nothing; whether it comes back as sent)
IDS: list[tuple[str | None, bool]] = [
    ("req-1", True),
    ("~" * 128, True),
    (None, False),
    ("", False),
    ("x" * 129, False),
    ("has space", False),
    ("tab\there", False),
    ("ünicode", False),
]


async def _update_three_ways(running: Running, file_id: str, sent: str | None) -> list[str]:
    """Renames the file over gRPC (when a gRPC client can send `sent`), REST and PDS with
    `sent` as x-request-id; the ids answered."""
    headers = {} if sent is None else {"x-request-id": sent}
    answered: list[str] = []
    if sent is None or all(" " <= c <= "~" for c in sent):  # all a gRPC client will send
        call = running.stub.Update(
            fs.UpdateFileRequest(
                file_id=file_id, name="g", update_mask=field_mask_pb2.FieldMask(paths=["name"])
            ),
            metadata=tuple(headers.items()),
        )
        await call
        trailer = dict(iter(await call.trailing_metadata()))["x-request-id"]
        assert isinstance(trailer, str)
        answered.append(trailer)
    base = f"http://127.0.0.1:{running.server.http_port}"
    async with aiohttp.ClientSession() as session:
        async with session.patch(
            f"{base}/files/v1/files/{file_id}",
            json={"name": "r", "updateMask": "name"},
            headers=headers,
        ) as response:
            assert response.status == 200, await response.text()
            answered.append(response.headers["x-request-id"])
        async with session.post(
            f"{base}/v2/file/update",
            json={"drive_id": "f", "file_id": file_id, "name": "p"},
            headers=headers,
        ) as response:
            assert response.status == 200, await response.text()
            answered.append(response.headers["x-request-id"])
    return answered


@pytest.mark.parametrize(("sent", "kept"), IDS)
async def test_the_answered_id_is_the_audited_one_on_every_face(
    running: Running, sent: str | None, kept: bool
) -> None:
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
    answered = await _update_three_ways(running, file.id, sent)
    events = await running.server.core.store.audit_log(file.id)
    audited = [event.request_id for event in events if event.action == "update"]
    assert audited == answered
    for request_id in answered:
        assert request_id == sent if kept else FRESH.fullmatch(request_id), answered
    assert len(set(answered)) == (1 if kept else len(answered)) and len(answered) >= 2


async def test_a_pds_error_carries_the_request_id_too(running: Running) -> None:
    base = f"http://127.0.0.1:{running.server.http_port}"
    async with aiohttp.ClientSession() as session:
        for sent, kept in IDS:
            headers = {} if sent is None else {"x-request-id": sent}
            async with session.post(
                f"{base}/v2/file/get", json={"drive_id": "f", "file_id": "nope"}, headers=headers
            ) as response:
                assert response.status == 404
                answered = response.headers["x-request-id"]
                assert answered == sent if kept else FRESH.fullmatch(answered)
