"""Request bodies on every HTTP face (REST, PDS, a part upload): Content-Encoding decoded by us,
bounded like any body; corrupt is 400, unknown is 415, a client that leaves mid-body is one
INFO line, and oversized integers are 400. Never a 500, never a traceback in the log."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import socket
import time
import zlib
from typing import TYPE_CHECKING

import pytest

from files_api.auth import add_key
from files_api.bodies import MAX_BODY_BYTES, MAX_FORM_PARTS, MAX_PDS_BODY_BYTES
from tests.inprocess import ThreadedServer, threaded_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

REST_CREATE = json.dumps({"folderId": "b", "content": base64.b64encode(b"hi").decode()}).encode()
PDS_LIST = json.dumps({"drive_id": "b"}).encode()
FACES = {"rest": ("/files/v1/files", REST_CREATE), "pds": ("/v2/file/list", PDS_LIST)}


@pytest.fixture(scope="module")
def served() -> Iterator[ThreadedServer]:
    with threaded_server("memory:") as server:
        yield server


@pytest.fixture(autouse=True)
def start_clean(served: ThreadedServer) -> None:
    served.errors.take()


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


# (Content-Encoding, how the body is encoded, status)
ENCODINGS = [
    ("gzip", gzip.compress, 200),
    ("GZip", gzip.compress, 200),
    ("x-gzip", gzip.compress, 200),
    ("deflate", zlib.compress, 200),
    ("deflate", _raw_deflate, 200),  # what some clients send under the same name
    ("identity", lambda body: body, 200),
    ("gzip", lambda body: b"not gzip at all", 400),
    ("deflate", lambda body: b"not deflate", 400),
    ("gzip", lambda body: gzip.compress(body)[:-6], 400),  # truncated
    ("gzip", lambda body: gzip.compress(body) + b"tail", 400),
    ("br", lambda body: body, 415),
    ("zstd", lambda body: body, 415),
    ("gzip, br", lambda body: body, 415),
]


@pytest.mark.parametrize("face", list(FACES))
@pytest.mark.parametrize(("encoding", "encode", "status"), ENCODINGS)
def test_content_encodings(
    served: ThreadedServer, face: str, encoding: str, encode: object, status: int
) -> None:
    path, body = FACES[face]
    reply = served.http(
        "POST",
        path,
        encode(body),  # type: ignore[operator]
        {"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    if status != 200:
        assert "encod" in reply.body.decode().lower() or encoding in reply.body.decode()
    assert served.errors.take() == []


@pytest.mark.parametrize("face", list(FACES))
def test_a_small_compressed_body_cannot_inflate_past_the_bound(
    served: ThreadedServer, face: str
) -> None:
    path, _ = FACES[face]
    bomb = gzip.compress(b" " * (MAX_BODY_BYTES + 1024), compresslevel=9)
    assert len(bomb) < MAX_BODY_BYTES // 500
    reply = served.http(
        "POST", path, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    )
    assert reply.status == 413, reply.body
    assert served.errors.take() == []


def test_a_part_upload_takes_encodings_too(served: ThreadedServer) -> None:
    staged = served.http_json(
        "POST", "/v2/file/create", {"drive_id": "b", "name": "p.bin", "size": 5}
    ).json()
    url = staged["part_info_list"][0]["upload_url"]
    target = url.split(str(served.http_port), 1)[1]
    corrupt = served.http("PUT", target, b"garbage", {"Content-Encoding": "gzip"})
    assert corrupt.status == 400
    put = served.http("PUT", target, gzip.compress(b"hello"), {"Content-Encoding": "gzip"})
    assert put.status == 200, put.body
    done = served.http_json(
        "POST",
        "/v2/file/complete",
        {"drive_id": "b", "file_id": staged["file_id"], "upload_id": staged["upload_id"]},
    )
    assert done.json()["size"] == 5
    assert served.errors.take() == []


@pytest.mark.parametrize("face", list(FACES))
def test_a_client_gone_mid_body_is_one_info_line(
    served: ThreadedServer, face: str, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = FACES[face]
    with caplog.at_level(logging.INFO, logger="files_api.bodies"):
        with socket.create_connection(("127.0.0.1", served.http_port)) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Content-Length: 100000\r\n\r\n{"drive_id": '.encode()
            )
            time.sleep(0.2)  # the handler is reading the body when the client leaves
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "went away mid-body" in caplog.records[0].getMessage()
    assert served.errors.take() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("limit", "9" * 5000), ("limit", str(2**63)), ("url_expire_sec", str(-(2**63) - 1))],
)
def test_pds_integers_beyond_64_bits_are_400(
    served: ThreadedServer, field: str, value: str
) -> None:
    operation = "list" if field == "limit" else "get"
    body = f'{{"drive_id": "b", "file_id": "f", "{field}": {value}}}'.encode()
    reply = served.http("POST", f"/v2/file/{operation}", body, {"Content-Type": "application/json"})
    assert reply.status == 400, reply.body
    assert reply.json()["code"].startswith("InvalidParameter")
    assert served.errors.take() == []


def _answer_without_body(port: int, request_line: str, headers: str = "") -> bytes:
    """Sends a request that announces 100 MB and sends none of it: a server that reads the
    body before it checks credentials would wait for it (the timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"{request_line} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{headers}Content-Length: 100000000\r\n\r\n".encode()
        )
        return sock.recv(65536)


@pytest.mark.parametrize(
    "request_line",
    ["POST /files/v1/files", "PATCH /files/v1/files/abc", "POST /v2/file/list"],
)
def test_credentials_are_checked_before_the_body_is_read(tmp_path: Path, request_line: str) -> None:
    keys = tmp_path / "keys.toml"
    add_key(keys, "alice", ["f1"])
    with threaded_server("memory:", auth_keys=str(keys)) as server:
        head = _answer_without_body(server.http_port, request_line)
        assert head.startswith(b"HTTP/1.1 401"), head[:200]
        wrong = _answer_without_body(
            server.http_port, request_line, "Authorization: Api-Key nope\r\n"
        )
        assert wrong.startswith(b"HTTP/1.1 401"), wrong[:200]


def test_a_forged_part_link_is_refused_before_the_body_is_read(served: ThreadedServer) -> None:
    head = _answer_without_body(
        served.http_port, "PUT /v2/upload/abc/0123abcd/1?expires=9999999999&signature=forged"
    )
    assert head.startswith(b"HTTP/1.1 403"), head[:200]


def test_a_form_of_many_parts_is_400_at_the_cap(served: ThreadedServer) -> None:
    boundary = "cut"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="description"\r\n\r\nx\r\n'
    body = (part * 10_000 + f"--{boundary}--\r\n").encode()
    reply = served.http(
        "POST",
        "/files/v1/files",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 400
    assert f"at most {MAX_FORM_PARTS} parts" in reply.json()["message"]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_pds_body_past_its_bound_is_413(served: ThreadedServer, chunked: bool) -> None:
    body = json.dumps({"drive_id": "b", "name": "x" * MAX_PDS_BODY_BYTES}).encode()
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=30) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        sock.sendall(
            f"POST /v2/file/list HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n\r\n".encode()
        )
        with contextlib.suppress(OSError):  # the server may answer and close before the end
            sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked else body)
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"EntityTooLarge" in head
