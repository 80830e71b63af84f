"""Kill -9 at random moments: nothing that was acknowledged is lost, and the store needs no repair.

Writers (one channel each) create files, update a few shared ones with disjoint masks, and
create and delete big files, while `python -m server` is killed with SIGKILL once a random
number of writes (seeded) has been acknowledged. After each kill the server is started again on
the same store, and before the next round: every acknowledged Create is there with its exact
bytes and fields, every path an acknowledged Update set holds that value (or, for the one write
per path whose answer the kill swallowed, either value), multi-path Updates are all-or-nothing,
no file appears that was not asked for, no acknowledged Delete is undone, and the store is
consistent (SQLite: `PRAGMA integrity_check`, and the content files beside the database are
exactly those its rows name, whole, and those staging rows name: none lost, none orphaned).

FILES_CRASH_SEED picks other kill points; a failure names the seed it ran with.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import random
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2

from files_api.store.beside import ContentFiles, content_dir
from tests.support import server_process

if TYPE_CHECKING:
    from pathlib import Path

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from tests.postgres import Cluster

SEED = int(os.environ.get("FILES_CRASH_SEED", "5"))
ROUNDS = {"sqlite": 8, "postgres": 6}
FOLDER = "crash"
DOOMED = "crash-doomed"  # the deleter's files, none of which may come back
SHARED_FILES = 3
LABEL_WRITERS = 4  # each owns KEYS_PER_WRITER label keys on every shared file
KEYS_PER_WRITER = 4
CREATORS = 3
KILL_AFTER = (30, 300)  # acknowledged writes per round before the kill, drawn from the seed
ROUND_TIMEOUT = 20.0
CALL_TIMEOUT = 10.0

Value = str | None  # None: the path's key is absent
Stub = file_service_pb2_grpc.FileServiceStub


@dataclasses.dataclass
class Known:
    """A file whose Create was acknowledged, and what each path may hold now."""

    created: file_pb2.File
    sha256: str
    # path -> the values it may hold: the last acknowledged one, plus one sent whose answer
    # was lost to the kill; an acknowledgement narrows it to one value again.
    allowed: dict[str, set[Value]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Ledger:
    """What the clients were told, shared by the writer threads (each owns its paths)."""

    files: dict[str, Known] = dataclasses.field(default_factory=dict)
    shared: list[str] = dataclasses.field(default_factory=list)
    deleted: set[str] = dataclasses.field(default_factory=set)  # acknowledged Deletes
    unanswered_creates: int = 0
    unanswered_updates: int = 0
    unanswered_created: int = 0  # how many of the unanswered Creates had committed
    acked_creates: int = 0
    acked_updates: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    progress: threading.Condition = dataclasses.field(default_factory=threading.Condition)

    def acked(self) -> int:
        return self.acked_creates + self.acked_updates


def connect(address: str) -> tuple[grpc.Channel, Stub]:
    channel = grpc.insecure_channel(address)
    return channel, file_service_pb2_grpc.FileServiceStub(channel)


def value_of(file: file_pb2.File, path: str) -> Value:
    """What `path` (`name`, `description` or `labels.<key>`) holds in `file`."""
    if path.startswith("labels."):
        return file.labels.get(path.removeprefix("labels."))
    return str(getattr(file, path))


def update(stub: Stub, ledger: Ledger, file_id: str, values: dict[str, Value]) -> None:
    """One Update of `values` (path -> value, None removes a label), noted in the ledger."""
    known = ledger.files[file_id]
    for path, value in values.items():
        known.allowed.setdefault(path, {value_of(known.created, path)}).add(value)
    labels = {p.removeprefix("labels."): v for p, v in values.items() if p.startswith("labels.")}
    request = fs.UpdateFileRequest(
        file_id=file_id,
        update_mask=field_mask_pb2.FieldMask(paths=list(values)),
        name=values.get("name") or "",
        description=values.get("description") or "",
        labels={k: v for k, v in labels.items() if v is not None},
    )
    try:
        stub.Update(request, timeout=CALL_TIMEOUT)
    except grpc.RpcError:  # either value may be there now
        with ledger.lock:
            ledger.unanswered_updates += 1
        raise
    for path, value in values.items():
        known.allowed[path] = {value}
    with ledger.progress:
        ledger.acked_updates += 1
        ledger.progress.notify_all()


Writer = Callable[[Stub, Ledger, random.Random, str], None]


def label_writer(stub: Stub, ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Sets or removes 1-3 of its own label keys on a random shared file, over and over."""
    own = [f"labels.{tag}_{k}" for k in range(KEYS_PER_WRITER)]
    for seq in range(100_000):
        paths = rng.sample(own, rng.randint(1, 3))
        values = {p: None if rng.random() < 0.2 else f"{tag}-{seq}" for p in paths}
        update(stub, ledger, rng.choice(ledger.shared), values)


def pair_writer(stub: Stub, ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Renames a shared file and rewrites its description in one Update: both or neither."""
    for seq in range(100_000):
        value = f"{tag}-{seq}"
        update(stub, ledger, rng.choice(ledger.shared), {"name": value, "description": value})


def creator(stub: Stub, ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Creates files of random size and labels; updates some of them right away."""
    for seq in range(100_000):
        size = rng.choice([1, 100, 4096, 65536, 300_000]) + rng.randrange(100)
        content = rng.randbytes(size)
        request = fs.CreateFileRequest(
            folder_id=FOLDER,
            name=f"{tag}-{seq}.bin",
            description=f"made by {tag}",
            content=content,
            labels={"writer": tag, "seq": str(seq)},
        )
        try:
            created = stub.Create(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError:
            with ledger.lock:
                ledger.unanswered_creates += 1
            raise
        with ledger.lock:
            ledger.files[created.id] = Known(created, hashlib.sha256(content).hexdigest())
        with ledger.progress:
            ledger.acked_creates += 1
            ledger.progress.notify_all()
        if rng.random() < 0.5:
            state = f"{tag}-{seq}-touched"
            update(stub, ledger, created.id, {"description": state, "labels.state": state})


def deleter(stub: Stub, ledger: Ledger, rng: random.Random, tag: str) -> None:
    """Creates files with content beside the database (SQLite) elsewhere and deletes them."""
    for seq in range(100_000):
        content = rng.randbytes(300_000 + rng.randrange(100_000))
        request = fs.CreateFileRequest(folder_id=DOOMED, name=f"{tag}-{seq}", content=content)
        created = stub.Create(request, timeout=CALL_TIMEOUT)
        stub.Delete(fs.DeleteFileRequest(file_id=created.id), timeout=CALL_TIMEOUT)
        with ledger.progress:
            ledger.deleted.add(created.id)
            ledger.acked_updates += 1
            ledger.progress.notify_all()


class Writers:
    """Every writer on a thread and channel of its own, until the server goes away."""

    KINDS: tuple[tuple[str, Writer], ...] = (
        *((f"w{i}", label_writer) for i in range(LABEL_WRITERS)),
        ("pair", pair_writer),
        *((f"c{i}", creator) for i in range(CREATORS)),
        ("d", deleter),
    )

    def __init__(self, address: str, ledger: Ledger, rng: random.Random) -> None:
        self.ledger = ledger
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(
                target=self._run, args=(address, tag, work, rng.getrandbits(32)), daemon=True
            )
            for tag, work in self.KINDS
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, address: str, tag: str, work: Writer, seed: int) -> None:
        channel, stub = connect(address)
        with channel:
            try:
                work(stub, self.ledger, random.Random(seed), tag)
            except grpc.RpcError as e:
                # The kill: the connection goes, whatever the call was doing.
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    self.errors.append(e)
            except BaseException as e:
                self.errors.append(e)

    def wait_for(self, acknowledged: int) -> None:
        ledger = self.ledger
        with ledger.progress:
            reached = ledger.progress.wait_for(
                lambda: ledger.acked() >= acknowledged or bool(self.errors),
                timeout=ROUND_TIMEOUT,
            )
        assert not self.errors, self.errors
        assert reached, f"only {ledger.acked()} of {acknowledged} writes acknowledged in time"

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=CALL_TIMEOUT + 5)
            assert not thread.is_alive(), "a writer outlived the server"
        assert not self.errors, self.errors


def list_ids(stub: Stub, folder: str = FOLDER) -> set[str]:
    ids: set[str] = set()
    token = ""
    for _ in range(1000):
        page = stub.List(fs.ListFilesRequest(folder_id=folder, page_size=1000, page_token=token))
        ids.update(f.id for f in page.files)
        token = page.next_page_token
        if not page.files:
            return ids
    raise AssertionError("List never ended")


def verify(address: str, ledger: Ledger) -> None:
    """Every acknowledged write is there; afterwards each path is pinned to what was found."""
    channel, stub = connect(address)
    with channel:
        listed = list_ids(stub)
        missing = set(ledger.files) - listed
        assert not missing, f"acknowledged Creates lost: {sorted(missing)}"
        # A Create the kill cut off may have committed; nothing else may appear.
        ledger.unanswered_created = len(listed) - len(ledger.files)
        assert ledger.unanswered_created <= ledger.unanswered_creates
        # An acknowledged Delete stays done (a file whose Delete the kill cut off may stay).
        back = list_ids(stub, DOOMED) & ledger.deleted
        assert not back, f"deleted files back: {sorted(back)}"
        for file_id, known in ledger.files.items():
            got = stub.Get(fs.GetFileRequest(file_id=file_id))
            want = known.created
            for field in ("id", "folder_id", "mime_type", "created_by", "created_at"):
                assert getattr(got, field) == getattr(want, field), (file_id, field)
            assert got.expiration_config == want.expiration_config
            assert got.expires_at.ToNanoseconds() >= want.expires_at.ToNanoseconds()
            paths = {"name", "description", *(f"labels.{k}" for k in want.labels)}
            paths |= {f"labels.{k}" for k in got.labels} | set(known.allowed)
            for path in paths:
                allowed = known.allowed.get(path, {value_of(known.created, path)})
                assert value_of(got, path) in allowed, (file_id, path, value_of(got, path))
                known.allowed[path] = {value_of(got, path)}
            # Each pair is set by one Update: both, or neither.
            if file_id in ledger.shared:
                assert got.name == got.description, file_id
            else:
                assert got.labels.get("state", want.description) == got.description, file_id
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id)).url
            with urllib.request.urlopen(url, timeout=CALL_TIMEOUT) as response:
                body = response.read()
            assert hashlib.sha256(body).hexdigest() == known.sha256, file_id


def check_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # Content as chunk rows (content_id), or in `contents` for files stored before those.
        torn = conn.execute(
            "SELECT count(*) FROM files LEFT JOIN (SELECT content_id, sum(length(data)) AS n"
            " FROM chunks GROUP BY content_id) c ON c.content_id = files.content_id"
            " LEFT JOIN contents ON contents.file_id = files.id"
            " WHERE NOT content_beside AND coalesce(c.n, length(contents.data), -1) <> files.size"
        ).fetchone()
        assert torn == (0,)
        # Or in a file beside the database, whole, which only a row or a staging row names.
        beside = dict(conn.execute("SELECT content_id, size FROM files WHERE content_beside"))
        staged = {content_id for (content_id,) in conn.execute("SELECT content_id FROM staging")}
    files = ContentFiles(content_dir(path))
    on_disk = files.names()
    assert set(beside) <= on_disk, "content files lost"
    assert on_disk <= set(beside) | staged, "content files orphaned"
    for content_id, size in beside.items():
        assert files.path(content_id).stat().st_size == size, content_id


def check_postgres(cluster: Cluster, database: str) -> None:
    torn = cluster.psql(
        "SELECT count(*) FROM files LEFT JOIN (SELECT file_id, sum(length(data)) AS n"
        " FROM contents GROUP BY file_id) c ON c.file_id = files.id"
        " WHERE coalesce(c.n, 0) <> files.size",
        database,
    )
    assert torn.strip() == "0"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_loses_no_acknowledged_write(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    rng = random.Random(f"{SEED}-{backend}")
    if backend == "sqlite":
        db = tmp_path / "files.db"
        store = f"sqlite:///{db}"

        def check_store() -> None:
            check_sqlite(db)
    else:
        store = request.getfixturevalue("postgres_database")
        cluster = request.getfixturevalue("postgres_cluster")

        def check_store() -> None:
            check_postgres(cluster, store.rsplit("/", 1)[1])

    ledger = Ledger()
    kill_points: list[int] = []
    try:
        for round_number in range(ROUNDS[backend] + 1):
            with server_process("--store", store) as server:
                address = server.grpc_address
                if round_number == 0:
                    channel, stub = connect(address)
                    with channel:
                        for i in range(SHARED_FILES):
                            shared = stub.Create(
                                fs.CreateFileRequest(folder_id=FOLDER, content=b"shared %d" % i)
                            )
                            ledger.files[shared.id] = Known(
                                shared, hashlib.sha256(b"shared %d" % i).hexdigest()
                            )
                            ledger.shared.append(shared.id)
                verify(address, ledger)
                check_store()
                if round_number == ROUNDS[backend]:
                    break
                writers = Writers(address, ledger, rng)
                writers.wait_for(ledger.acked() + rng.randint(*KILL_AFTER))
                server.process.send_signal(signal.SIGKILL)
                kill_points.append(ledger.acked())
                writers.join()
                assert server.process.wait(timeout=10) == -signal.SIGKILL
    except AssertionError as e:
        e.add_note(f"FILES_CRASH_SEED={SEED}, kill points so far {kill_points}")
        raise
    check_store()  # after the last, clean, stop too
    assert len(kill_points) == ROUNDS[backend]
    print(
        f"\n{backend}: {len(kill_points)} SIGKILLs after {kill_points} acknowledged writes;"
        f" {ledger.acked_creates} Creates and {ledger.acked_updates} Updates acknowledged,"
        f" {len(ledger.files)} files checked after every restart; the kills cut off"
        f" {ledger.unanswered_creates} Creates ({ledger.unanswered_created} had committed)"
        f" and {ledger.unanswered_updates} Updates; {time.monotonic() - started:.1f}s"
    )
