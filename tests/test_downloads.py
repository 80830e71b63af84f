"""Signed downloads: byte ranges, validators, HEAD, activity as `relatime` keeps it, and the
memory a download may hold (issues #20 and #22), against real servers on loopback.

The protocol tables run on every backend (the `running` fixture: memory, SQLite, PostgreSQL) on
content of several stored rows, so ranges that start, end and cross inside rows are read as the
stores read them. The memory bounds run a server process on a SQLite store seeded before it
starts, and read its peak RSS from /proc.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from multidict import CIMultiDict

from files_api.app import Server, Settings
from files_api.auth import ANONYMOUS
from files_api.domain import Core
from files_api.domain.limits import ACTIVITY_SLACK_NS, NS_PER_DAY
from files_api.domain.records import activity, new_record
from files_api.http_api import UNSATISFIABLE, byte_range
from files_api.store import READ_BYTES, ContentGone, content_hash, open_store
from tests.support import server_process
from tests.test_ai_studio_sdk import make_tls_files

if TYPE_CHECKING:
    from collections.abc import Iterator

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.store import FileRecord, FileStore
    from tests.conftest import Running

MIB = 1024 * 1024
STATIC = common_pb2.ExpirationConfig.STATIC
SINCE_LAST_ACTIVE = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE
# Two and a half stored rows and a few bytes: ranges inside a row, across rows, in the tail.
CONTENT = bytes(range(256)) * (5 * MIB // 512) + b"tail!"
SIZE = len(CONTENT)
HUGE = "9" * 5000  # more digits than int() converts by default: must not be a 500


async def create(running: Running, content: bytes = CONTENT, **fields: object) -> file_pb2.File:
    request = fs.CreateFileRequest(folder_id="f1", content=content, **fields)  # type: ignore[arg-type]
    return await running.stub.Create(request)


async def link(running: Running, file_id: str) -> str:
    return (await running.stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id))).url


async def fetch(
    url: str, method: str = "GET", **headers: str
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(method, url, headers=headers) as response,
    ):
        return response.status, CIMultiDict(response.headers), await response.read()


async def expires_at(running: Running, file_id: str) -> int:
    file = await running.stub.Get(fs.GetFileRequest(file_id=file_id))
    return file.expires_at.ToNanoseconds()


# --- Range (RFC 9110 section 14) -----------------------------------------------------------

RANGES = [
    # header, status, (start, end) of the body, or None for no body
    (None, 200, (0, SIZE)),
    ("bytes=0-0", 206, (0, 1)),
    ("bytes=10-20", 206, (10, 21)),
    ("bytes=1048570-1048580", 206, (MIB - 6, MIB + 5)),  # across two rows
    ("bytes=1048576-", 206, (MIB, SIZE)),  # open-ended from a row's start
    ("bytes=100-", 206, (100, SIZE)),
    ("bytes=-10", 206, (SIZE - 10, SIZE)),  # suffix
    ("bytes=-99999999", 206, (0, SIZE)),  # a suffix longer than the file is the file
    (f"bytes=0-{HUGE}", 206, (0, SIZE)),  # a last position past the end is the end
    (f"bytes={SIZE - 1}-{SIZE + 100}", 206, (SIZE - 1, SIZE)),
    ("bytes = 3-4", 206, (3, 5)),
    (f"bytes={SIZE}-", 416, None),  # starts at the end
    (f"bytes={SIZE + 5}-{SIZE + 9}", 416, None),
    (f"bytes={HUGE}-", 416, None),
    ("bytes=-0", 416, None),  # an empty suffix selects nothing
    ("bytes=5-1", 200, (0, SIZE)),  # invalid: ignored
    ("bytes=0-1,5-6", 200, (0, SIZE)),  # several ranges: ignored, the whole file
    ("bytes=0-1, -3", 200, (0, SIZE)),
    ("bytes=abc", 200, (0, SIZE)),  # malformed: ignored
    ("bytes=", 200, (0, SIZE)),
    ("bytes=-", 200, (0, SIZE)),
    ("bytes=1", 200, (0, SIZE)),
    ("items=0-5", 200, (0, SIZE)),  # a unit we do not have
    ("bytes=٣-٤", 200, (0, SIZE)),  # Arabic-Indic digits are not DIGIT
]


@pytest.fixture
async def shared(running: Running) -> tuple[Running, file_pb2.File, str]:
    file = await create(running, name="data.bin")
    return running, file, await link(running, file.id)


@pytest.mark.parametrize(("header", "status", "body"), RANGES)
async def test_a_range_is_answered_as_rfc_9110_says(
    shared: tuple[Running, file_pb2.File, str],
    header: str | None,
    status: int,
    body: tuple[int, int] | None,
) -> None:
    _, _, url = shared
    got_status, headers, got = await fetch(url, **({"Range": header} if header else {}))
    assert got_status == status
    assert headers["Accept-Ranges"] == "bytes"
    if status == 416:
        assert headers["Content-Range"] == f"bytes */{SIZE}"
        return
    assert body is not None
    start, end = body
    assert got == CONTENT[start:end]
    assert headers["Content-Length"] == str(end - start)
    if status == 206:
        assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
    else:
        assert "Content-Range" not in headers


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        (None, 200, b""),
        ("bytes=0-", 416, None),
        ("bytes=0-0", 416, None),
        ("bytes=-5", 200, b""),  # satisfiable, but has no bytes to name: the empty file
        ("bytes=-0", 416, None),
        ("bytes=0-1,3-4", 200, b""),
    ],
)
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_ranges_of_an_empty_file(
    running: Running, header: str | None, status: int, body: bytes | None
) -> None:
    # Create refuses empty content; a staged PDS upload of no bytes is how a file gets none.
    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{running.server.http_port}/v2/file"
        drive = {"drive_id": "f1", "name": "empty.txt", "type": "file", "size": 0}
        async with session.post(f"{base}/create", json=drive) as response:
            staged = await response.json()
        async with session.put(staged["part_info_list"][0]["upload_url"], data=b"") as response:
            assert response.status == 200
        ids = {"drive_id": "f1", "file_id": staged["file_id"], "upload_id": staged["upload_id"]}
        async with session.post(f"{base}/complete", json=ids) as response:
            assert response.status == 200, await response.text()
    url = await link(running, staged["file_id"])
    got_status, headers, got = await fetch(url, **({"Range": header} if header else {}))
    assert got_status == status
    if status == 416:
        assert headers["Content-Range"] == "bytes */0"
    else:
        assert (got, headers["Content-Length"]) == (body, "0")


def test_range_parsing_bounds_every_number() -> None:
    assert byte_range("bytes=0-" + "9" * 100, 10) == (0, 10)
    assert byte_range("bytes=" + "9" * 100 + "-", 10) == UNSATISFIABLE
    assert byte_range("bytes=-" + "9" * 100, 10) == (0, 10)
    assert byte_range("bytes=0-4", 10) == (0, 5)
    assert byte_range(None, 10) is None


async def test_a_bad_signature_is_refused_before_any_range(
    shared: tuple[Running, file_pb2.File, str],
) -> None:
    running, _, url = shared
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    for header in ("bytes=0-5", f"bytes={SIZE}-", "bytes=junk", "bytes=-0"):
        status, _, body = await fetch(tampered, Range=header)
        assert status == 403, header
        assert b"invalid or has expired" in body
        assert (await fetch(tampered, "HEAD", Range=header))[0] == 403
    running.clock.advance(3600 * 10**9)  # the link expires
    assert (await fetch(url, Range=f"bytes={SIZE}-"))[0] == 403


# --- validators and HEAD -------------------------------------------------------------------


async def test_the_etag_is_the_content_hash_and_if_none_match_answers_304(
    shared: tuple[Running, file_pb2.File, str],
) -> None:
    _, _, url = shared
    tag = f'"{hashlib.sha1(CONTENT).hexdigest().upper()}"'
    status, headers, _ = await fetch(url)
    assert (status, headers["ETag"]) == (200, tag)
    for matching in (tag, f"W/{tag}", "*", f'"other", {tag}'):
        status, headers, body = await fetch(url, **{"If-None-Match": matching})
        assert (status, body, headers["ETag"]) == (304, b"", tag), matching
        assert (await fetch(url, "HEAD", **{"If-None-Match": matching}))[0] == 304
    status, _, body = await fetch(url, **{"If-None-Match": '"other"'})
    assert (status, len(body)) == (200, SIZE)


async def test_if_range_gives_the_range_only_while_the_validator_matches(
    shared: tuple[Running, file_pb2.File, str],
) -> None:
    _, _, url = shared
    tag = f'"{hashlib.sha1(CONTENT).hexdigest().upper()}"'
    status, _, body = await fetch(url, Range="bytes=5-9", **{"If-Range": tag})
    assert (status, body) == (206, CONTENT[5:10])
    for stale in ('"other"', f"W/{tag}", "Tue, 01 Dec 2026 10:00:00 GMT"):
        status, _, body = await fetch(url, Range="bytes=5-9", **{"If-Range": stale})
        assert (status, len(body)) == (200, SIZE), stale


async def test_head_gives_the_headers_of_get_without_body_or_activity(
    running: Running,
) -> None:
    file = await create(running, name="h.bin")
    url = await link(running, file.id)
    before = await expires_at(running, file.id)
    running.clock.advance(10 * ACTIVITY_SLACK_NS)
    status, head, body = await fetch(url, "HEAD")
    assert (status, body) == (200, b"")
    assert await expires_at(running, file.id) == before  # HEAD is not activity
    _, get, _ = await fetch(url)
    for name in ("Content-Length", "Content-Type", "ETag", "Accept-Ranges", "Content-Disposition"):
        assert head[name] == get[name], name
    # Range is defined for GET only (RFC 9110 section 14.2): a HEAD with one has the whole.
    status, head, _ = await fetch(url, "HEAD", Range="bytes=0-5")
    assert (status, head["Content-Length"]) == (200, str(SIZE))


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_curl_resumes_an_interrupted_download(running: Running, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed to test `curl -C -`"
    file = await create(running, name="resume.bin")
    url = await link(running, file.id)
    partial = tmp_path / "resume.bin"
    partial.write_bytes(CONTENT[: MIB + 12345])  # as a download cut off there leaves it
    result = await asyncio.create_subprocess_exec(
        curl, "-sS", "--fail", "-C", "-", "-o", str(partial), url
    )
    assert await result.wait() == 0
    assert partial.read_bytes() == CONTENT


# Over TLS, Python encrypts what it writes: a file of many stored rows, whole and in ranges,
# through the same pieces and socket waits as in clear.
TLS_RANGES = [
    (None, (0, SIZE)),
    ("bytes=1048570-1048580", (MIB - 6, MIB + 5)),
    ("bytes=-10", (SIZE - 10, SIZE)),
]


async def test_over_tls_a_file_of_many_rows_arrives_whole_and_in_ranges(tmp_path: Path) -> None:
    ca, cert, key = make_tls_files(tmp_path)
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store=f"sqlite:///{tmp_path / 'files.db'}",
        tls_cert=str(cert),
        tls_key=str(key),
        shutdown_grace_seconds=1,
        drain_quiet_seconds=0,
    )
    server = Server(settings, Core(open_store(settings.store)))
    await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(ca.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{server.grpc_port}", credentials) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            file = await stub.Create(fs.CreateFileRequest(folder_id="f1", content=CONTENT))
            url = (await stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id))).url
        assert url.startswith("https://")
        tls = ssl.create_default_context(cafile=ca)
        async with aiohttp.ClientSession() as session:
            for header, (start, end) in TLS_RANGES:
                headers = {"Range": header} if header else {}
                async with session.get(url, ssl=tls, headers=headers) as response:
                    assert response.status == (206 if header else 200)
                    assert await response.read() == CONTENT[start:end]
    finally:
        await server.stop()


# --- activity, as relatime keeps it ---------------------------------------------------------


def _record(policy: int, expires_at_ns: int, ttl_days: int = 1) -> FileRecord:
    record = new_record(
        "f1", ANONYMOUS, 0, name="a", description="", mime_type="text/plain", size=1, policy=policy
    )
    return record._replace(ttl_days=ttl_days, expires_at_ns=expires_at_ns)


@pytest.mark.parametrize(
    ("policy", "stored", "now", "written"),
    [
        (SINCE_LAST_ACTIVE, NS_PER_DAY, ACTIVITY_SLACK_NS - 1, None),  # within the slack: skip
        (SINCE_LAST_ACTIVE, NS_PER_DAY, ACTIVITY_SLACK_NS, NS_PER_DAY + ACTIVITY_SLACK_NS),
        (SINCE_LAST_ACTIVE, NS_PER_DAY, 3600 * 10**9, NS_PER_DAY + 3600 * 10**9),
        (SINCE_LAST_ACTIVE, 5 * NS_PER_DAY, 3600 * 10**9, None),  # never backwards
        (STATIC, NS_PER_DAY, 3600 * 10**9, None),  # a STATIC file's expiry never moves
    ],
)
def test_activity_writes_once_a_minute_and_never_backwards(
    policy: int, stored: int, now: int, written: int | None
) -> None:
    record = _record(policy, stored)
    changed = activity(record, now)
    assert (None if changed is None else changed.expires_at_ns) == written


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_download_writes_activity_only_past_the_slack(running: Running) -> None:
    file = await create(running, expiration_config=common_pb2.ExpirationConfig(ttl_days=1))
    url = await link(running, file.id)
    created = await expires_at(running, file.id)
    running.clock.advance(ACTIVITY_SLACK_NS // 2)
    assert (await fetch(url, Range="bytes=0-0"))[0] == 206
    assert await expires_at(running, file.id) == created  # skipped: within a minute
    running.clock.advance(ACTIVITY_SLACK_NS // 2)
    assert (await fetch(url))[0] == 200
    assert await expires_at(running, file.id) == running.clock.now + NS_PER_DAY
    assert [e.action for e in await running.server.core.store.audit_log(file.id)] == ["create"]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_a_static_file_is_never_written_by_a_download(running: Running) -> None:
    policy = common_pb2.ExpirationConfig(expiration_policy=STATIC, ttl_days=2)
    file = await create(running, expiration_config=policy)
    url = await link(running, file.id)
    running.clock.advance(1800 * 10**9)
    assert (await fetch(url))[0] == 200
    assert await expires_at(running, file.id) == file.expires_at.ToNanoseconds()


# --- deleted while downloaded ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
async def test_a_file_deleted_mid_download_is_cut_short_or_whole_never_wrong(
    running: Running, backend: str
) -> None:
    content = bytes(range(251)) * (48 * MIB // 251)  # well past what socket buffers hold
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="f1", content=content))
    url = await link(running, file.id)
    received = bytearray()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        received += await response.content.readexactly(1000)
        await running.stub.Delete(fs.DeleteFileRequest(file_id=file.id))
        # Written where the deleted rows were (SQLite gives a new row the rowid a deleted last
        # row had): a read by a stale rowid would find these bytes.
        other = b"\xff" * (3 * MIB)
        await running.stub.Create(fs.CreateFileRequest(folder_id="f1", content=other))
        try:
            while chunk := await response.content.read(MIB):
                received += chunk
        except aiohttp.ClientPayloadError:
            pass
    assert bytes(received) == content[: len(received)]  # never a byte of anything else
    if backend == "postgres":
        assert len(received) < len(content)  # the rest is gone: the connection ended early
    else:  # the download holds the content it began with (SQLite: its open file beside)
        assert len(received) == len(content)


async def test_a_piece_read_after_a_delete_is_never_another_files(
    store: FileStore, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's side of it, step by step: a download has read the first piece of a row when
    its file is deleted and another written in its place (SQLite gives the new rows the rowids
    the deleted last rows had). SQLite keeps this content in its rows here, as it does small
    content, and did all content before it kept big content beside the database."""
    monkeypatch.setattr("files_api.store.sqlite.BESIDE_BYTES", SIZE)
    now = time.time_ns()

    def record(content: bytes) -> FileRecord:
        made = new_record(
            "f1", ANONYMOUS, now, name="x", description="", mime_type="text/plain", size=SIZE
        )
        return made._replace(content_hash=content_hash(content))

    first = await store.create(record(CONTENT), CONTENT)
    blob = await store.open_content(first.id, now)
    assert blob is not None
    pieces = blob.chunks(0, SIZE)
    read = bytearray(await anext(pieces))
    # SQLite reads a row in pieces: the rest of this one is still to read, by the rowid found.
    assert len(read) < (MIB if backend == "sqlite" else SIZE)
    assert await store.delete(first.id, now)
    other = bytes(255 - b for b in CONTENT)
    await store.create(record(other), other)
    try:
        async for piece in pieces:
            read += piece
    except ContentGone:
        assert backend != "memory"
        assert bytes(read) == CONTENT[: len(read)] and len(read) < SIZE
    else:
        assert (backend, bytes(read)) == ("memory", CONTENT)  # it holds what it began with


# --- memory (issue #22) ---------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Resets VmHWM to the current RSS (Linux's clear_refs 5); returns that RSS in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_kib(pid, "VmRSS") * 1024


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A SQLite store holding a 128 MiB and a 100 MiB file, written before any server runs
    (so no server's RSS has held them), and a signed path to each."""
    path = tmp_path_factory.mktemp("downloads") / "files.db"

    async def fill() -> dict[str, str]:
        store = open_store(f"sqlite:///{path}")
        await store.open()
        core = Core(store)
        await core.start()
        paths = {}
        try:
            for mib in (128, 100):
                content = bytes(range(256)) * (mib * MIB // 256)
                record = new_record(
                    "f1",
                    ANONYMOUS,
                    core.clock(),
                    name=f"{mib}.bin",
                    description="",
                    mime_type="application/octet-stream",
                    size=len(content),
                )
                record = record._replace(content_hash=content_hash(content))
                await store.create(record, content)
                url, _ = core.download_url(record, "", 3600)
                paths[f"{mib}"] = url
        finally:
            await store.close()
        return paths

    paths = asyncio.run(fill())
    paths["store"] = f"sqlite:///{path}"
    return paths


@pytest.fixture
def seeded_server(seeded: dict[str, str]) -> Iterator[tuple[int, str, str]]:
    """A server process on the seeded store: (pid, HTTP address, gRPC address)."""
    with server_process("--store", seeded["store"]) as server:
        yield server.process.pid, server.http_address, server.grpc_address


async def _download_all(url: str) -> int:
    read = 0
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(READ_BYTES):
            read += len(chunk)
    return read


def test_16_downloads_of_128_mib_add_at_most_64_mib(
    seeded: dict[str, str], seeded_server: tuple[int, str, str]
) -> None:
    pid, http_address, _ = seeded_server
    url = f"http://{http_address}{seeded['128']}"

    async def all_at_once() -> list[int]:
        return await asyncio.gather(*(_download_all(url) for _ in range(16)))

    asyncio.run(_download_all(url))  # warm: the first read of a file fills caches
    before = _reset_peak(pid)
    assert asyncio.run(all_at_once()) == [128 * MIB] * 16
    added = _status_kib(pid, "VmHWM") * 1024 - before
    assert added <= 64 * MIB, f"16 downloads of 128 MiB added {added / MIB:.0f} MiB of RSS"


@pytest.fixture
def stalled(seeded: dict[str, str], seeded_server: tuple[int, str, str]) -> Iterator[int]:
    """20 connections that ask for the 100 MiB file and never read; the RSS they added."""
    pid, http_address, _ = seeded_server
    host, _, port = http_address.rpartition(":")
    before = _reset_peak(pid)
    sockets = []
    try:
        for _ in range(20):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(f"GET {seeded['100']} HTTP/1.1\r\nHost: {http_address}\r\n\r\n".encode())
            sockets.append(sock)
        # Until the server has filled what each socket holds and waits on it (RSS stops growing).
        last, steady_since = -1, time.monotonic()
        while time.monotonic() - steady_since < 1.0:
            rss = _status_kib(pid, "VmRSS")
            if rss != last:
                last, steady_since = rss, time.monotonic()
            time.sleep(0.05)
        yield _status_kib(pid, "VmHWM") * 1024 - before
    finally:
        for sock in sockets:
            sock.close()


def test_20_stalled_readers_hold_little_and_stall_no_one(
    seeded_server: tuple[int, str, str], stalled: int
) -> None:
    _, _, grpc_address = seeded_server
    assert stalled < 256 * MIB, f"20 stalled readers added {stalled / MIB:.0f} MiB of RSS"
    with grpc.insecure_channel(grpc_address) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        created = stub.Create(fs.CreateFileRequest(folder_id="f1", content=b"small"))
        worst = 0.0
        for _ in range(20):
            started = time.monotonic()
            stub.Get(fs.GetFileRequest(file_id=created.id), timeout=5)
            worst = max(worst, time.monotonic() - started)
    assert worst < 0.25, f"a Get took {worst * 1000:.0f} ms beside 20 stalled downloads"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_a_link_takes_get_and_head_only(running: Running, method: str) -> None:
    file = await running.stub.Create(fs.CreateFileRequest(folder_id="m", content=b"x"))
    url = (await running.stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id))).url
    async with aiohttp.ClientSession() as session, session.request(method, url) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
        assert (await response.json())["message"]
