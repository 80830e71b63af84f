"""Big content costs the event loop what small content does: MIME sniffing reads only the
content's ends, and a big Create's content is never copied out of the received message.

Whether other clients then wait on a 128 MiB Create is measured, against a bare grpc.aio
server, by the benchmark's stall part (docs/performance.md); here are the mechanisms, which
fail deterministically when one of them regresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import hypothesis
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf.message import DecodeError
from hypothesis import strategies as st

from files_api.grpc_api import SPLIT_BYTES, BigCreate, _parse, _split_create
from files_api.mime import detect_mime

if TYPE_CHECKING:
    from collections.abc import Sequence

LARGE = [
    (b"[" + b"1," * 5_000_000 + b"1]", "application/json"),
    (b'  {"a": "' + b"x" * 1_000_000 + b'"}\n', "application/json"),
    (b"[" + b"1," * 5_000_000 + b"1", "text/plain"),
    ("ж".encode() * 500_000, "text/plain"),
    (b"a" * 100_000 + "ж".encode() + b"b" * 65_535, "text/plain"),  # a cut mid-character
    (b"a" * 1_000_000 + b"\x00", "application/octet-stream"),
    (b"a" * 1_000_000 + b"\xff", "application/octet-stream"),
]


@pytest.mark.parametrize(("content", "expected"), LARGE)
def test_large_content_is_sniffed_by_its_ends(content: bytes, expected: str) -> None:
    assert detect_mime(content, "") == expected
    assert detect_mime(memoryview(content), "") == expected  # as a big Create hands it over


class JsonArray:
    """A JSON array `[1,1,...,1]` of any odd length that makes its bytes only when read, and
    records each read: what sniffing looks at, it has to ask for."""

    def __init__(self, size: int) -> None:
        assert size % 2 == 1
        self.size = size
        self.read = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, cut: slice) -> bytes:
        start, stop, _ = cut.indices(self.size)
        self.read += stop - start
        assert self.read <= 1 << 20, "sniffing read far more than the ends"
        return bytes(self._at(p) for p in range(start, stop))

    def _at(self, p: int) -> int:
        if p in (0, self.size - 1):
            return ord("[" if p == 0 else "]")
        return ord("1" if p % 2 else ",")


@pytest.mark.parametrize("size", [(1 << 27) - 1, (1 << 40) + 1])
def test_sniffing_reads_at_most_64_kib_of_each_end(size: int) -> None:
    # A JSON array of 128 MiB once went through json.loads on the event loop (2.4 s).
    content = JsonArray(size)
    assert detect_mime(content, "") == "application/json"  # type: ignore[arg-type]
    assert 0 < content.read <= 2 * 64 * 1024


def created(request: fs.CreateFileRequest, content: bytes) -> fs.CreateFileRequest:
    whole = fs.CreateFileRequest()
    whole.CopyFrom(request)
    whole.content = content
    return whole


@pytest.mark.parametrize("content", [b"x", bytes(300), bytes(range(256)) * 1000])
def test_a_split_create_is_its_parse_with_the_content_aside(content: bytes) -> None:
    request = fs.CreateFileRequest(
        folder_id="f",
        name="a.bin",
        description="d",
        content=content,
        labels={"k": "v", "x": "y"},
        expiration_config=common_pb2.ExpirationConfig(ttl_days=3),
    )
    raw = request.SerializeToString()
    split = _split_create(raw)
    assert split is not None
    rest, view = split
    assert view.obj is raw  # a view into the received bytes: nothing copied
    assert created(fs.CreateFileRequest.FromString(rest), bytes(view)) == request


def test_big_creates_take_the_split_path_and_small_ones_the_parser() -> None:
    big = fs.CreateFileRequest(folder_id="f", content=bytes(SPLIT_BYTES + 1)).SerializeToString()
    parsed = _parse("Create", big)
    assert isinstance(parsed, BigCreate) and len(parsed.content) == SPLIT_BYTES + 1
    small = fs.CreateFileRequest(folder_id="f", content=b"x").SerializeToString()
    assert isinstance(_parse("Create", small), fs.CreateFileRequest)


requests = st.builds(
    fs.CreateFileRequest,
    folder_id=st.text(max_size=8),
    name=st.text(max_size=8),
    mime_type=st.text(max_size=8),
    content=st.binary(max_size=300),
    labels=st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
)
# Concatenated messages merge (the last content wins); garbage may end anywhere.
wires = st.lists(
    st.one_of(requests.map(lambda r: r.SerializeToString()), st.binary(max_size=12)),
    max_size=5,
).map(b"".join)


def parse(raw: bytes) -> fs.CreateFileRequest | None:
    try:
        return fs.CreateFileRequest.FromString(raw)
    except DecodeError:
        return None


@hypothesis.settings(max_examples=2000, deadline=None)
@hypothesis.given(wires)
def test_the_split_agrees_with_protobufs_parser_on_any_bytes(raw: bytes) -> None:
    expected = parse(raw)
    split = _split_create(raw)
    if split is None:
        return  # the parser judges the whole message, as for any small Create
    rest, content = split
    got = parse(rest)
    if expected is None:
        assert got is None, "the split accepted a message protobuf refuses"
    else:
        assert got is not None and created(got, bytes(content)) == expected


def test_a_split_refuses_what_it_cannot_walk() -> None:
    truncated = fs.CreateFileRequest(folder_id="f", content=b"abc").SerializeToString()[:-1]
    no_content = fs.CreateFileRequest(folder_id="f").SerializeToString()
    cases: Sequence[bytes] = [truncated, b"\x2b", b"\xff" * 11, b"\x0a\x05ab", no_content]
    assert [_split_create(raw) for raw in cases] == [None] * len(cases)
