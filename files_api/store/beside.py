"""Content kept beside a SQLite database: one file per content id, under `<database>.content/`.

SQLite writes a blob twice (into the WAL, then into the database at the checkpoint); a file
of its own is written once, and one fsync makes it durable. So content of more than
BESIDE_BYTES goes here (`SqliteStore`), and rows only name it. Files are written once under a
fresh id and never changed, which is what lets a download read one while it is deleted, and a
backup hard-link them instead of copying.

The one rule that keeps nothing lost and nothing orphaned: a file here exists only while a
`files` row or a `staging` row names its id. A write commits its staging row, then writes and
fsyncs the file, then commits the file row in place of the staging row; a delete replaces the
row with a staging row (a trigger) and the file goes after the commit. A crash anywhere leaves
a staging row, and `purge_expired` removes what it names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from files_api.store import Content

BESIDE_BYTES = 256 * 1024
"""Content above this size is kept beside the database; smaller content stays in its rows
(a file of its own costs an inode and an fsync more than a row does)."""


def content_dir(database: Path) -> Path:
    return database.with_name(database.name + ".content")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, content: Content) -> None:
    """A new file holding `content`, fsynced, and its name fsynced into its directory (the
    durable-upload floor of the benchmark does exactly this, and nothing more)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


class ContentFiles:
    """The files of one database's content directory (its methods block: call them on a
    thread, except `open` and `read`, which a download calls for one piece at a time)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, content_id: str) -> Path:
        # 256 subdirectories keep each directory small at millions of files.
        return self.root / content_id[:2] / content_id

    def write(self, content_id: str, content: Content) -> None:
        """Writes the content under its id and makes it durable, directory entry included."""
        path = self.path(content_id)
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root)
        write_durably(path, content)

    def open(self, content_id: str) -> int | None:
        """A descriptor to read the content by (it stays readable if the file is removed
        meanwhile), or None when it is gone."""
        try:
            return os.open(self.path(content_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def read(self, content_id: str) -> bytes | None:
        fd = self.open(content_id)
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def remove(self, content_id: str, pin: Pin) -> bool:
        """Removes the file unless a snapshot holds a pin; False when it had to stay."""
        if not pin.try_exclusive():
            return False
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(content_id))
        finally:
            pin.release()
        return True

    def names(self) -> set[str]:
        """Every content id with a file here (for checks and backups, not for serving)."""
        if not self.root.is_dir():
            return set()
        return {
            entry.name for sub in self.root.iterdir() if sub.is_dir() for entry in sub.iterdir()
        }


class Pin:
    """Keeps every file here from being removed while held: a snapshot (export, backup) takes
    it before its read transaction starts, so a file its rows name is still here when read.
    A flock on `.pin`, so it holds across the processes (workers, commands) sharing the store.

    Removal takes the lock exclusively without waiting; while a pin is held it leaves the
    file, and its staging row, for a later `purge_expired`."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(root / ".pin", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def hold(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def try_exclusive(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
