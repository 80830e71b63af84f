"""`files-api keys add|list|revoke`, and keys a running server stops accepting once revoked."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import stat
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from files_api.app import KEYS_POLL_SECONDS
from files_api.auth import Caller, KeyRing, add_key, revoke_key
from files_api.errors import Unauthenticated
from tests.support import run_server_command, server_process, spawn, wait_serving
from tests.test_workers import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.support import ServerProcess

SALT = "00ff"
# An id is the first 12 hex digits of the stored hash.
LINE = re.compile(r"([0-9a-f]{12})  (\S+)\s+(\S+)\s+(\S+)")


def keys(*args: str, path: Path) -> tuple[int, str, str]:
    """`files-api keys ARGS --file PATH`: exit code, stdout, stderr."""
    result = run_server_command("keys", *args, "--file", str(path))
    return result.returncode, result.stdout, result.stderr


def add(path: Path, subject: str, folders: str) -> tuple[str, str]:
    """A key made by `keys add`, and the id it names on stderr."""
    code, out, err = keys("add", "--subject", subject, "--folders", folders, path=path)
    assert code == 0, err
    [key_id] = re.findall(r"added key ([0-9a-f]{12}) for ", err)
    return out.strip(), key_id


def old_entry(key: str, subject: str = "old", folders: str = '["f"]') -> str:
    """A [[key]] as files written before `added` and ids read, for a key we know."""
    digest = hashlib.sha256(bytes.fromhex(SALT) + key.encode()).hexdigest()
    return f'\n[[key]]\nsubject = "{subject}"\nfolders = {folders}\nsha256 = "{digest}"\n'


def test_keys_list_shows_id_time_subject_and_folders_never_the_key_or_its_hash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.toml"
    alice, alice_id = add(path, "alice", "b1gteam,b1gshared")
    root, root_id = add(path, "root", "*")
    code, listed, err = keys("list", path=path)
    assert (code, err) == (0, "")
    matches = [LINE.fullmatch(line) for line in listed.splitlines()]
    rows = [match.groups() for match in matches if match]
    assert len(rows) == len(matches) == 2, listed
    assert [(i, subject, folders) for i, _, subject, folders in rows] == [
        (alice_id, "alice", "b1gshared,b1gteam"),
        (root_id, "root", "*"),
    ]
    for _, added, _, _ in rows:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", added), added
    text = path.read_text()
    for secret in (alice, root, *re.findall(r'sha256 = "([0-9a-f]{64})"', text)):
        assert secret not in listed
    assert f"added = {rows[0][1]}" in text  # the time `keys add` wrote, as TOML's own type


def test_old_format_key_files_list_with_derived_ids_and_still_authenticate(tmp_path: Path) -> None:
    """Files written before keys carried `added` keep working: each key gets its id from its
    hash, its time is unknown, and it can be revoked like any other."""
    path = tmp_path / "keys.toml"
    path.write_text(f'salt = "{SALT}"\n' + old_entry("k1", "one") + old_entry("k2", "two"))
    ring = KeyRing.load(path)
    assert ring.authenticate("Api-Key k1") == Caller("one", frozenset({"f"}))
    code, listed, _ = keys("list", path=path)
    ids = [entry.key_id for entry in ring.entries]
    assert code == 0
    assert listed.splitlines() == [
        f"{ids[0]}  unknown               one  f",
        f"{ids[1]}  unknown               two  f",
    ]
    assert ids[0] == hashlib.sha256(bytes.fromhex(SALT) + b"k1").hexdigest()[:12]
    new, new_id = add(path, "new", "g")
    assert keys("revoke", ids[0], path=path)[0] == 0
    ring = KeyRing.load(path)
    assert [entry.key_id for entry in ring.entries] == [ids[1], new_id]
    assert ring.authenticate(f"Api-Key {new}") == Caller("new", frozenset({"g"}))
    with pytest.raises(Unauthenticated):
        ring.authenticate("Api-Key k1")


def test_revoke_removes_exactly_that_entry(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    made = [add(path, subject, subject) for subject in ("a", "b", "c")]
    before = path.read_text()
    (a, _), (b, b_id), (c, _) = made
    code, out, err = keys("revoke", b_id, path=path)
    assert (code, out) == (0, "")
    assert err.startswith(f"revoked key {b_id} of b in {path};")
    [b_entry] = [e for e in before.split("\n\n") if '"b"' in e]
    assert path.read_text() == before.replace("\n\n" + b_entry, "")
    ring = KeyRing.load(path)
    assert [e.caller.subject for e in ring.entries] == ["a", "c"]
    for key, subject in ((a, "a"), (c, "c")):
        assert ring.authenticate(f"Api-Key {key}").subject == subject
    with pytest.raises(Unauthenticated):
        ring.authenticate(f"Api-Key {b}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keys.toml"]  # no temporary file left


HEAD = f'# our keys\nsalt = "{SALT}"\n'
A = '[[key]]\nsubject = "a"\nfolders = ["f"]\nsha256 = "' + "aa" * 32 + '"\n'
B = '[[key]]  # bob\nsubject = "b"\nfolders = ["f"]\nsha256 = "' + "bb" * 32 + '"\n'
C = '[[key]]\nsubject = "c"\nfolders = ["f"]\nsha256 = "' + "cc" * 32 + '"\n'

# (the file, the id revoked, the file after): every line but the entry's own stays as it was,
# and the comments and blank lines right above its header go with it.
LAYOUTS = [
    (HEAD + "\n" + A + "\n" + B + "\n" + C, "bb" * 6, HEAD + "\n" + A + "\n" + C),
    (HEAD + "\n" + A + "\n" + B + "\n" + C, "aa" * 6, HEAD + "\n" + B + "\n" + C),
    (HEAD + "\n" + A + "\n" + B + "\n" + C, "cc" * 6, HEAD + "\n" + A + "\n" + B),
    (HEAD + A + "# the laptop\n\n# of b\n" + B + C, "BB" * 6, HEAD + A + C),
    (HEAD + "\n" + A, "aa" * 6, HEAD),
    (HEAD + A + B.removesuffix("\n"), "bb" * 6, HEAD + A),
    (
        (HEAD + "\n" + A + "\n" + B).replace("\n", "\r\n"),
        "aa" * 6,
        (HEAD + "\n" + B).replace("\n", "\r\n"),
    ),
]


@pytest.mark.parametrize(("text", "key_id", "after"), LAYOUTS)
def test_revoke_keeps_every_other_line(tmp_path: Path, text: str, key_id: str, after: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_bytes(text.encode())
    [removed] = revoke_key(path, key_id)
    assert removed.key_id == key_id.lower()
    assert path.read_bytes() == after.encode()


# (the file, the id, what the one line on stderr says after "cannot revoke the key: ")
CANNOT_REVOKE = [
    (HEAD + A + B, "abcdefabcdef", "no key with id 'abcdefabcdef' in {path} (see keys list)"),
    (
        HEAD + A + A.replace("aa" * 32, "aa" * 6 + "bb" * 26),
        "aa" * 6,
        f"2 different keys in {{path}} have the id '{'aa' * 6}'",
    ),
    (
        HEAD + 'key = [{subject = "a", folders = ["f"], sha256 = "' + "aa" * 32 + '"}]\n',
        "aa" * 6,
        f"cannot remove key '{'aa' * 6}' from {{path}}: its [[key]] tables are not laid out"
        " one after another: edit it by hand",
    ),
    (
        HEAD + A.replace('"a"', '"""a\n[[key]]\n"""') + B,
        "bb" * 6,
        f"cannot remove key '{'bb' * 6}' from {{path}}: its [[key]] tables",
    ),
]


@pytest.mark.parametrize(("text", "key_id", "error"), CANNOT_REVOKE)
def test_a_revoke_that_cannot_be_done_exits_1_and_leaves_the_file_byte_for_byte(
    tmp_path: Path, text: str, key_id: str, error: str
) -> None:
    path = tmp_path / "keys.toml"
    path.write_bytes(text.encode())
    inode = path.stat().st_ino
    code, out, err = keys("revoke", key_id, path=path)
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("cannot revoke the key: " + error.format(path=path))
    assert path.read_bytes() == text.encode()
    assert path.stat().st_ino == inode
    assert [p.name for p in tmp_path.iterdir()] == ["keys.toml"]


def test_revoking_a_key_listed_twice_removes_both_entries(tmp_path: Path) -> None:
    """Two entries with one hash are one key: revoking it must leave neither, or the key
    would go on working under the other entry's subject."""
    path = tmp_path / "keys.toml"
    path.write_text(HEAD + A + B + A.replace('"a"', '"a2"'))
    assert [e.caller.subject for e in revoke_key(path, "aa" * 6)] == ["a", "a2"]
    assert path.read_text() == HEAD + B


@pytest.mark.parametrize("action", [["list"], ["revoke", "aa" * 6]])
@pytest.mark.parametrize(
    ("text", "error"),
    [
        (None, "cannot read the keys file {path}: [Errno 2] No such file or directory"),
        ("salt = 'zz'\n", "cannot read the keys file {path}: 'salt' must be a non-empty hex"),
        (
            HEAD + "[[key]\n",
            "cannot read the keys file {path}: Expected ']]' at the end of an array declaration"
            " (at line 3, column 6)",
        ),
        (
            HEAD + A.replace("sha256", 'added = "2026-11-23T17:25:47Z"\nsha256'),
            "cannot read the keys file {path}: [[key]] #1 (subject 'a'): 'added' must be a time"
            " with its offset, unquoted: 2026-11-23T17:25:47Z, got '2026-11-23T17:25:47Z'",
        ),
    ],
    ids=["missing", "bad salt", "not TOML", "quoted time"],
)
def test_a_missing_or_malformed_file_is_one_line_and_exit_1(
    tmp_path: Path, action: list[str], text: str | None, error: str
) -> None:
    path = tmp_path / "keys.toml"
    if text is not None:
        path.write_text(text)
    code, out, err = keys(*action, path=path)
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    verb = "list the keys" if action == ["list"] else "revoke the key"
    assert line.startswith(f"cannot {verb}: " + error.format(path=path)), line
    assert "Traceback" not in err
    if text is not None:
        assert path.read_text() == text


def test_keys_revoke_without_an_id_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = keys("revoke", path=tmp_path / "keys.toml")
    assert (code, out) == (2, "")
    assert err == (
        "files-api keys revoke: the following arguments are required: KEY_ID (see --help)\n"
    )


def test_keys_add_replaces_the_file_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    """A crash while writing leaves the old file or the new one: the new one is written beside
    it and renamed over it. A file a server reads through its group stays readable to it."""
    path = tmp_path / "keys.toml"
    add_key(path, "a", ["f"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    inode = path.stat().st_ino
    add_key(path, "b", ["f"])
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    add_key(link, "c", ["f"])
    assert link.is_symlink()
    assert [e.caller.subject for e in KeyRing.load(path).entries] == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.toml", "link.toml"]


def test_adds_and_revokes_at_once_lose_nothing(tmp_path: Path) -> None:
    """Each `keys add` and `keys revoke` reads, changes and replaces the whole file, under one
    lock: without it, one would write back what another had just changed, and a revoked key
    could come back."""
    path = tmp_path / "keys.toml"
    first = [add_key(path, f"old{n}", ["f"]) for n in range(16)]
    ring = KeyRing.load(path)
    old_ids = [entry.key_id for entry in ring.entries]
    added: list[str] = []

    def adding(n: int) -> None:
        added.extend(add_key(path, f"new{n}-{i}", ["f"]) for i in range(4))

    def revoking(n: int) -> None:
        for key_id in old_ids[2 * n : 2 * n + 2]:
            revoke_key(path, key_id)

    threads = [threading.Thread(target=adding, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=revoking, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ring = KeyRing.load(path)
    assert len(ring.entries) == len(added) == 32
    for key in added:
        ring.authenticate(f"Api-Key {key}")
    for key in first:
        with pytest.raises(Unauthenticated):
            ring.authenticate(f"Api-Key {key}")


# --- a running server -------------------------------------------------------------------------

# The bound the server promises for a changed file without a signal.
RELOAD_SECONDS = 5.0
ACCEPTED = {"grpc": "OK", "rest": 200, "pds": 200}
REFUSED = {"grpc": "UNAUTHENTICATED", "rest": 401, "pds": 401}


def _http_status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def answers(grpc_address: str, http_address: str, key: str) -> dict[str, object]:
    """What each face answers a List of folder f with this key, each on a new connection:
    gRPC's status code, REST's and PDS's HTTP status."""
    authorization = f"Bearer {key}"
    # A channel of its own: with --workers, each connection may reach another worker.
    with grpc.insecure_channel(
        grpc_address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        try:
            stub.List(
                fs.ListFilesRequest(folder_id="f"),
                metadata=(("authorization", authorization),),
                timeout=10,
            )
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
    rest = urllib.request.Request(
        f"http://{http_address}/files/v1/files?folderId=f",
        headers={"Authorization": authorization},
    )
    pds = urllib.request.Request(
        f"http://{http_address}/v2/file/list",
        data=b'{"drive_id": "f"}',
        headers={"Authorization": authorization, "Content-Type": "application/json"},
        method="POST",
    )
    return {"grpc": code.name, "rest": _http_status(rest), "pds": _http_status(pds)}


def on(server: ServerProcess, key: str) -> dict[str, object]:
    return answers(server.grpc_address, server.http_address, key)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Waits until `condition` holds, at most `seconds`: the one bound these tests time."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds:g} s: {what}")
        time.sleep(0.05)


def lines_with(log: list[str], text: str) -> list[str]:
    return [line for line in list(log) if text in line]


def put(path: Path, text: str) -> None:
    """Replaces the file whole, so a poll never reads it half-written."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text)
    temporary.replace(path)


@contextlib.contextmanager
def frozen(*pids: int) -> Iterator[None]:
    """The processes stopped (SIGSTOP) meanwhile, so no poll of theirs sees a half-done edit."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def unseen_revoke(path: Path, key: str) -> None:
    """Replaces the key's hash in place by one no key has, keeping the file's inode, size and
    modification time: a change the poll cannot see, applied only by SIGHUP (as after an
    editor that keeps the time, or two writes within one tick of the clock)."""
    ring = KeyRing.load(path)
    entry = ring.entry_of(key)
    assert entry is not None
    before = path.stat()
    digest = entry.digest.hex()
    text = path.read_text().replace(digest, digest[::-1])
    with path.open("r+") as file:
        file.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


@pytest.fixture
def keys_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A file with a key in the old format (no `added`) and two `keys add` wrote."""
    path = tmp_path / "keys.toml"
    path.write_text(f'salt = "{SALT}"\n' + old_entry("old-key", folders='["*"]'))
    made = {"old": "old-key"}
    for subject in ("alice", "bob"):
        made[subject] = add_key(path, subject, ["f"])
    return path, made


def test_a_running_server_refuses_a_revoked_key_within_seconds_and_at_once_on_sighup(
    keys_file: tuple[Path, dict[str, str]],
) -> None:
    path, made = keys_file
    with server_process("--store", "memory:", "--auth-keys", str(path)) as server:
        for key in made.values():
            assert on(server, key) == ACCEPTED

        # No signal: the poll finds the new file.
        [alice] = [e for e in KeyRing.load(path).entries if e.caller.subject == "alice"]
        deadline = time.monotonic() + RELOAD_SECONDS
        revoke_key(path, alice.key_id)
        wait_for(lambda: on(server, made["alice"]) == REFUSED, RELOAD_SECONDS, "alice refused")
        assert time.monotonic() < deadline
        assert on(server, made["bob"]) == on(server, made["old"]) == ACCEPTED
        [line] = lines_with(server.log, "reloaded the keys file")
        assert f"reloaded the keys file {path} after it changed: 0 added, 1 removed, 2 in all" in (
            line
        )

        # A change the poll cannot see is applied by SIGHUP, before the next call.
        with frozen(server.process.pid):
            unseen_revoke(path, made["bob"])
        assert on(server, made["bob"]) == ACCEPTED
        server.process.send_signal(signal.SIGHUP)
        sighup = f"reloaded the keys file {path} on SIGHUP: 1 added, 1 removed, 2 in all"
        wait_for(lambda: bool(lines_with(server.log, sighup)), RELOAD_SECONDS, sighup)
        assert on(server, made["bob"]) == REFUSED
        assert on(server, made["old"]) == ACCEPTED
        assert server.process.poll() is None
    assert "Traceback" not in server.log_text()


def test_a_broken_or_missing_keys_file_is_one_log_line_and_the_last_good_keys_stay(
    keys_file: tuple[Path, dict[str, str]],
) -> None:
    path, made = keys_file
    good = path.read_text()
    refused = f"ERROR files_api.auth: cannot read the keys file {path}: "

    def refused_once(server: ServerProcess, problem: str, working: list[str]) -> None:
        """One line says the file was refused, while the server polls it again and again and
        the keys it read before go on working."""
        wait_for(lambda: bool(lines_with(server.log, refused)), RELOAD_SECONDS, refused)
        steady = time.monotonic() + 2.5 * KEYS_POLL_SECONDS
        while time.monotonic() < steady:
            for key in working:
                assert on(server, made[key]) == ACCEPTED
        [line] = lines_with(server.log, refused)
        assert problem in line
        assert line.rstrip().endswith("; keeping the keys read before")
        server.log[:] = []

    with server_process("--store", "memory:", "--auth-keys", str(path)) as server:
        put(path, good + "[[key]\n")
        refused_once(server, "Expected ']]' at the end of an array declaration", ["alice", "old"])
        # Mended, and alice revoked meanwhile: picked up like any change.
        put(path, good)
        revoke_key(path, KeyRing.load(path).entries[1].key_id)
        wait_for(lambda: on(server, made["alice"]) == REFUSED, RELOAD_SECONDS, "alice refused")
        assert on(server, made["bob"]) == on(server, made["old"]) == ACCEPTED
        assert lines_with(server.log, "after it changed: 0 added, 1 removed, 2 in all")

        path.unlink()
        refused_once(server, "No such file or directory", ["bob", "old"])
        put(path, good)
        wait_for(lambda: on(server, made["alice"]) == ACCEPTED, RELOAD_SECONDS, "alice back")
    assert "Traceback" not in server.log_text()


def test_sighup_without_a_keys_file_is_only_logged() -> None:
    """SIGHUP used to end the server; now it means "reload", and there is nothing to reload."""
    with server_process("--store", "memory:") as server:
        server.process.send_signal(signal.SIGHUP)
        said = "SIGHUP: no keys file to reload"
        wait_for(lambda: bool(lines_with(server.log, said)), RELOAD_SECONDS, said)
        wait_serving(server.grpc_address)
        assert on(server, "anything") == ACCEPTED


def test_every_worker_follows_the_keys_file_and_hears_sighup(
    keys_file: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Each worker polls the file on its own; a SIGHUP to the parent reaches every one, even
    while they are still starting (a worker inherits it ignored until it can reload)."""
    path, made = keys_file
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "files_api", "--workers", "2", "--auth-keys", str(path)]
    command += ["--grpc-listen", grpc_address, "--http-listen", http_address]
    command += ["--store", f"sqlite:///{tmp_path / 'files.db'}"]
    started = re.compile(r"started 2 workers: (\d+), (\d+)")
    with spawn(command, started) as (process, match, log):
        process.send_signal(signal.SIGHUP)  # the workers are still importing
        pids = (int(match[1]), int(match[2]))
        wait_serving(grpc_address)
        serving = "serving gRPC"
        wait_for(lambda: len(lines_with(log, serving)) == 2, RELOAD_SECONDS, "both serving")

        def each_worker(text: str) -> Callable[[], bool]:
            return lambda: {f"[{pid}]: {text}" in "".join(log) for pid in pids} == {True}

        def refused_everywhere(key: str) -> None:
            for _ in range(8):  # new connections, spread over the workers by the kernel
                assert answers(grpc_address, http_address, key) == REFUSED

        [alice] = [e for e in KeyRing.load(path).entries if e.caller.subject == "alice"]
        revoke_key(path, alice.key_id)
        polled = f"reloaded the keys file {path} after it changed: 0 added, 1 removed"
        wait_for(each_worker(polled), RELOAD_SECONDS, f"every worker: {polled}")
        refused_everywhere(made["alice"])

        with frozen(*pids):
            unseen_revoke(path, made["bob"])
        process.send_signal(signal.SIGHUP)
        sighup = f"reloaded the keys file {path} on SIGHUP: 1 added, 1 removed"
        wait_for(each_worker(sighup), RELOAD_SECONDS, f"every worker: {sighup}")
        refused_everywhere(made["bob"])
        assert answers(grpc_address, http_address, made["old"]) == ACCEPTED
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    text = "".join(log)
    assert "stopped 2 workers (exit codes [0, 0])" in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    "subject", ["ops \N{GRINNING FACE}", 'a "quoted" \\ name', "tab\tand\nnewline", "del\x7f"]
)
def test_any_subject_and_folder_reads_back(tmp_path: Path, subject: str) -> None:
    """A subject once written as JSON (a character beyond the BMP as two escaped surrogates,
    DEL bare) broke the file for every later command and for the server."""
    path = tmp_path / "keys.toml"
    key = add_key(path, subject, [subject, "f"])
    add_key(path, "next", ["f"])
    assert KeyRing.load(path).authenticate(f"Api-Key {key}") == Caller(
        subject, frozenset({subject, "f"})
    )
    code, listed, _ = keys("list", path=path)
    assert code == 0
    assert len(listed.splitlines()) == 2
