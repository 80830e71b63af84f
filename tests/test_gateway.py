"""The standalone gateway: REST discovered by reflection, in front of our server and another."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from http import client as http_client
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc_tools
import pytest

from tests.support import ROOT, server_process, spawn

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

ECHO = ROOT / "tests" / "echo"
_GATEWAY_READY = re.compile(r"serving REST on (\S+):(\d+)")


def compile_echo(out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ECHO}",
            f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
            f"-I{sysconfig.get_paths()['purelib']}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(ECHO / "echo.proto"),
        ],
        check=True,
    )


@pytest.fixture(scope="module")
def echo_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    out = tmp_path_factory.mktemp("echo")
    compile_echo(out)
    command = [sys.executable, str(ECHO / "server.py"), str(out)]
    with spawn(command, re.compile(r"^(\d+)$")) as (_, match, _log):
        yield f"127.0.0.1:{match[1]}"


def gateway(target: str) -> Any:
    command = [sys.executable, "-m", "files_api.gateway", "--target", target]
    return spawn([*command, "--http-listen", "127.0.0.1:0"], _GATEWAY_READY)


@pytest.fixture(scope="module")
def echo_gateway(echo_target: str) -> Iterator[str]:
    with gateway(echo_target) as (_, match, log):
        assert "test.echo.v1.Echo" in "".join(log)
        yield f"http://127.0.0.1:{match[2]}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, verb: str, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with http.request(verb, url, **kwargs) as response:
        return response.status, await response.json()


async def test_named_body_nested_path_variable_and_custom_verb(
    http: aiohttp.ClientSession, echo_gateway: str
) -> None:
    status, reply = await call(
        http,
        "POST",
        f"{echo_gateway}/v1/rooms/lobby:say?shout=true",
        json={"text": "hi", "count": "3"},
        headers={"Authorization": "Bearer t0k", "X-Team": "ml", "Cookie": "no"},
    )
    assert status == 200, reply
    assert reply["text"] == "HI"
    assert json.loads(reply["requestJson"]) == {
        "message": {"count": "3", "text": "hi"},
        "room": {"name": "rooms/lobby"},
        "shout": True,
    }
    # Authorization and x-* headers cross as metadata; other headers do not.
    assert reply["metadata"]["authorization"] == "Bearer t0k"
    assert reply["metadata"]["x-team"] == "ml"
    assert "cookie" not in reply["metadata"]
    assert len(reply["metadata"]["x-request-id"]) == 32


async def test_a_form_fills_a_named_body_through_the_gateway(
    http: aiohttp.ClientSession, echo_gateway: str
) -> None:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("text", "hi")
    form.add_field("count", "3")
    status, reply = await call(http, "POST", f"{echo_gateway}/v1/rooms/lobby:say", data=form)
    assert status == 200, reply
    assert json.loads(reply["requestJson"]) == {
        "message": {"count": "3", "text": "hi"},
        "room": {"name": "rooms/lobby"},
    }


def _say(gateway: str, headers: dict[str, bytes]) -> tuple[int, dict[str, Any]]:
    """A Say through the gateway with header values sent as the exact bytes given."""
    host, port = gateway.removeprefix("http://").split(":")
    connection = http_client.HTTPConnection(host, int(port), timeout=30)
    try:
        body = b'{"text": "hi"}'
        connection.putrequest("POST", "/v1/rooms/x:say")
        for key, value in {"Content-Type": b"application/json", **headers}.items():
            connection.putheader(key, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        raw = response.read()
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return response.status, json.loads(raw) if is_json else {"message": raw.decode()}
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("headers", "status", "seen"),
    [
        ({"X-Trace-Bin": b"AP9hYg=="}, 200, {"x-trace-bin": "bytes:00ff6162"}),
        ({"X-Trace-Bin": b"AP9hYg"}, 200, {"x-trace-bin": "bytes:00ff6162"}),  # unpadded
        ({"X-Trace-Bin": b"not base64!"}, 400, "base64"),
        ({"X-Name": "\u00ff".encode()}, 400, "printable ASCII"),
        # Not HTTP at all: aiohttp's parser answers these itself.
        ({"X-Name": b"a\x01b"}, 400, "Invalid"),
        ({"X-Na(me": b"v"}, 400, "Invalid"),
    ],
)
def test_headers_cross_as_grpc_can_carry_them_or_are_400(
    echo_gateway: str, headers: dict[str, bytes], status: int, seen: dict[str, str] | str
) -> None:
    got, reply = _say(echo_gateway, headers)
    assert got == status, reply
    if isinstance(seen, str):
        assert seen in reply["message"]
    else:
        assert seen.items() <= reply["metadata"].items()


async def test_query_parameters_and_additional_bindings(
    http: aiohttp.ClientSession, echo_gateway: str
) -> None:
    status, reply = await call(
        http, "GET", f"{echo_gateway}/v1/rooms/r1/messages?tags=a&tags=b&order=ORDER_NEWEST&limit=5"
    )
    assert status == 200, reply
    assert reply["text"] == "a,b"
    assert json.loads(reply["requestJson"]) == {
        "limit": 5,
        "order": "ORDER_NEWEST",
        "room": {"name": "r1"},
        "tags": ["a", "b"],
    }
    status, reply = await call(http, "GET", f"{echo_gateway}/v1/messages?room.name=r2&order=2")
    assert status == 200, reply
    assert json.loads(reply["requestJson"]) == {"order": "ORDER_NEWEST", "room": {"name": "r2"}}


async def test_the_gateway_describes_what_it_found(
    http: aiohttp.ClientSession, echo_gateway: str
) -> None:
    status, document = await call(http, "GET", f"{echo_gateway}/openapi.json")
    assert status == 200
    assert {op["operationId"] for path in document["paths"].values() for op in path.values()} == {
        "Echo_Say",
        "Echo_Find",
        "Echo_Find_1",
    }


@pytest.mark.parametrize(
    ("verb", "path", "kwargs", "status", "word"),
    [
        ("POST", "/v1/rooms/x:say", {"json": {"text": "fail"}}, 400, "asked to fail"),
        ("GET", "/v1/rooms/x/messages?limit=many", {}, 400, "limit"),
        ("GET", "/v1/rooms/x/messages?shout=true", {}, 400, "shout"),
        ("POST", "/v1/rooms/x:say", {"json": {"nope": 1}}, 400, "nope"),
        ("DELETE", "/v1/messages", {}, 405, "GET"),
        ("GET", "/v2/anything", {}, 404, "no route"),
    ],
)
async def test_errors_are_json_statuses(
    http: aiohttp.ClientSession,
    echo_gateway: str,
    verb: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    word: str,
) -> None:
    got, body = await call(http, verb, echo_gateway + path, **kwargs)
    assert got == status
    assert word in body["message"]


async def test_gateway_in_front_of_our_server(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    with (
        server_process("--store", f"sqlite:///{tmp_path / 'f.db'}") as files,
        gateway(files.grpc_address) as (_, match, _log),
    ):
        base = f"http://127.0.0.1:{match[2]}/files/v1/files"
        status, file = await call(
            http, "POST", base, json={"folderId": "f", "content": "aGk=", "labels": {"a": "1"}}
        )
        assert status == 200, file
        status, updated = await call(
            http,
            "PATCH",
            f"{base}/{file['id']}",
            json={"updateMask": "labels.`b.c`,name", "labels": {"b.c": "x"}, "name": "n"},
        )
        assert status == 200, updated
        assert updated["labels"] == {"a": "1", "b.c": "x"}
        assert (await call(http, "GET", f"{base}/{file['id']}")) == (200, updated)
        status, error = await call(http, "PATCH", f"{base}/{file['id']}", json={"updateMask": "id"})
        assert status == 400
        assert error["details"][0]["fieldViolations"][0]["field"] == "update_mask"
        status, page = await call(http, "GET", f"{base}?folderId=f")
        assert [f["id"] for f in page["files"]] == [file["id"]]


def test_an_unreachable_target_fails_with_one_clear_line() -> None:
    command = [sys.executable, "-m", "files_api.gateway", "--target", "127.0.0.1:1"]
    result = subprocess.run(
        [*command, "--http-listen", "127.0.0.1:0", "--connect-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot start: 127.0.0.1:1 did not answer within 1.0s" in result.stderr
    assert "Traceback" not in result.stderr
