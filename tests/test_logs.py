"""`--log-format json` and `--access-log` on a real server process: every line parses, each
call's access line carries the request id its client got, and no line holds a key, a link's
signature or file content."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from files_api.auth import add_key
from files_api.observe import CURRENT, GO_CODES, Call, JsonFormatter, _CallFields
from tests.support import server_process

if TYPE_CHECKING:
    from pathlib import Path

CONTENT = b"the secret content of a file"
RFC3339_NS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def test_json_lines_and_one_access_line_per_call(tmp_path: Path) -> None:
    keys = tmp_path / "keys.toml"
    key = add_key(keys, "alice", ["team"])
    store = f"sqlite:///{tmp_path / 'f.db'}"
    args = ("--store", store, "--auth-keys", str(keys), "--log-format", "json", "--access-log")
    with server_process(*args) as server:
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            auth = ("authorization", f"Api-Key {key}")
            made, call = stub.Create.with_call(
                fs.CreateFileRequest(folder_id="team", name="a.txt", content=CONTENT),
                metadata=(auth, ("x-request-id", "create-1")),
            )
            with pytest.raises(grpc.RpcError) as missing:
                stub.Get(fs.GetFileRequest(file_id="nosuchfile"), metadata=(auth,))
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=made.id), metadata=(auth,)).url
        with urllib.request.urlopen(url) as response:
            assert response.read() == CONTENT
        request = urllib.request.Request(
            f"http://{server.http_address}/files/v1/files/{made.id}",
            headers={"Authorization": f"Api-Key {key}", "x-request-id": "rest-1"},
        )
        with urllib.request.urlopen(request) as response:
            assert json.loads(response.read())["id"] == made.id
        lines = _access_lines(server.log, want=5)  # Create, Get, GetUrl, download, REST

    trailers: Any = missing.value.trailing_metadata()
    missing_id = dict(trailers)["x-request-id"]
    every = [json.loads(line) for line in server.log if line.strip()]
    for line in every:
        assert RFC3339_NS.fullmatch(line["time"]), line
        assert {"level", "logger", "message"} <= line.keys()
    signature = url.rpartition("signature=")[2]
    for text in server.log:
        for secret in (key, signature, CONTENT.decode(), "Api-Key"):
            assert secret not in text
    assert dict(call.trailing_metadata())["x-request-id"] == "create-1"
    by_id = {line["request_id"]: line for line in lines}
    create = by_id["create-1"]
    assert (create["face"], create["status"], create["subject"], create["folder"]) == (
        "grpc",
        GO_CODES[grpc.StatusCode.OK],
        "alice",
        "team",
    )
    assert create["method"] == "/yandex.cloud.ai.files.v1.FileService/Create"
    assert create["bytes_in"] > len(CONTENT) and create["bytes_out"] > 0
    assert create["peer"] and create["duration_ms"] >= 0
    assert by_id[missing_id]["status"] == "NotFound"
    rest = by_id["rest-1"]
    assert (rest["face"], rest["method"], rest["status"]) == (
        "rest",
        "GET /files/v1/files/{file_id}",
        "200",
    )
    [download] = [line for line in lines if line["face"] == "download"]
    assert download["method"] == "GET /files/v1/files/{file_id}/content"
    assert download["bytes_out"] == len(CONTENT)


def _access_lines(log: list[str], want: int) -> list[dict[str, Any]]:
    """The access lines so far, waiting (bounded) for `want` FileService/HTTP ones."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            json.loads(line)
            for line in list(log)
            if '"files_api.access"' in line and "grpc.health" not in line
        ]
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


async def test_lines_logged_inside_concurrent_calls_carry_each_its_own_ids() -> None:
    """What the access line shows for one call holds for any line logged inside a call: the
    ids come from the call's context, so interleaved calls never lend each other theirs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_CallFields())
    logger = logging.getLogger("files_api.tests.calls")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    async def call(number: int) -> None:
        CURRENT.set(Call("grpc", "/s/M", request_id=f"request-{number}", trace_id=f"{number:032x}"))
        logger.info("first line of %d", number)
        await asyncio.sleep(0)  # the other call logs in between
        logger.warning("second line of %d", number)

    try:
        await asyncio.gather(call(1), call(2))
        logger.info("outside any call")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 5
    for line in lines[:4]:
        number = int(line["message"].rpartition(" ")[2])
        assert (line["request_id"], line["trace_id"]) == (f"request-{number}", f"{number:032x}")
    assert "request_id" not in lines[4] and "trace_id" not in lines[4]
    assert [line["level"] for line in lines] == ["INFO", "INFO", "WARNING", "WARNING", "INFO"]
