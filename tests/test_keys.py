"""`files-api keys add|list|revoke`, and keys a running server stops accepting once revoked."""

from __future__ import annotations

import hashlib
import re
import stat
import threading
from typing import TYPE_CHECKING

import pytest

from files_api.auth import Caller, KeyRing, add_key, revoke_key
from files_api.errors import Unauthenticated
from tests.support import run_server_command

if TYPE_CHECKING:
    from pathlib import Path

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
REFUSED = [
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


@pytest.mark.parametrize(("text", "key_id", "error"), REFUSED)
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
