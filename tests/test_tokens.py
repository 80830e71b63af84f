"""Every kind of token, fed into every place that takes one, on every face and backend.

Page tokens, PDS markers, download and part signatures are made under keys of their own
purposes (`files_api.signing`), so one kind is never taken for another: a PDS marker sent as a
List page token is INVALID_ARGUMENT, where it once reached the page-token parser and came back
INTERNAL. Tokens sealed with the right key but in a shape no token has (an older release's,
say) are refused the same way. Nothing here may ever answer INTERNAL or a 5xx.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from hypothesis import given, settings
from hypothesis import strategies as st

from files_api.signing import Purpose
from tests.inprocess import ThreadedServer, threaded_server

if TYPE_CHECKING:
    from collections.abc import Iterator

FOLDER = "tokens"
EXAMPLES = 60


@dataclasses.dataclass(frozen=True)
class Issued:
    """One of each kind of token the server hands out, and where each one came from."""

    page_token: str
    marker: str
    file_id: str
    download_expires: str
    download_signature: str
    part_path: str
    part_expires: str
    part_signature: str
    upload_id: str
    sealed: dict[str, str]  # right key, wrong shape: purpose name -> token

    def every_token(self) -> list[str]:
        return [
            self.page_token,
            self.marker,
            self.download_signature,
            self.part_signature,
            self.upload_id,
            *self.sealed.values(),
        ]


@pytest.fixture(scope="module")
def served(module_store_url: str) -> Iterator[ThreadedServer]:
    with threaded_server(module_store_url) as server:
        yield server


@pytest.fixture(scope="module")
def issued(served: ThreadedServer) -> Issued:
    for n in range(3):
        served.stub.Create(fs.CreateFileRequest(folder_id=FOLDER, name=f"n{n}", content=b"x"))
    page = served.stub.List(fs.ListFilesRequest(folder_id=FOLDER, page_size=1))
    listed = served.http_json("POST", "/v2/file/list", {"drive_id": FOLDER, "limit": 1}).json()
    file_id = page.files[0].id
    download = urlsplit(served.stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id)).url)
    created = served.http_json(
        "POST", "/v2/file/create", {"drive_id": FOLDER, "name": "staged", "size": 1}
    ).json()
    part = urlsplit(created["part_info_list"][0]["upload_url"])
    signer = served.server.core.links._signer
    shapes = [b"[]", b'["x"]', b"{}", b"null", b"[1, 2, 3, 4, 5, 6]", b'["tokens", true, "x"]']
    sealed = {
        f"{purpose.name}:{shape.decode()}": signer.seal(purpose, shape)
        for purpose in (Purpose.PAGE_TOKEN, Purpose.PDS_MARKER)
        for shape in shapes
    }
    return Issued(
        page_token=page.next_page_token,
        marker=listed["next_marker"],
        file_id=file_id,
        download_expires=parse_qs(download.query)["expires"][0],
        download_signature=parse_qs(download.query)["signature"][0],
        part_path=part.path,
        part_expires=parse_qs(part.query)["expires"][0],
        part_signature=parse_qs(part.query)["signature"][0],
        upload_id=created["upload_id"],
        sealed=sealed,
    )


def _list_grpc(served: ThreadedServer, token: str) -> grpc.StatusCode:
    try:
        served.stub.List(fs.ListFilesRequest(folder_id=FOLDER, page_token=token))
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def check_token_everywhere(served: ThreadedServer, issued: Issued, token: str) -> None:
    """`token` in each place that takes one: wrong kinds are refused, nothing is INTERNAL."""
    quoted = quote(token, safe="")
    code = _list_grpc(served, token)
    rest = served.http("GET", f"/files/v1/files?folderId={FOLDER}&pageToken={quoted}")
    pds = served.http_json("POST", "/v2/file/list", {"drive_id": FOLDER, "marker": token})
    if token != issued.page_token:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, token
        assert rest.status == 400 and "page_token" in rest.json()["message"], token
    if token != issued.marker:
        assert (pds.status, pds.json()["code"]) == (400, "InvalidParameter.Marker"), token
    download = served.http(
        "GET",
        f"/files/v1/files/{issued.file_id}/content"
        f"?expires={issued.download_expires}&signature={quoted}",
    )
    part = served.http(
        "PUT", f"{issued.part_path}?expires={issued.part_expires}&signature={quoted}", b"x"
    )
    if token != issued.download_signature:
        assert download.status == 403, token
    if token != issued.part_signature:
        assert part.status == 403, token
    complete = served.http_json(
        "POST",
        "/v2/file/complete",
        {"drive_id": FOLDER, "file_id": issued.file_id, "upload_id": token},
    )
    assert complete.status in (400, 404), (token, complete.body)
    assert served.errors.take() == []


def test_each_issued_token_is_refused_everywhere_but_its_own_place(
    served: ThreadedServer, issued: Issued
) -> None:
    for token in issued.every_token():
        check_token_everywhere(served, issued, token)


def test_a_marker_as_a_page_token_is_invalid_argument_not_internal(
    served: ThreadedServer, issued: Issued
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        served.stub.List(fs.ListFilesRequest(folder_id=FOLDER, page_token=issued.marker))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (e.value.details() or "")


def test_the_issued_tokens_still_work_in_their_own_places(
    served: ThreadedServer, issued: Issued
) -> None:
    assert _list_grpc(served, issued.page_token) == grpc.StatusCode.OK
    listed = served.http_json(
        "POST", "/v2/file/list", {"drive_id": FOLDER, "limit": 1, "marker": issued.marker}
    )
    assert listed.status == 200 and len(listed.json()["items"]) == 1


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_token_anywhere_is_never_internal(
    served: ThreadedServer, issued: Issued, data: st.DataObject
) -> None:
    """Mutations of real tokens (a character changed, cut, doubled, re-padded) and any text."""
    base = data.draw(st.sampled_from(issued.every_token()), label="base")
    mutation = data.draw(
        st.sampled_from(["as is", "cut", "flip", "pad", "double", "text", "json"]), label="how"
    )
    if mutation == "cut":
        token = base[: data.draw(st.integers(1, len(base)))]  # empty means "first page"
    elif mutation == "flip":
        at = data.draw(st.integers(0, len(base) - 1))
        token = base[:at] + ("A" if base[at] != "A" else "B") + base[at + 1 :]
    elif mutation == "pad":
        token = base + "=="
    elif mutation == "double":
        token = base + base
    elif mutation == "text":
        token = data.draw(st.text(min_size=1, max_size=200).filter(lambda t: "\x00" not in t))
    elif mutation == "json":
        token = json.dumps(data.draw(st.lists(st.integers() | st.text(max_size=5), max_size=6)))
    else:
        token = base
    check_token_everywhere(served, issued, token)
