"""Who is calling: API keys from a file, each mapped to a subject and the folders it may use.

The keys file is TOML, written by `python -m server keys add`:

    salt = "<hex>"              # one per file, made when the file is created

    [[key]]
    subject = "alice"
    folders = ["b1gteam", "b1gshared"]   # or ["*"] for every folder
    sha256 = "<hex of SHA-256(salt + key)>"

Nothing else is accepted: a missing or unknown field, `folders` that is not a list of folder
ids, a salt or hash that is not hex stop the server with one line naming the file and the entry.

Only hashes are stored. Clients send `authorization: Api-Key <key>` or `Bearer <key>`, over
gRPC metadata or an HTTP header alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import string
import tomllib
from typing import TYPE_CHECKING, Any

from files_api.errors import Unauthenticated
from files_api.signing import same

if TYPE_CHECKING:
    from pathlib import Path

ALL_FOLDERS = "*"
_SCHEMES = ("api-key", "bearer")
# The WWW-Authenticate value of an HTTP 401 (RFC 9110 section 11.6.1): the schemes accepted.
CHALLENGE = 'Api-Key realm="files", Bearer realm="files"'


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
class _Entry:
    digest: bytes
    caller: Caller


def _digest(salt: bytes, key: str) -> bytes:
    # surrogatepass: a header's undecodable bytes reach here as lone surrogates.
    return hashlib.sha256(salt + key.encode("utf-8", "surrogatepass")).digest()


_ENTRY_FIELDS = {"subject", "folders", "sha256"}


def _salt(data: dict[str, Any]) -> bytes:
    unknown = set(data) - {"salt", "key"}
    if unknown:
        raise ValueError(f"unknown top-level setting {sorted(unknown)[0]!r}")
    salt = data.get("salt")
    if not isinstance(salt, str) or not salt or not _is_hex(salt):
        raise ValueError(f"'salt' must be a non-empty hex string, got {salt!r}")
    return bytes.fromhex(salt)


def _entry(item: dict[str, Any], number: int) -> _Entry:
    subject = item.get("subject")
    where = f"[[key]] #{number}" + (f" (subject {subject!r})" if isinstance(subject, str) else "")
    unknown = set(item) - _ENTRY_FIELDS
    folders = item.get("folders")
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
    elif not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        problem = f"'sha256' must be 64 hex digits, got {digest!r}"
    else:
        return _Entry(
            bytes.fromhex(digest),
            Caller(subject, None if ALL_FOLDERS in folders else frozenset(folders)),
        )
    raise ValueError(f"{where}: {problem}")


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in string.hexdigits for c in text)


class KeyRing:
    """The keys of one file; `authenticate` checks a credential against every one of them."""

    def __init__(self, salt: bytes, entries: list[_Entry]) -> None:
        self._salt = salt
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Reads the keys file; anything malformed is a ValueError of one line naming the file
        and the entry, so a server refuses to start rather than run with a key that means
        something else (`folders = "team"` is not the folders t, e, a and m)."""
        try:
            data = tomllib.loads(path.read_text())
            salt = _salt(data)
            entries = data.get("key", [])
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise ValueError("'key' must be [[key]] tables")
            ring = cls(salt, [_entry(item, number) for number, item in enumerate(entries, 1)])
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"cannot read the keys file {path}: {e}") from None
        return ring

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller a credential belongs to; raises Unauthenticated."""
        if not authorization:
            raise Unauthenticated("missing credentials: send 'authorization: Api-Key <key>'")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() not in _SCHEMES or not key.strip():
            raise Unauthenticated("credentials must be 'Api-Key <key>' or 'Bearer <token>'")
        digest = _digest(self._salt, key.strip())
        found = None
        for entry in self._entries:  # every entry, so the time taken says nothing of a match
            if same(entry.digest, digest):
                found = entry.caller
        if found is None:
            raise Unauthenticated("unknown credentials")
        return found


class Authenticator:
    """Anonymous when no keys file is configured, else by the key ring."""

    def __init__(self, keys: KeyRing | None) -> None:
        self._keys = keys

    @property
    def anonymous(self) -> bool:
        return self._keys is None

    def authenticate(self, authorization: str | None) -> Caller:
        return ANONYMOUS if self._keys is None else self._keys.authenticate(authorization)


def add_key(path: Path, subject: str, folders: list[str]) -> str:
    """Appends a new key for `subject` to the file (made if missing); returns the key itself."""
    if not subject or not folders or any(not f for f in folders):
        raise ValueError("a key needs a subject and at least one folder (or '*')")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# API keys of the files server (python -m server keys add); only hashes are kept.\n"
            f'salt = "{secrets.token_hex(16)}"\n'
        )
        path.chmod(0o600)
    ring_salt = KeyRing.load(path)._salt  # a malformed file is refused, not appended to
    key = secrets.token_urlsafe(32)
    # JSON string escapes are valid TOML basic-string escapes.
    entry = (
        f"\n[[key]]\nsubject = {json.dumps(subject)}\n"
        f"folders = [{', '.join(json.dumps(f) for f in folders)}]\n"
        f'sha256 = "{_digest(ring_salt, key).hex()}"\n'
    )
    with path.open("a") as file:
        file.write(entry)
    return key
