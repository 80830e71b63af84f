"""Who is calling: API keys from a file, each mapped to a subject and the folders it may use.

The keys file is TOML, written by `python -m server keys add`:

    salt = "<hex>"              # one per file, made when the file is created

    [[key]]
    subject = "alice"
    folders = ["b1gteam", "b1gshared"]   # or ["*"] for every folder
    sha256 = "<hex of SHA-256(salt + key)>"

Only hashes are stored. Clients send `authorization: Api-Key <key>` or `Bearer <key>`, over
gRPC metadata or an HTTP header alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import tomllib
from typing import TYPE_CHECKING

from server.errors import Unauthenticated

if TYPE_CHECKING:
    from pathlib import Path

ALL_FOLDERS = "*"
_SCHEMES = ("api-key", "bearer")


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


class KeyRing:
    """The keys of one file; `authenticate` checks a credential against every one of them."""

    def __init__(self, salt: bytes, entries: list[_Entry]) -> None:
        self._salt = salt
        self._entries = entries

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        try:
            data = tomllib.loads(path.read_text())
            salt = bytes.fromhex(data["salt"])
            entries = [
                _Entry(
                    bytes.fromhex(item["sha256"]),
                    Caller(
                        str(item["subject"]),
                        None if ALL_FOLDERS in item["folders"] else frozenset(item["folders"]),
                    ),
                )
                for item in data.get("key", [])
            ]
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"cannot read the keys file {path}: {e}") from None
        return cls(salt, entries)

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
            if hmac.compare_digest(entry.digest, digest):
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
    ring_salt = bytes.fromhex(tomllib.loads(path.read_text())["salt"])
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
