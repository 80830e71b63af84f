"""Archives: export, import and migrate between real SQLite and PostgreSQL stores, the checks
that refuse a bad archive (leaving the target as it was), and a snapshot's consistency under a
stream of Updates. The commands run as the installed CLI would, in a child process."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from files_api import archive
from files_api.store import AuditEvent, FileRecord, Upload, open_store
from files_api.store.beside import ContentFiles, content_dir
from files_api.testing import FilesApiServer
from tests.inprocess import store_for, threaded_server
from tests.support import ROOT, run_server_command

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.store import FileStore
    from tests.postgres import Cluster

NOW = 1_800_000_000_123_456_789  # far enough ahead that nothing expires during a test
FAR = NOW + 400 * 86400 * 10**9
FOLDERS = ("b1gone", "b1gtwo", "b1gthree")
BIG = (0, 1, 2**20 + 1, 9 * 2**20 + 7, 20 * 2**20)  # a staged SQLite write among them


@pytest.fixture
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(source, target) URLs of the backends the test names, each fresh and empty."""
    source_kind, target_kind = request.param
    cluster: Cluster | None = None
    if "postgres" in (source_kind, target_kind):
        cluster = request.getfixturevalue("postgres_cluster")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        store_for(source_kind, str(tmp_path / "a"), cluster) as source,
        store_for(target_kind, str(tmp_path / "b"), cluster) as target,
    ):
        yield source, target


def _record(index: int, rng: random.Random, size: int, content: bytes) -> FileRecord:
    created = NOW - rng.randrange(10**12) * 1000 - index  # nanoseconds that matter
    labels = {f"k{j}": rng.choice(["a", "b-1", "c.d", ""]) for j in range(rng.randrange(4))}
    return FileRecord(
        id=f"f{index:019d}",
        folder_id=FOLDERS[index % len(FOLDERS)],
        name=f"name {index % 40}/ü {index}",
        description=rng.choice(["", "plain", "with \x00 nul", "ünïcödé " * 3]),
        mime_type=rng.choice(["text/plain", "application/json", "image/png; x=1"]),
        created_by=rng.choice(["alice", "bob", ""]),
        created_at_ns=created,
        updated_by="carol",
        updated_at_ns=created + rng.randrange(10**9),
        expiration_policy=rng.choice([1, 2]),
        ttl_days=rng.randrange(1, 400),
        expires_at_ns=FAR + index,
        labels=labels,
        size=size,
        hidden=index % 7 == 0,
        starred=index % 5 == 0,
        local_created_at_ns=None if index % 3 else created - 12_345,
        local_modified_at_ns=None if index % 4 else created - 1,
        content_hash=hashlib.sha1(content, usedforsecurity=False).hexdigest().upper(),
        pds_labels=("red", f"l{index % 3}") if index % 6 == 0 else (),
    )


async def _populate(url: str, files: int = 300) -> None:
    """`files` files of mixed sizes (some sharing content), audit records, a pending upload."""
    rng = random.Random(19)
    store = open_store(url)
    await store.open()
    try:
        for index in range(files):
            size = BIG[index] if index < len(BIG) else rng.randrange(3000)
            content = b"same content" if index % 10 == 9 else rng.randbytes(size)
            record = _record(index, rng, len(content), content)
            event = AuditEvent(record.id, record.created_at_ns, "alice", "create", (), f"r{index}")
            await store.create(record, content, event)
            if index % 4 == 0:
                await store.update(
                    record.id,
                    NOW,
                    lambda r: r._replace(name=r.name + " (2)", updated_at_ns=r.updated_at_ns + 1),
                    lambda old, new: AuditEvent(
                        new.id, new.updated_at_ns, "bob", "update", ("name",), f"u{old.id}"
                    ),
                )
        gone = _record(files, rng, 1, b"x")
        await store.create(gone, b"x")
        await store.delete(gone.id, NOW, audit=AuditEvent(gone.id, NOW, "bob", "delete", (), "d"))
        pending = _record(files + 1, rng, 0, b"")
        await store.stage(Upload(pending, "up1", 3, FAR, "fail"))
        for number, part in ((1, b"part one"), (2, b"")):
            assert await store.put_part(
                pending.id, "up1", number, part, now_ns=NOW, check=lambda _: None
            )
    finally:
        await store.close()


def _export(url: str, out: Path, *flags: str) -> None:
    result = run_server_command("export", "--store", url, "--out", str(out), *flags)
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("exported "), result.stderr
    assert os.stat(out).st_mode & 0o777 == 0o600


def _import(url: str, source: Path, *flags: str) -> str:
    result = run_server_command("import", "--store", url, "--in", str(source), *flags)
    assert result.returncode == 0, result.stderr
    return result.stderr


class Seen:
    """What clients see of a store through a real server."""

    def __init__(self, url: str, link_ids: list[str] | None = None) -> None:
        self.gets: dict[str, file_pb2.File] = {}
        self.pages: list[list[str]] = []
        self.links: list[str] = []
        self.downloads: list[bytes] = []
        with threaded_server(url) as server:
            stub = server.stub
            for folder in FOLDERS:
                token = ""
                while True:
                    page = stub.List(
                        fs.ListFilesRequest(folder_id=folder, page_size=17, page_token=token)
                    )
                    self.pages.append([f.id for f in page.files])
                    for file in page.files:
                        self.gets[file.id] = stub.Get(fs.GetFileRequest(file_id=file.id))
                    token = page.next_page_token
                    if not token:
                        break
            for file_id in link_ids or []:
                url = stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id)).url
                parts = urlsplit(url)
                self.links.append(f"{parts.path}?{parts.query}")

    def download(self, url: str) -> list[tuple[int, bytes]]:
        with threaded_server(url) as server:
            return [(r.status, r.body) for r in (server.http("GET", link) for link in self.links)]


async def _contents(
    url: str, files: int = 300, *, upload: bool = True
) -> dict[str, tuple[str, list[AuditEvent]]]:
    """Each live file's content SHA-256 and audit trail, and the pending upload's parts."""
    store = open_store(url)
    await store.open()
    try:
        seen: dict[str, tuple[str, list[AuditEvent]]] = {}
        async with store.snapshot(NOW) as snapshot:
            ids = [record.id async for record in snapshot.files()]
        for file_id in [*ids, f"f{files:019d}"]:
            content = await store.content(file_id, NOW)
            digest = "" if content is None else hashlib.sha256(content).hexdigest()
            seen[file_id] = (digest, await store.audit_log(file_id))
        if upload:
            pending = await store.pending_upload(f"f{files + 1:019d}", "up1", NOW)
            assert pending is not None
            seen["upload"] = (repr(pending), [])
        return seen
    finally:
        await store.close()


@pytest.mark.parametrize("stores", [("sqlite", "postgres"), ("postgres", "sqlite")], indirect=True)
@pytest.mark.parametrize("suffix", [".tar", ".tar.zst"])
def test_a_store_comes_out_of_an_archive_as_it_went_in(
    stores: tuple[str, str], suffix: str, tmp_path: Path
) -> None:
    source, target = stores
    asyncio.run(_populate(source))
    before = Seen(source, link_ids=[f"f{i:019d}" for i in (3, 4, 11)])
    out = tmp_path / f"store{suffix}"
    _export(source, out)
    if suffix == ".tar":
        names = [m.name for m, _ in _entries(out)]
        assert names[0] == "manifest.json" and "secret" in names
        assert sum(n.startswith("content/") for n in names) < 300 + 3  # shared content once
    assert "imported 300 files" in _import(target, out)

    after = Seen(target)
    assert after.gets == before.gets  # protobuf messages, field by field
    assert len(after.gets) == 300
    assert after.pages == before.pages
    downloads = before.download(target)  # links made before the export
    assert [status for status, _ in downloads] == [200, 200, 200]
    assert asyncio.run(_contents(target)) == asyncio.run(_contents(source))


@pytest.mark.parametrize("stores", [("sqlite", "sqlite")], indirect=True)
def test_import_refuses_a_store_with_files_unless_merging(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    source, target = stores
    asyncio.run(_populate(source, files=20))
    out = tmp_path / "a.tar.gz"
    _export(source, out, "--without-secret", "--without-uploads")
    assert "secret" not in [m.name for m, _ in _entries(out)]
    _import(target, out)
    refused = run_server_command("import", "--store", target, "--in", str(out))
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("use --merge"), refused.stderr
    history = asyncio.run(_contents(target, files=20, upload=False))
    assert "20 skipped as their ids exist" in _import(target, out, "--merge")
    assert asyncio.run(_contents(target, files=20, upload=False)) == history  # no history twice
    assert (tmp_path / "a.tar.gz").exists() and not (tmp_path / "a.tar.gz.partial").exists()


def test_memory_stores_are_refused_where_they_make_no_sense(tmp_path: Path) -> None:
    for command in (
        ["export", "--store", "memory:", "--out", str(tmp_path / "x.tar")],
        ["import", "--store", "memory:", "--in", str(tmp_path / "x.tar")],
        ["migrate", "--from", "memory:", "--to", f"sqlite:///{tmp_path}/x.db"],
        ["backup", "--store", "memory:", "--out", str(tmp_path / "x.db")],
    ):
        result = run_server_command(*command)
        assert result.returncode == 1, command
        assert result.stderr.count("\n") == 1 and "memory:" in result.stderr, result.stderr


# --- bad archives -------------------------------------------------------------------------


def _entries(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def _rewrite(path: Path, entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _edit_line(data: bytes, number: int, change: dict[str, object]) -> bytes:
    lines = data.splitlines(keepends=True)
    line = json.loads(lines[number - 1])
    line.update(change)
    lines[number - 1] = json.dumps(line).encode() + b"\n"
    return b"".join(lines)


def _bad_archives(good: Path) -> Iterator[tuple[str, bytes, str]]:
    """(what, archive bytes, the message's start) for each way an archive can be bad."""
    raw = good.read_bytes()
    entries = [(m.name, data) for m, data in _entries(good)]
    names = [name for name, _ in entries]
    blob = next(i for i, n in enumerate(names) if n.startswith("content/") and entries[i][1])
    files = names.index("files.jsonl")

    def replaced(index: int, data: bytes) -> bytes:
        return _rewrite(good, [(n, data if i == index else d) for i, (n, d) in enumerate(entries)])

    yield "truncated mid-content", raw[: len(raw) // 2], names[blob][:8]
    yield "truncated at an entry's end", _rewrite(good, entries[:files]), "files.jsonl: 0 records"
    changed = bytearray(entries[blob][1])
    changed[len(changed) // 2] ^= 1
    yield "a changed byte", replaced(blob, bytes(changed)), f"{names[blob]}: content does not"
    yield (
        "a missing blob",
        _rewrite(good, [e for i, e in enumerate(entries) if i != blob]),
        "files.jsonl line",
    )
    manifest = json.loads(entries[0][1])
    yield (
        "an unknown format version",
        replaced(0, json.dumps({**manifest, "version": 99}).encode()),
        "manifest.json: unknown format version 99",
    )
    lines = entries[files][1].splitlines(keepends=True)
    yield (
        "a duplicate id",
        replaced(files, lines[0] + b"".join(lines[2:]) + lines[0]),
        "files.jsonl line",
    )
    yield (
        "a line that does not parse",
        replaced(files, lines[0] + b"{not json\n" + b"".join(lines[2:])),
        "files.jsonl line 2: not JSON",
    )
    yield (
        "a field of the wrong type",
        replaced(files, _edit_line(entries[files][1], 3, {"pds": {"hidden": "yes"}})),
        "files.jsonl line 3:",
    )


@pytest.mark.parametrize("stores", [("sqlite", "postgres")], indirect=True)
def test_a_bad_archive_leaves_the_target_as_it_was(stores: tuple[str, str], tmp_path: Path) -> None:
    source, postgres = stores
    asyncio.run(_populate(source, files=12))
    good = tmp_path / "good.tar"
    _export(source, good)
    sqlite_target = f"sqlite:///{tmp_path}/target.db"
    asyncio.run(_populate(f"sqlite:///{tmp_path}/other.db", files=3))  # a store with files

    async def open_close(url: str) -> None:
        store = open_store(url)
        await store.open()
        await store.close()

    asyncio.run(open_close(sqlite_target))
    before = (tmp_path / "target.db").read_bytes()
    for what, data, message in _bad_archives(good):
        bad = tmp_path / "bad.tar"
        bad.write_bytes(data)
        for target in (sqlite_target, postgres):
            result = run_server_command("import", "--store", target, "--in", str(bad))
            assert result.returncode == 1, (what, result.stderr)
            line = result.stderr.removeprefix("files-api import: ")
            assert result.stderr.count("\n") == 1 and line.startswith(message), (what, line)
        assert (tmp_path / "target.db").read_bytes() == before, what
        assert asyncio.run(_row_counts(postgres)) == (0, 0, 0, 0), what
    _import(postgres, good)  # and the good one goes in after all that
    assert asyncio.run(_row_counts(postgres))[0] == 12


async def _row_counts(url: str) -> tuple[int, ...]:
    store = open_store(url)
    await store.open()
    try:
        pool = store._pool  # type: ignore[attr-defined]
        async with pool.acquire() as conn:
            return tuple(
                [
                    await conn.fetchval(f"SELECT count(*) FROM {table}")
                    for table in ("files", "contents", "audit", "uploads")
                ]
            )
    finally:
        await store.close()


# --- consistency --------------------------------------------------------------------------


@pytest.mark.parametrize("stores", [("sqlite", "postgres"), ("postgres", "sqlite")], indirect=True)
def test_an_export_during_updates_holds_states_that_existed(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    """Each Update adds a label `n<k>` = str(k) and one audit record, in one transaction: a file
    exported with k such labels must have exactly 1 + k audit records in the archive."""
    source, _ = stores
    asyncio.run(_populate(source, files=6))
    stop = threading.Event()
    updates = [0]

    def update_forever() -> None:
        async def run() -> None:
            store = open_store(source)
            await store.open()
            try:
                k = 0
                while not stop.is_set():
                    k += 1

                    def change(r: FileRecord, k: int = k) -> FileRecord:
                        return r._replace(labels={**r.labels, f"n{k}": str(k)})

                    def event(old: FileRecord, new: FileRecord, k: int = k) -> AuditEvent:
                        return AuditEvent(new.id, NOW + k, "w", "update", (f"labels.n{k}",), "w")

                    for index in range(6):
                        await store.update(f"f{index:019d}", NOW, change, event)
                    updates[0] = k
            finally:
                await store.close()

        asyncio.run(run())

    writer = threading.Thread(target=update_forever)
    writer.start()
    try:
        archives = []
        for round_ in range(3):
            while updates[0] < 5 * (round_ + 1):
                stop.wait(0.01)
            out = tmp_path / f"during{round_}.tar"
            _export(source, out)
            archives.append(out)
    finally:
        stop.set()
        writer.join()
    for out in archives:
        entries = {m.name: data for m, data in _entries(out)}
        audit = [json.loads(line) for line in entries["audit.jsonl"].splitlines()]
        for line in entries["files.jsonl"].splitlines():
            file = json.loads(line)["file"]
            k = sum(key.startswith("n") for key in file.get("labels", {}))
            mine = [e for e in audit if e["fileId"] == file["id"]]
            updates_seen = [e for e in mine if e["subject"] == "w"]
            assert len(updates_seen) == k, (out.name, file["id"])
            assert all(file["labels"][f"n{j}"] == str(j) for j in range(1, k + 1))
        manifest = json.loads(entries["manifest.json"])
        assert manifest["counts"]["auditRecords"] == len(audit)


def test_archive_lines_round_trip_every_field() -> None:
    rng = random.Random(1)
    record = _record(6, rng, 3, b"abc")
    assert record.local_created_at_ns is not None and record.pds_labels
    line = json.loads(json.dumps(archive.record_json(record)))
    assert archive.record_from_json(line) == record
    assert line["file"]["createdAt"].endswith("Z") and "." in line["file"]["createdAt"]


# --- migrate ------------------------------------------------------------------------------

MIGRATE_FILES = 128
MIGRATE_CONTENT = 16 * 2**20  # 2 GiB in all, as the issue asks: about 80 s here
RSS_BOUND_KIB = 160 * 1024

# Runs the command in a child of its own and prints that child's peak RSS (KiB) last on stderr:
# the test's own process, its server threads and the PostgreSQL cluster stay out of the figure.
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big
# pytest process would report the parent's peak (and did: 239 MiB, then 580 MiB).
_MEASURED = """
import re, runpy, sys
sys.argv = ["files-api", *sys.argv[1:]]
try:
    runpy.run_module("files_api", run_name="__main__")
finally:
    with open("/proc/self/status") as status:
        print(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1], file=sys.stderr)
"""


async def _populate_big(url: str) -> dict[str, str]:
    store = open_store(url)
    await store.open()
    digests = {}
    try:
        rng = random.Random(2)
        for index in range(MIGRATE_FILES):
            content = os.urandom(MIGRATE_CONTENT)
            digests[f"f{index:019d}"] = hashlib.sha256(content).hexdigest()
            await store.create(_record(index, rng, len(content), content), content)
            del content
    finally:
        await store.close()
    return digests


@pytest.mark.parametrize("stores", [("sqlite", "postgres")], indirect=True)
def test_migrate_copies_a_big_store_in_bounded_memory(
    stores: tuple[str, str], tmp_path: Path
) -> None:
    """2 GiB of 16 MiB contents from SQLite to PostgreSQL: the migrating process's peak RSS
    stays under 160 MiB (101 MiB measured; 99 MiB for 512 MiB and for 1 GiB). What it holds is a few
    copies of one content on the export side of the pipe, 1 MiB pieces on the import side,
    and the interpreter; nothing grows with the number of files, so 2 GiB or 10 GiB of such
    contents stays within the same bound."""
    source, target = stores
    digests = asyncio.run(_populate_big(source))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _MEASURED, "migrate", "--from", source, "--to", target],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    *lines, peak = result.stderr.splitlines()
    assert lines[-1].startswith(f"migrated and verified {MIGRATE_FILES} files"), lines
    if time.monotonic() - started > 2 * archive.PROGRESS_SECONDS:  # long enough to report
        progress = rf"\w+ \d+ of {MIGRATE_FILES} files, \d+ MiB"
        assert any(re.fullmatch(progress, line) for line in lines), lines
    assert int(peak) < RSS_BOUND_KIB, f"peak RSS {int(peak) // 1024} MiB"
    assert asyncio.run(_sha256s(target)) == digests
    again = run_server_command("migrate", "--from", source, "--to", target)
    assert again.returncode == 1 and "not empty" in again.stderr


async def _sha256s(url: str) -> dict[str, str]:
    store = open_store(url)
    await store.open()
    try:
        async with store.snapshot(NOW) as snapshot:
            return {
                r.id: hashlib.sha256(await snapshot.content(r.id)).hexdigest()
                async for r in snapshot.files()
            }
    finally:
        await store.close()


# --- backup -------------------------------------------------------------------------------


def test_backup_while_a_writer_runs_serves_every_acknowledged_file(tmp_path: Path) -> None:
    """Creates (some content in rows, some beside the database) and deletes go on during the
    backup; every file acknowledged before it comes back whole from the copy, content files
    included, and none a delete removed is missing from it."""
    source = f"sqlite:///{tmp_path}/live.db"
    copy = tmp_path / "copy.db"
    acknowledged: dict[str, str] = {}
    stop = threading.Event()
    with threaded_server(source) as server:

        def write() -> None:
            index = 0
            while not stop.is_set():
                index += 1
                content = os.urandom(index % 7 * 100_000 + 1)
                file = server.stub.Create(
                    fs.CreateFileRequest(folder_id="b1gone", name=f"n{index}", content=content)
                )
                acknowledged[file.id] = hashlib.sha256(content).hexdigest()
                doomed = server.stub.Create(
                    fs.CreateFileRequest(folder_id="b1gone", content=content)
                )
                server.stub.Delete(fs.DeleteFileRequest(file_id=doomed.id))

        writer = threading.Thread(target=write)
        writer.start()
        try:
            while len(acknowledged) < 30 and writer.is_alive():
                stop.wait(0.01)
            before = dict(acknowledged)
            result = run_server_command("backup", "--store", source, "--out", str(copy))
            during = len(acknowledged) - len(before)
        finally:
            stop.set()
            writer.join()
        expected = {i: server.stub.Get(fs.GetFileRequest(file_id=i)) for i in before}
    assert result.returncode == 0, result.stderr
    assert "integrity_check ok" in result.stderr
    assert during > 0  # the writer went on while the copy was made
    assert os.stat(copy).st_mode & 0o777 == 0o600
    with threaded_server(f"sqlite:///{copy}") as restored:
        for file_id, file in expected.items():
            assert restored.stub.Get(fs.GetFileRequest(file_id=file_id)) == file
    beside = ContentFiles(content_dir(copy)).names()
    assert beside  # the copy has content files of its own
    assert not list(tmp_path.glob("*.partial"))

    async def contents() -> dict[str, str]:
        store = open_store(f"sqlite:///{copy}")
        await store.open()
        try:
            return {i: hashlib.sha256(await store.content(i, 0) or b"").hexdigest() for i in before}
        finally:
            await store.close()

    assert asyncio.run(contents()) == before


def test_backup_refuses_postgresql_and_points_to_pg_dump(tmp_path: Path) -> None:
    result = run_server_command(
        "backup", "--store", "postgresql://u:p@127.0.0.1:1/db", "--out", str(tmp_path / "x.db")
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "pg_dump" in result.stderr


# --- seed ---------------------------------------------------------------------------------


def test_a_memory_server_starts_and_resets_to_its_seed(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    asyncio.run(_populate(source, files=12))
    before = Seen(source, link_ids=[f"f{4:019d}"])
    seed = tmp_path / "seed.tar.gz"
    _export(source, seed)
    with FilesApiServer(seed=str(seed)) as server:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            for file_id, file in before.gets.items():
                assert stub.Get(fs.GetFileRequest(file_id=file_id)) == file
            stub.Delete(fs.DeleteFileRequest(file_id=f"f{4:019d}"))
            server.reset()
            assert stub.Get(fs.GetFileRequest(file_id=f"f{4:019d}")) == before.gets[f"f{4:019d}"]
        link = f"{server.http_url}{before.links[0]}"  # made before the export
        with urllib.request.urlopen(link, timeout=60) as response:
            downloaded = hashlib.sha256(response.read()).hexdigest()
    assert downloaded == asyncio.run(_contents(source, files=12))[f"f{4:019d}"][0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "sqlite:///x.db"], "--seed loads a memory: store, not sqlite:"),
        (["--store", "memory:"], "not-an-archive.tar: truncated or damaged"),
    ],
)
def test_serve_refuses_a_seed_it_cannot_load(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "not-an-archive.tar").write_bytes(b"junk" * 300)
    args = [a.replace("x.db", str(tmp_path / "x.db")) for a in args]
    result = run_server_command(
        "serve", *args, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--seed", str(tmp_path / "not-an-archive.tar"),
    )  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr, result.stderr


def test_the_readme_quotes_the_tests_own_figures() -> None:
    section = (ROOT / "README.md").read_text().split("\n## Moving and keeping data\n")[1]
    section = " ".join(section.split("\n## ")[0].split())
    gib = MIGRATE_FILES * MIGRATE_CONTENT // 2**30
    assert f"{gib} GiB in under {RSS_BOUND_KIB // 1024} MiB of peak RSS" in section
    assert f"every {archive.PROGRESS_SECONDS:g} seconds" in section
    assert f"format version {archive.VERSION}" in section


async def _everything(store: FileStore) -> tuple[object, ...]:
    async with store.snapshot(NOW) as snapshot:
        files = [record async for record in snapshot.files()]
        contents = [bytes(await snapshot.content(record.id)) for record in files]
        audit = sorted([e async for e in snapshot.audit()], key=repr)
        uploads = [u async for u in snapshot.uploads()]
        return files, contents, audit, uploads, await snapshot.secret(), await snapshot.counts()


async def test_every_backend_round_trips_through_an_archive_in_process(store_url: str) -> None:
    """The store-level pieces on all three backends (memory included, which only a seed or an
    in-process caller reaches): a snapshot written and loaded into a memory store and back."""
    await _populate(store_url, files=15)
    source = open_store(store_url)
    await source.open()
    await source.signing_secret(lambda: b"s" * 32)
    try:
        out = io.BytesIO()
        await archive.write_archive(source, out, "x.tar.gz", kind="any")
        memory = open_store("memory:")
        out.seek(0)
        await archive.read_archive(memory, out, "x.tar.gz")
        assert await _everything(memory) == await _everything(source)
        again = io.BytesIO()
        await archive.write_archive(memory, again, "y.tar", kind="memory")
        fresh = open_store("memory:")
        again.seek(0)
        await archive.read_archive(fresh, again, "y.tar")
        assert await _everything(fresh) == await _everything(source)
    finally:
        await source.close()


def test_a_mistyped_name_creates_nothing(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path}/missing/files.db"
    for command, message in (
        (["export", "--store", missing, "--out", str(tmp_path / "x.tar")], "no SQLite store"),
        (["import", "--store", missing, "--in", str(tmp_path / "x.tar")], "No such file"),
        (["migrate", "--from", missing, "--to", f"sqlite:///{tmp_path}/y.db"], "no SQLite store"),
        (["backup", "--store", missing, "--out", str(tmp_path / "y.db")], "no SQLite store"),
    ):
        result = run_server_command(*command)
        assert result.returncode == 1 and message in result.stderr, (command, result.stderr)
        assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
