"""Portable archives of a store: `export`, `import`, `migrate` and `backup` (the commands are in
`files_api.__main__`), and the seed a `memory:` server starts from.

An archive is one POSIX tar (`.tar.gz` or `.tar.zst` when the name ends so), written and read
as a stream, in this order:

- `manifest.json`: format, version, the server version that wrote it, when, from which kind of
  store, and the counts (files, content bytes, audit records, pending uploads);
- `secret`: the store's signing secret (absent with `--without-secret`);
- `content/<sha256>`: each distinct content once, and each distinct upload part;
- `files.jsonl`: one live file per line: `file` is the File in proto3 JSON (timestamps to the
  nanosecond), `pds` what the PDS face keeps, `sha256` the content's;
- `uploads.jsonl`: each pending upload (absent with `--without-uploads`);
- `audit.jsonl`: every audit record, in the order the store kept them.

Import reads it front to back inside one load transaction of the target store: the manifest
first, every blob checked against its name before it counts, every line parsed and checked,
the counts compared at the end. Anything wrong raises `ArchiveError` naming the entry, and the
transaction is rolled back: the target is left as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import zstandard
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2
from google.protobuf import json_format, timestamp_pb2

from files_api import version
from files_api.domain.records import audit_json, json_time
from files_api.store import AuditEvent, FileRecord, Upload, open_store
from files_api.store.beside import ContentFiles, Pin, content_dir
from files_api.store.wire import to_proto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from files_api.store import Content, FileStore, Loader

FORMAT = "files-api-archive"
VERSION = 1
CHUNK_BYTES = 1024 * 1024  # content is read and loaded in pieces of this size
PROGRESS_SECONDS = 5.0  # a progress line on stderr this often, once a command runs this long

_MANIFEST, _SECRET, _FILES, _UPLOADS, _AUDIT = (
    "manifest.json",
    "secret",
    "files.jsonl",
    "uploads.jsonl",
    "audit.jsonl",
)
_CONTENT = "content/"


class ArchiveError(ValueError):
    """A bad archive or a refused import: the message names the entry; nothing was stored."""


# --- the lines ------------------------------------------------------------------------------


def _ns(text: str) -> int:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return stamp.seconds * 10**9 + stamp.nanos


def record_json(record: FileRecord) -> dict[str, Any]:
    """The record as `files.jsonl` keeps it (less the content's SHA-256)."""
    local_created, local_modified = record.local_created_at_ns, record.local_modified_at_ns
    return {
        "file": json_format.MessageToDict(to_proto(record)),
        "pds": {
            "hidden": record.hidden,
            "starred": record.starred,
            "localCreatedAt": None if local_created is None else json_time(local_created),
            "localModifiedAt": None if local_modified is None else json_time(local_modified),
            "size": str(record.size),
            "sha1": record.content_hash,
            "labels": list(record.pds_labels),
        },
    }


def record_from_json(line: dict[str, Any]) -> FileRecord:
    """The record a `files.jsonl` line holds; raises on anything missing or mistyped."""
    file = json_format.ParseDict(line["file"], file_pb2.File())
    pds = line["pds"]
    local_created, local_modified = pds["localCreatedAt"], pds["localModifiedAt"]
    labels = pds["labels"]
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError("pds.labels is not a list of strings")
    for flag in ("hidden", "starred"):
        if not isinstance(pds[flag], bool):
            raise ValueError(f"pds.{flag} is not a boolean")
    if not isinstance(pds["sha1"], str):
        raise ValueError("pds.sha1 is not a string")
    if not file.id:
        raise ValueError("the file has no id")
    config = file.expiration_config
    return FileRecord(
        id=file.id,
        folder_id=file.folder_id,
        name=file.name,
        description=file.description,
        mime_type=file.mime_type,
        created_by=file.created_by,
        created_at_ns=file.created_at.seconds * 10**9 + file.created_at.nanos,
        updated_by=file.updated_by,
        updated_at_ns=file.updated_at.seconds * 10**9 + file.updated_at.nanos,
        expiration_policy=config.expiration_policy,
        ttl_days=config.ttl_days,
        expires_at_ns=file.expires_at.seconds * 10**9 + file.expires_at.nanos,
        labels=dict(file.labels),
        size=int(pds["size"]),
        hidden=pds["hidden"],
        starred=pds["starred"],
        local_created_at_ns=None if local_created is None else _ns(local_created),
        local_modified_at_ns=None if local_modified is None else _ns(local_modified),
        content_hash=pds["sha1"],
        pds_labels=tuple(labels),
    )


def _audit_from_json(line: dict[str, Any]) -> AuditEvent:
    paths = line["paths"]
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ValueError("paths is not a list of strings")
    texts = [line[key] for key in ("fileId", "subject", "action", "requestId")]
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("fileId, subject, action and requestId are strings")
    file_id, subject, action, request_id = texts
    return AuditEvent(file_id, _ns(line["time"]), subject, action, tuple(paths), request_id)


def _json_line(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


# --- writing --------------------------------------------------------------------------------


def _open_tar_writer(out: IO[bytes], name: str) -> tuple[tarfile.TarFile, Callable[[], None]]:
    """A streaming tar writer onto `out`, compressed as `name` says, and what finishes it."""
    if name.endswith(".tar.zst"):
        compressor = zstandard.ZstdCompressor().stream_writer(out, closefd=False)
        tar = tarfile.open(fileobj=compressor, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

        def finish() -> None:
            tar.close()
            compressor.close()  # type: ignore[no-untyped-call]

        return tar, finish
    mode = "w|gz" if name.endswith((".tar.gz", ".tgz")) else "w|"
    # Closed by the caller through `finish`, after the snapshot that fills it.
    tar = tarfile.open(fileobj=out, mode=mode, format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]  # noqa: SIM115
    return tar, tar.close


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, data)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes | bytearray | memoryview) -> None:
    _add(tar, name, io.BytesIO(data), len(data))


class _Progress:
    """A line on stderr every PROGRESS_SECONDS, once the command has run that long."""

    def __init__(self, verb: str, total: int, quiet: bool = False) -> None:
        self.verb, self.total, self.quiet = verb, total, quiet
        self.next = time.monotonic() + PROGRESS_SECONDS

    def tick(self, done: int, size: int) -> None:
        if self.quiet or time.monotonic() < self.next:
            return
        self.next = time.monotonic() + PROGRESS_SECONDS
        print(f"{self.verb} {done} of {self.total} files, {size // 2**20} MiB", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Summary:
    """What an export or an import did, for its closing line."""

    files: int
    content_bytes: int
    audit_records: int
    uploads: int
    skipped_existing: int = 0
    skipped_expired: int = 0
    loaded: frozenset[str] = frozenset()  # ids an import stored


async def write_archive(
    store: FileStore,
    out: IO[bytes],
    name: str,
    *,
    kind: str,
    with_secret: bool = True,
    with_uploads: bool = True,
    quiet: bool = False,
    digests: dict[str, str] | None = None,
) -> Summary:
    """Writes the store as it is now (one snapshot) as an archive onto `out`; `digests`, when
    given, gets each exported file's content SHA-256 by id."""
    now_ns = time.time_ns()
    tar, finish = _open_tar_writer(out, name)
    async with store.snapshot(now_ns) as snapshot:
        counts = await snapshot.counts()
        secret = await snapshot.secret() if with_secret else None
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "serverVersion": version(),
            "createdAt": json_time(now_ns),
            "store": kind,
            "counts": {
                "files": counts.files,
                "contentBytes": str(counts.content_bytes),
                "auditRecords": counts.audit_records,
                "pendingUploads": counts.pending_uploads if with_uploads else 0,
            },
            "secret": secret is not None,
        }
        _add_bytes(tar, _MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        if secret is not None:
            _add_bytes(tar, _SECRET, secret)
        blobs: set[str] = set()
        progress = _Progress("exported", counts.files, quiet)
        files, size = 0, 0
        with tempfile.SpooledTemporaryFile(16 * 2**20) as lines:
            async for record in snapshot.files():
                content = await snapshot.content(record.id)
                digest = _put_blob(tar, blobs, content)
                if digests is not None:
                    digests[record.id] = digest
                lines.write(_json_line({**record_json(record), "sha256": digest}))
                files, size = files + 1, size + len(content)
                del content
                progress.tick(files, size)
            _add_spooled(tar, _FILES, lines)
        uploads = 0
        if with_uploads:
            with tempfile.SpooledTemporaryFile(16 * 2**20) as lines:
                async for upload, parts in snapshot.uploads():
                    part_digests = {str(n): _put_blob(tar, blobs, data) for n, data in parts}
                    line = {
                        **record_json(upload.record),
                        "uploadId": upload.upload_id,
                        "parts": upload.parts,
                        "expiresAt": json_time(upload.expires_at_ns),
                        "nameMode": upload.name_mode,
                        "revision": str(upload.revision),
                        "partSha256": part_digests,
                    }
                    lines.write(_json_line(line))
                    uploads += 1
                _add_spooled(tar, _UPLOADS, lines)
        audit = 0
        with tempfile.SpooledTemporaryFile(16 * 2**20) as lines:
            async for event in snapshot.audit():
                lines.write(_json_line(audit_json(event)))
                audit += 1
            _add_spooled(tar, _AUDIT, lines)
    finish()
    return Summary(files, size, audit, uploads)


def _put_blob(tar: tarfile.TarFile, blobs: set[str], content: Content) -> str:
    digest = hashlib.sha256(content).hexdigest()
    if digest not in blobs:
        blobs.add(digest)
        _add_bytes(tar, _CONTENT + digest, content)
    return digest


def _add_spooled(tar: tarfile.TarFile, name: str, lines: IO[bytes]) -> None:
    size = lines.tell()
    lines.seek(0)
    _add(tar, name, lines, size)


@contextlib.contextmanager
def private_file(path: str) -> Iterator[IO[bytes]]:
    """A new file with mode 0600 from its first byte (the archive may hold the signing secret),
    written beside `path` and renamed onto it once complete and synced: an older archive of
    that name stays whole until then, and a failed write leaves nothing behind."""
    partial = f"{path}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


# --- reading --------------------------------------------------------------------------------


def _open_tar_reader(source: IO[bytes], name: str) -> tarfile.TarFile:
    if name.endswith(".tar.zst"):
        reader = zstandard.ZstdDecompressor().stream_reader(source, closefd=False)
        return tarfile.open(fileobj=reader, mode="r|")
    mode = "r|gz" if name.endswith((".tar.gz", ".tgz")) else "r|"
    return tarfile.open(fileobj=source, mode=mode)  # type: ignore[call-overload,no-any-return]


def _chunks(data: IO[bytes], digest: Any, entry: str, size: int) -> Iterator[bytes]:
    """The entry's bytes in pieces, hashed on the way; short data is a truncated entry."""
    left = size
    while left:
        chunk = data.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise ArchiveError(f"{entry}: truncated")
        digest.update(chunk)
        left -= len(chunk)
        yield chunk


def _lines(data: IO[bytes], entry: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(data, start=1):
        try:
            line = json.loads(raw)
        except ValueError as e:
            raise ArchiveError(f"{entry} line {number}: not JSON ({e})") from None
        if not isinstance(line, dict):
            raise ArchiveError(f"{entry} line {number}: not a JSON object")
        yield number, line


@dataclasses.dataclass
class _Reading:
    """What an import has seen so far."""

    manifest: dict[str, Any]
    blobs: dict[str, int] = dataclasses.field(default_factory=dict)  # sha256 -> size
    ids: set[str] = dataclasses.field(default_factory=set)
    loaded: set[str] = dataclasses.field(default_factory=set)
    seen: set[str] = dataclasses.field(default_factory=set)  # entries
    files: int = 0
    content_bytes: int = 0
    audit: int = 0
    uploads: int = 0
    skipped_existing: int = 0
    skipped_expired: int = 0
    secret: bytes | None = None


async def read_archive(
    store: FileStore,
    source: IO[bytes],
    name: str,
    *,
    merge: bool = False,
    quiet: bool = False,
    now_ns: Callable[[], int] = time.time_ns,
) -> Summary:
    """Loads an archive into the store in one transaction: all of it, or (raising
    ArchiveError) none of it."""
    entry = name
    damaged: tuple[type[BaseException], ...] = (
        tarfile.TarError,
        EOFError,
        gzip.BadGzipFile,
        zlib.error,
    )
    if name.endswith(".tar.zst"):
        damaged += (zstandard.ZstdError,)
    try:
        tar = _open_tar_reader(source, name)
        async with store.load() as loader:
            if not merge and not await loader.is_empty():
                raise ArchiveError(
                    "the target store is not empty: import into an empty store, or use --merge"
                )
            reading: _Reading | None = None
            for member in tar:
                entry = member.name
                if reading is None:
                    reading = _Reading(_manifest(tar, member))
                    progress = _Progress("imported", _count(reading.manifest, "files"), quiet)
                    continue
                await _read_member(tar, member, loader, reading, merge=merge, now_ns=now_ns())
                progress.tick(reading.files, reading.content_bytes)
            entry = name
            if reading is None:
                raise ArchiveError(f"{name}: empty, no {_MANIFEST}")
            _check_complete(reading)
            if reading.secret is not None and not (merge and await loader.has_secret()):
                await loader.put_secret(reading.secret)
    except ArchiveError:
        raise
    except damaged as e:
        # tarfile's own errors: a header that does not check out, an end before the end.
        raise ArchiveError(f"{entry}: truncated or damaged ({e})") from None
    return Summary(
        reading.files,
        reading.content_bytes,
        reading.audit,
        reading.uploads,
        reading.skipped_existing,
        reading.skipped_expired,
        frozenset(reading.loaded),
    )


def _member_data(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    if not member.isfile():
        raise ArchiveError(f"{member.name}: not a regular file")
    data = tar.extractfile(member)
    assert data is not None  # a regular file always has data
    return data


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict[str, Any]:
    if member.name != _MANIFEST:
        raise ArchiveError(f"{member.name}: the archive must begin with {_MANIFEST}")
    try:
        manifest = json.loads(_member_data(tar, member).read(2**20))
    except ValueError as e:
        raise ArchiveError(f"{_MANIFEST}: not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{_MANIFEST}: not a {FORMAT}")
    if manifest.get("version") != VERSION:
        raise ArchiveError(
            f"{_MANIFEST}: unknown format version {manifest.get('version')!r}"
            f" (this server reads version {VERSION})"
        )
    for key in ("files", "auditRecords", "pendingUploads"):
        _count(manifest, key)
    return manifest


def _count(manifest: dict[str, Any], key: str) -> int:
    counts = manifest.get("counts")
    value = counts.get(key) if isinstance(counts, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ArchiveError(f"{_MANIFEST}: counts.{key} is not a count")
    return value


async def _read_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    loader: Loader,
    reading: _Reading,
    *,
    merge: bool,
    now_ns: int,
) -> None:
    entry = member.name
    if entry in reading.seen:
        raise ArchiveError(f"{entry}: appears twice")
    reading.seen.add(entry)
    data = _member_data(tar, member)
    if entry.startswith(_CONTENT):
        expected = entry.removeprefix(_CONTENT)
        digest = hashlib.sha256()
        await loader.put_blob(expected, _chunks(data, digest, entry, member.size))
        if digest.hexdigest() != expected:
            raise ArchiveError(f"{entry}: content does not match its SHA-256")
        reading.blobs[expected] = member.size
    elif entry == _SECRET:
        reading.secret = data.read(4096)
        if not reading.secret:
            raise ArchiveError(f"{entry}: empty")
    elif entry == _FILES:
        for number, line in _lines(data, entry):
            where = f"{entry} line {number}"
            await _read_file(line, where, loader, reading, merge=merge, now_ns=now_ns)
    elif entry == _UPLOADS:
        for number, line in _lines(data, entry):
            where = f"{entry} line {number}"
            await _read_upload(line, where, loader, reading, merge=merge, now_ns=now_ns)
    elif entry == _AUDIT:
        for number, line in _lines(data, entry):
            try:
                event = _audit_from_json(line)
            except (KeyError, TypeError, ValueError) as e:
                raise ArchiveError(f"{entry} line {number}: {_reason(e)}") from None
            reading.audit += 1
            # A merge brings the history of the files it adds, no other: a second merge of
            # the same archive then adds nothing twice.
            if not merge or event.file_id in reading.loaded:
                await loader.put_audit(event)
    else:
        raise ArchiveError(f"{entry}: not an entry this format has")


def _reason(error: Exception) -> str:
    return f"missing {error}" if isinstance(error, KeyError) else str(error)


def _parse_record(line: dict[str, Any], where: str) -> tuple[FileRecord, str]:
    try:
        record = record_from_json(line)
    except (KeyError, TypeError, ValueError, json_format.ParseError) as e:
        raise ArchiveError(f"{where}: {_reason(e)}") from None
    return record, where


def _take_id(record: FileRecord, where: str, reading: _Reading) -> None:
    if record.id in reading.ids:
        raise ArchiveError(f"{where}: duplicate id {record.id!r}")
    reading.ids.add(record.id)


def _blob(digest: object, where: str, reading: _Reading) -> str:
    if not isinstance(digest, str) or digest not in reading.blobs:
        raise ArchiveError(f"{where}: its content {_CONTENT}{digest} is missing")
    return digest


async def _read_file(
    line: dict[str, Any],
    where: str,
    loader: Loader,
    reading: _Reading,
    *,
    merge: bool,
    now_ns: int,
) -> None:
    record, _ = _parse_record(line, where)
    _take_id(record, where, reading)
    blob = _blob(line.get("sha256"), where, reading)
    if reading.blobs[blob] != record.size:
        raise ArchiveError(f"{where}: size {record.size} but its content has {reading.blobs[blob]}")
    reading.files += 1
    if record.expires_at_ns <= now_ns:
        reading.skipped_expired += 1  # expired since the export: not brought back
    elif merge and await loader.has_file(record.id):
        reading.skipped_existing += 1
    else:
        await loader.put_file(record, blob)
        reading.loaded.add(record.id)
        reading.content_bytes += record.size


async def _read_upload(
    line: dict[str, Any],
    where: str,
    loader: Loader,
    reading: _Reading,
    *,
    merge: bool,
    now_ns: int,
) -> None:
    record, _ = _parse_record(line, where)
    try:
        parts = {int(n): digest for n, digest in dict(line["partSha256"]).items()}
        upload = Upload(
            record,
            str(line["uploadId"]),
            int(line["parts"]),
            _ns(line["expiresAt"]),
            str(line["nameMode"]),
            int(line["revision"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ArchiveError(f"{where}: {_reason(e)}") from None
    blobs = [(number, _blob(digest, where, reading)) for number, digest in sorted(parts.items())]
    reading.uploads += 1
    if upload.expires_at_ns <= now_ns or (merge and await loader.has_file(record.id)):
        return
    await loader.put_upload(upload, blobs)


def _check_complete(reading: _Reading) -> None:
    """The counts the manifest promised: an archive cut short at an entry's end shows here."""
    manifest = reading.manifest
    for entry, key, seen in (
        (_FILES, "files", reading.files),
        (_AUDIT, "auditRecords", reading.audit),
        (_UPLOADS, "pendingUploads", reading.uploads),
    ):
        promised = _count(manifest, key)
        if seen != promised:
            raise ArchiveError(f"{entry}: {seen} records, but the manifest counts {promised}")
    if manifest.get("secret") is True and reading.secret is None:
        raise ArchiveError(f"{_SECRET}: missing, but the manifest says the archive has one")


def store_kind(url: str) -> str:
    """`memory`, `sqlite` or `postgresql`: what the manifest says the archive came from."""
    scheme = url.partition(":")[0]
    return "postgresql" if scheme == "postgres" else scheme


# --- the commands -----------------------------------------------------------------------------


async def seed_store(store: FileStore, url: str, path: str) -> None:
    """`serve --seed FILE`: the archive loaded into a `memory:` store as the server starts
    (before it makes its signing secret, so the archive's is the one it uses)."""
    if store_kind(url) != "memory":
        raise ArchiveError(
            f"--seed loads a memory: store, not {store_kind(url)}:"
            " fill other stores once with `files-api import`"
        )
    with open(path, "rb") as source:
        await read_archive(store, source, path, quiet=True)


def _refuse_memory(url: str, what: str) -> None:
    if store_kind(url) == "memory":
        raise ArchiveError(
            f"cannot {what} a memory: store: it lives only inside its server process"
            " (load one at start with `serve --seed FILE`)"
        )


def _require_source(url: str) -> None:
    """A SQLite store to read from must exist: opening a mistyped path would make an empty
    store, and its export an empty archive."""
    if store_kind(url) == "sqlite":
        path = open_store(url).path  # type: ignore[attr-defined]
        if not os.path.exists(path):
            raise ArchiveError(f"no SQLite store at {path}")


async def export_store(
    url: str, path: str, *, with_secret: bool = True, with_uploads: bool = True
) -> Summary:
    """`files-api export`: the store's snapshot into a new archive file (mode 0600)."""
    _refuse_memory(url, "export")
    _require_source(url)
    store = open_store(url)
    await store.open()
    try:
        with private_file(path) as out:
            return await write_archive(
                store,
                out,
                path,
                kind=store_kind(url),
                with_secret=with_secret,
                with_uploads=with_uploads,
            )
    finally:
        await store.close()


async def import_store(url: str, path: str, *, merge: bool = False) -> Summary:
    """`files-api import`: an archive file into the store, whole or not at all."""
    _refuse_memory(url, "import into")
    with open(path, "rb") as source:  # before the store: a mistyped name creates nothing
        store = open_store(url)
        await store.open()
        try:
            return await read_archive(store, source, path, merge=merge)
        finally:
            await store.close()


def migrate(
    from_url: str, to_url: str, *, verify: bool = True, with_uploads: bool = True
) -> Summary:
    """`files-api migrate`: an export piped into an import, through no file: the same snapshot,
    the same checks, the same one transaction. With `verify`, the target is read back after
    the commit: every exported file there with the same SHA-256, and the same counts."""
    _refuse_memory(from_url, "migrate from")
    _refuse_memory(to_url, "migrate into")
    _require_source(from_url)
    if from_url == to_url:
        raise ArchiveError("--from and --to are the same store")
    read_end, write_end = os.pipe()
    digests: dict[str, str] = {}
    exported: list[Summary] = []
    failure: list[BaseException] = []

    async def export() -> None:
        store = open_store(from_url)
        await store.open()
        try:
            with os.fdopen(write_end, "wb", buffering=CHUNK_BYTES) as out:
                exported.append(
                    await write_archive(
                        store,
                        out,
                        "migrate.tar",
                        kind=store_kind(from_url),
                        with_uploads=with_uploads,
                        quiet=True,
                        digests=digests,
                    )
                )
        finally:
            await store.close()

    def run_export() -> None:
        try:
            asyncio.run(export())
        except BrokenPipeError:
            pass  # the import gave up first: its error is the one to report
        except BaseException as e:  # reported by the importing thread
            failure.append(e)

    exporter = threading.Thread(target=run_export, name="migrate-export")
    exporter.start()
    try:
        with os.fdopen(read_end, "rb", buffering=CHUNK_BYTES) as source:
            try:
                summary = asyncio.run(_import_stream(to_url, source))
            except ArchiveError:
                if failure:  # the import saw a cut-off stream: the export's error says why
                    raise ArchiveError(f"the export failed: {failure[0]}") from failure[0]
                raise
    finally:
        exporter.join()
    if failure:
        raise ArchiveError(f"the export failed: {failure[0]}") from failure[0]
    if verify:
        expected = {i: d for i, d in digests.items() if i in summary.loaded}
        asyncio.run(_verify(to_url, expected, exported[0].audit_records))
    return summary


async def _import_stream(url: str, source: IO[bytes]) -> Summary:
    store = open_store(url)
    await store.open()
    try:
        return await read_archive(store, source, "the export stream.tar")
    finally:
        await store.close()


async def _verify(url: str, expected: dict[str, str], audit_records: int) -> None:
    store = open_store(url)
    await store.open()
    try:
        async with store.snapshot(time.time_ns()) as snapshot:
            found: dict[str, str] = {}
            async for record in snapshot.files():
                if record.id in expected:
                    content = await snapshot.content(record.id)
                    found[record.id] = hashlib.sha256(content).hexdigest()
            counts = await snapshot.counts()
    finally:
        await store.close()
    for file_id, digest in expected.items():
        if found.get(file_id) != digest:
            what = "missing" if file_id not in found else "has other content"
            raise ArchiveError(f"verify: file {file_id!r} {what} in the target")
    if counts.audit_records != audit_records:
        raise ArchiveError(
            f"verify: the target has {counts.audit_records} audit records, not {audit_records}"
        )


def backup(url: str, path: str) -> tuple[int, int]:
    """`files-api backup`: SQLite's online backup API into `path` (mode 0600: it holds the
    secret), then `PRAGMA integrity_check` on the copy, and the content files its rows name
    into `path`'s own content directory (`<path>.content/`). Each is written beside its final
    name and renamed into it when sound. Answers the copy's pages and content files.

    All pages in one step, that is in one read transaction: in WAL mode a running server's
    writes go on meanwhile (they only keep the WAL from being checkpointed). Copied a few pages
    at a time instead, the backup would start over after every write of another connection,
    and under a steady writer never end. The store's pin (`files_api.store.beside`) is held
    from before that transaction until the files are copied, so none its rows name is removed
    meanwhile. Content files never change once written: on one file system they are
    hard-linked, not copied."""
    kind = store_kind(url)
    if kind in ("postgresql",):
        raise ArchiveError(
            "backup is for SQLite stores: back up PostgreSQL with pg_dump (see the README)"
        )
    if kind == "memory":
        raise ArchiveError("a memory: store has nothing on disk to back up")
    _require_source(url)
    source_path = Path(open_store(url).path)  # type: ignore[attr-defined]
    source_files = ContentFiles(content_dir(source_path))
    target_dir = content_dir(Path(path))
    partial = f"{path}.partial"
    partial_dir = target_dir.with_name(target_dir.name + ".partial")
    shutil.rmtree(partial_dir, ignore_errors=True)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(partial, 0o600)
    pin = Pin(source_files.root)
    try:
        pin.hold()
        source = sqlite3.connect(source_path)
        target = sqlite3.connect(partial)
        try:
            source.execute("PRAGMA busy_timeout = 10000")
            source.backup(target)
            (pages,) = target.execute("PRAGMA page_count").fetchone()
            result = [row[0] for row in target.execute("PRAGMA integrity_check")]
            named = _beside_rows(target)
        finally:
            target.close()
            source.close()
        if result != ["ok"]:
            raise ArchiveError(f"integrity_check of the copy failed: {'; '.join(result[:3])}")
        _copy_content_files(source_files, ContentFiles(partial_dir), named)
        os.replace(partial, path)
        shutil.rmtree(target_dir, ignore_errors=True)
        os.replace(partial_dir, target_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        shutil.rmtree(partial_dir, ignore_errors=True)
        raise
    finally:
        pin.close()
    return int(pages), len(named)


def _beside_rows(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """The content files a SQLite store's rows name, with their sizes (none in a schema from
    before content files)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
    if "content_beside" not in columns:
        return []
    rows = conn.execute("SELECT content_id, size FROM files WHERE content_beside")
    return [(content_id, size) for content_id, size in rows.fetchall()]


def _copy_content_files(
    source: ContentFiles, target: ContentFiles, named: list[tuple[str, int]]
) -> None:
    """Links each named file (or copies and fsyncs it, across file systems); checks its size."""
    target.root.mkdir(mode=0o700)
    for content_id, size in named:
        origin, copy = source.path(content_id), target.path(content_id)
        copy.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            os.link(origin, copy)
        except FileNotFoundError:
            raise ArchiveError(f"content file {origin} is missing") from None
        except OSError:  # another file system, or links not allowed there
            shutil.copyfile(origin, copy)
            with open(copy, "rb+") as written:
                os.fsync(written.fileno())
        if copy.stat().st_size != size:
            raise ArchiveError(f"content file {origin} is not {size} bytes")
