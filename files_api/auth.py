"""Who is calling: API keys from a file, each mapped to a subject and the folders it may use.

The keys file is TOML, written by `files-api keys add` and `keys revoke`:

    salt = "<hex>"              # one per file, made when the file is created

    [[key]]
    subject = "alice"
    folders = ["b1gteam", "b1gshared"]   # or ["*"] for every folder
    added = 2026-11-23T17:25:47Z         # optional: files from before it was written lack it
    sha256 = "<hex of SHA-256(salt + key)>"

Nothing else is accepted: a missing or unknown field, `folders` that is not a list of folder
ids, a salt or hash that is not hex, an `added` without a UTC offset stop the server with one
line naming the file and the entry.

Only hashes are stored. Clients send `authorization: Api-Key <key>` or `Bearer <key>`, over
gRPC metadata or an HTTP header alike.

A key's id (`keys list`, `keys revoke ID`) is the first 12 hex digits of its stored hash, so
every entry has one, old files' too, and it cannot disagree with the key or be copied onto
another entry by hand. It gives nothing away: the file holds the whole hash anyway; without
the file's salt nobody can even test a guess against an id; a key `keys add` makes has 256
random bits, which 48 bits of its salted hash do not narrow to anything searchable; and the
server checks the full hash of a presented key, so an id is no credential. Two keys share an
id with odds of about 2e-7 among 10,000 keys; `keys revoke` then refuses rather than guess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import logging
import os
import re
import secrets
import stat
import string
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from files_api.errors import Unauthenticated
from files_api.signing import same

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

ALL_FOLDERS = "*"
KEY_ID_DIGITS = 12
_SCHEMES = ("api-key", "bearer")
# The WWW-Authenticate value of an HTTP 401 (RFC 9110 section 11.6.1): the schemes accepted.
CHALLENGE = 'Api-Key realm="files", Bearer realm="files"'
_NEW_FILE = "# API keys of the files server (files-api keys add); only hashes are kept.\n"


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated subject and its folders (None: every folder), for one request."""

    subject: str
    folders: frozenset[str] | None = None
    request_id: str = ""

    def may_use(self, folder_id: str) -> bool:
        return self.folders is None or folder_id in self.folders


ANONYMOUS = Caller("anonymous")


@dataclasses.dataclass(frozen=True)
class KeyEntry:
    """One `[[key]]` of a keys file; `added` is None in entries written before it was kept."""

    digest: bytes
    caller: Caller
    added: datetime.datetime | None = None

    @property
    def key_id(self) -> str:
        """The first 12 hex digits of the stored hash (the module docstring says why)."""
        return self.digest.hex()[:KEY_ID_DIGITS]


def _digest(salt: bytes, key: str) -> bytes:
    # surrogatepass: a header's undecodable bytes reach here as lone surrogates.
    return hashlib.sha256(salt + key.encode("utf-8", "surrogatepass")).digest()


_ENTRY_FIELDS = {"subject", "folders", "added", "sha256"}


def _salt(data: dict[str, Any]) -> bytes:
    unknown = set(data) - {"salt", "key"}
    if unknown:
        raise ValueError(f"unknown top-level setting {sorted(unknown)[0]!r}")
    salt = data.get("salt")
    if not isinstance(salt, str) or not salt or not _is_hex(salt):
        raise ValueError(f"'salt' must be a non-empty hex string, got {salt!r}")
    return bytes.fromhex(salt)


def _entry(item: dict[str, Any], number: int) -> KeyEntry:
    subject = item.get("subject")
    where = f"[[key]] #{number}" + (f" (subject {subject!r})" if isinstance(subject, str) else "")
    unknown = set(item) - _ENTRY_FIELDS
    folders = item.get("folders")
    added = item.get("added")
    digest = item.get("sha256")
    if unknown:
        problem = f"unknown field {sorted(unknown)[0]!r}"
    elif not isinstance(subject, str) or not subject:
        problem = f"'subject' must be a non-empty string, got {subject!r}"
    elif (
        not isinstance(folders, list)
        or not folders
        or not all(isinstance(f, str) and f for f in folders)
    ):
        problem = f"'folders' must be a non-empty list of folder ids (or ['*']), got {folders!r}"
    elif added is not None and (
        not isinstance(added, datetime.datetime) or added.utcoffset() is None
    ):
        # TOML's own offset date-time (RFC 3339), not a string: the parser checks it.
        shown = added.isoformat() if isinstance(added, datetime.date | datetime.time) else added
        problem = (
            f"'added' must be a time with its offset, unquoted: 2026-11-23T17:25:47Z, got {shown!r}"
        )
    elif not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        problem = f"'sha256' must be 64 hex digits, got {digest!r}"
    else:
        return KeyEntry(
            bytes.fromhex(digest),
            Caller(subject, None if ALL_FOLDERS in folders else frozenset(folders)),
            added,
        )
    raise ValueError(f"{where}: {problem}")


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in string.hexdigits for c in text)


class KeyRing:
    """The keys of one file; `authenticate` checks a credential against every one of them.

    Never changed once made: a server applies a new keys file by swapping in a new ring.
    """

    __slots__ = ("_salt", "entries")

    def __init__(self, salt: bytes, entries: Iterable[KeyEntry]) -> None:
        self._salt = salt
        self.entries = tuple(entries)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Reads the keys file; anything malformed is a ValueError of one line naming the file
        and the entry, so a server refuses to start rather than run with a key that means
        something else (`folders = "team"` is not the folders t, e, a and m)."""
        return _read(path)[2]

    def entry_of(self, key: str) -> KeyEntry | None:
        """The entry `key` matches, compared with every entry so the time says nothing."""
        digest = _digest(self._salt, key)
        found = None
        for entry in self.entries:
            if same(entry.digest, digest):
                found = entry
        return found

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller a credential belongs to; raises Unauthenticated."""
        if not authorization:
            raise Unauthenticated("missing credentials: send 'authorization: Api-Key <key>'")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() not in _SCHEMES or not key.strip():
            raise Unauthenticated("credentials must be 'Api-Key <key>' or 'Bearer <token>'")
        found = self.entry_of(key.strip())
        if found is None:
            raise Unauthenticated("unknown credentials")
        return found.caller


def _parse(text: str) -> tuple[dict[str, Any], KeyRing]:
    data = tomllib.loads(text)
    salt = _salt(data)
    items = data.get("key", [])
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise ValueError("'key' must be [[key]] tables")
    return data, KeyRing(salt, [_entry(item, number) for number, item in enumerate(items, 1)])


def _read(path: Path) -> tuple[str, dict[str, Any], KeyRing]:
    """The file's text, its TOML and its ring; a ValueError of one line names the file."""
    try:
        # Bytes, not read_text: a rewrite must keep the line endings it found.
        text = path.read_bytes().decode("utf-8")
        data, ring = _parse(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"cannot read the keys file {path}: {e}") from None
    return text, data, ring


class Authenticator:
    """Anonymous when no keys file is configured, else by the key ring.

    `keys` may be replaced by a new ring at any time (KeysFile does, on a reload): a call reads
    it once, so it is checked against the old ring or the new one, never a mix.
    """

    def __init__(self, keys: KeyRing | None) -> None:
        self.keys = keys

    @property
    def anonymous(self) -> bool:
        return self.keys is None

    def authenticate(self, authorization: str | None) -> Caller:
        keys = self.keys
        return ANONYMOUS if keys is None else keys.authenticate(authorization)


# --- writing the file -------------------------------------------------------------------------


@contextlib.contextmanager
def _editing(path: Path) -> Iterator[None]:
    """An exclusive lock for one read-change-replace of the keys file. Without it, a `keys add`
    racing a `keys revoke` could write back the entry just revoked. The lock is on the
    directory, since the file itself is replaced by every write."""
    directory = os.open(Path(os.path.realpath(path)).parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        yield
    finally:
        os.close(directory)  # releases the lock


def _replace(path: Path, text: str) -> None:
    """Writes a temporary file beside `path`, fsyncs it and renames it over `path`: a crash
    leaves the old file or the new one, never half of one, and a server never reads half.
    The old file's mode and owner carry over (a server may read it through its group); a new
    file is 0600."""
    target = Path(os.path.realpath(path))  # a symlink stays a symlink; its target is replaced
    try:
        old: os.stat_result | None = target.stat()
    except FileNotFoundError:
        old = None
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with open(fd, "wb") as file:
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                new = os.fstat(fd)
                if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(fd)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)  # the rename itself
    finally:
        os.close(directory)


def _toml_string(text: str) -> str:
    """A TOML basic string. Not json.dumps: JSON writes a character beyond the BMP as two
    escaped surrogates, which TOML refuses, and leaves DEL bare, which TOML also refuses."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda c: f"\\u{ord(c[0]):04x}", escaped) + '"'


def _entry_text(subject: str, folders: list[str], added: datetime.datetime, digest: bytes) -> str:
    # A bare time is TOML's own offset date-time.
    return (
        f"\n[[key]]\nsubject = {_toml_string(subject)}\n"
        f"folders = [{', '.join(_toml_string(f) for f in folders)}]\n"
        f"added = {added.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f'sha256 = "{digest.hex()}"\n'
    )


def add_key(path: Path, subject: str, folders: list[str]) -> str:
    """Adds a new key for `subject` to the file (made if missing); returns the key itself."""
    if not subject or not folders or any(not f for f in folders):
        raise ValueError("a key needs a subject and at least one folder (or '*')")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _editing(path):
        if path.exists():
            text, _, ring = _read(path)  # a malformed file is refused, not added to
            salt = ring._salt
        else:
            salt = secrets.token_bytes(16)
            text = f'{_NEW_FILE}salt = "{salt.hex()}"\n'
        key = secrets.token_urlsafe(32)
        added = datetime.datetime.now(datetime.UTC)
        text += _entry_text(subject, folders, added, _digest(salt, key))
        _parse(text)  # what is written must read back, or no later command could use the file
        _replace(path, text)
    return key


_KEY_HEADER = re.compile(r"[ \t]*\[\[[ \t]*key[ \t]*\]\][ \t]*(?:#.*)?\r?\n?")
_BLANK_OR_COMMENT = re.compile(r"[ \t]*(?:#.*)?\r?\n?")


def _lines(text: str) -> list[str]:
    """`text` split after each "\\n" only (str.splitlines also splits inside TOML strings)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _without_entries(text: str, data: dict[str, Any], drop: set[int]) -> str:
    """`text` without the `[[key]]` tables numbered `drop` (from 0), each with the blank and
    comment lines right above its header; every other line stays as it was. The result is
    checked to be `data` without those entries; a file laid out so that this does not hold
    (a [[key]] line inside a multi-line string, an inline array of tables) is a ValueError."""
    lines = _lines(text)
    starts = []
    for number, line in enumerate(lines):
        if _KEY_HEADER.fullmatch(line):
            start = number
            while start > 0 and _BLANK_OR_COMMENT.fullmatch(lines[start - 1]):
                start -= 1
            starts.append(start)
    items = data.get("key", [])
    expected = {k: v for k, v in data.items() if k != "key"}
    if len(drop) < len(items):
        expected["key"] = [item for n, item in enumerate(items) if n not in drop]
    if len(starts) == len(items):
        ends = [*starts[1:], len(lines)]
        gone = {i for n in drop for i in range(starts[n], ends[n])}
        result = "".join(line for i, line in enumerate(lines) if i not in gone)
        with contextlib.suppress(tomllib.TOMLDecodeError):
            if tomllib.loads(result) == expected:
                return result
    raise ValueError("its [[key]] tables are not laid out one after another: edit it by hand")


def revoke_key(path: Path, key_id: str) -> list[KeyEntry]:
    """Removes the key with this id from the file and returns its entry (or, for a key listed
    twice, its entries). An id no entry has, or one two different keys share, is a ValueError
    and the file is left as it was, byte for byte."""
    with _editing(path):
        text, data, ring = _read(path)
        drop = {n for n, entry in enumerate(ring.entries) if entry.key_id == key_id.lower()}
        if not drop:
            raise ValueError(f"no key with id {key_id!r} in {path} (see keys list)")
        removed = [ring.entries[n] for n in sorted(drop)]
        if len({entry.digest for entry in removed}) > 1:
            raise ValueError(f"{len(removed)} different keys in {path} have the id {key_id!r}")
        try:
            changed = _without_entries(text, data, drop)
        except ValueError as e:
            raise ValueError(f"cannot remove key {key_id!r} from {path}: {e}") from None
        _replace(path, changed)
    return removed


# --- following the file in a running server ---------------------------------------------------


class KeysFile:
    """The keys file of a running server, and the Authenticator that follows it.

    `poll()` (every second, from the server's loop) reloads the file when its inode, size or
    modification time changed; `reload()` (SIGHUP) reloads it whatever they say, so an edit
    that kept all three is applied too. A file that no longer loads is refused with one log
    line and the last good keys stay in use, until the file changes again. A reload makes a
    new KeyRing and swaps it into the Authenticator whole; calls already past authentication
    finish as they started.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen = self._stamp()  # before reading: a change in between shows at the next poll
        self._ring = KeyRing.load(path)
        self.auth = Authenticator(self._ring)

    def _stamp(self) -> object:
        try:
            found = os.stat(self.path)
        except OSError as e:
            return str(e)  # the same failure again is not news
        return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)

    def poll(self) -> None:
        stamp = self._stamp()
        if stamp != self._seen:
            self._load(stamp, "after it changed")

    def reload(self) -> None:
        self._load(self._stamp(), "on SIGHUP")

    def _load(self, stamp: object, why: str) -> None:
        self._seen = stamp
        old = self._ring
        try:
            new = KeyRing.load(self.path)
        except ValueError as e:
            log.error("%s; keeping the keys read before", e)
            return
        self._ring = self.auth.keys = new
        before, after = {e.digest for e in old.entries}, {e.digest for e in new.entries}
        log.info(
            "reloaded the keys file %s %s: %d added, %d removed, %d in all",
            self.path,
            why,
            len(after - before),
            len(before - after),
            len(new.entries),
        )
