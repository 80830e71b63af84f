"""`files-api`: `serve` (flags, each with an environment variable of the same meaning), `keys`,
`audit` and `--version`. Flags with no command (`files-api --store URL`, `python -m server`
from a checkout) mean `serve`, as they did before there were commands.

Bad input ends with one line on stderr and no traceback: exit 2 for bad usage, 1 for what
went wrong at run time (a port in use, an unreadable file, a store that will not open).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from google.protobuf import timestamp_pb2

from files_api import archive, version
from files_api.app import Settings, serve, serve_workers
from files_api.auth import ALL_FOLDERS, KeyEntry, KeyRing, add_key, revoke_key
from files_api.domain.limits import MAX_URL_TTL_SECONDS
from files_api.observe import configure_logging
from files_api.store import AuditEvent, open_store

if TYPE_CHECKING:
    from files_api.archive import Summary

# (flag, environment variable, Settings field, type, metavar, help)
_FLAGS: list[tuple[str, str, str, type, str, str]] = [
    ("--grpc-listen", "FILES_GRPC_LISTEN", "grpc_listen", str, "HOST:PORT",
     "gRPC address; port 0 picks a free one"),
    ("--http-listen", "FILES_HTTP_LISTEN", "http_listen", str, "HOST:PORT",
     "HTTP address for download links"),
    ("--store", "FILES_STORE", "store", str, "URL",
     "memory:, sqlite:///relative/path.db, sqlite:////absolute/path.db or"
     " postgresql://user:password@host:port/database?pool_size=10 (connections per replica)"),
    ("--tls-cert", "FILES_TLS_CERT", "tls_cert", str, "FILE",
     "PEM certificate chain: serve both listeners over TLS"),
    ("--tls-key", "FILES_TLS_KEY", "tls_key", str, "FILE", "PEM private key for --tls-cert"),
    ("--public-http-url", "FILES_PUBLIC_HTTP_URL", "public_http_url", str, "URL",
     "base of GetUrl links when clients reach the HTTP listener under another name"
     " (default: the listener's own address)"),
    ("--url-ttl", "FILES_URL_TTL", "url_ttl_seconds", int, "SECONDS",
     "how long a GetUrl link works"),
    ("--sweep-interval", "FILES_SWEEP_INTERVAL", "sweep_interval_seconds", float, "SECONDS",
     "how often expired files are purged"),
    ("--shutdown-grace", "FILES_SHUTDOWN_GRACE", "shutdown_grace_seconds", float, "SECONDS",
     "on SIGTERM or SIGINT, how long in-flight calls may run before they are cancelled"),
    ("--workers", "FILES_WORKERS", "workers", int, "N",
     "server processes sharing the ports and the store (fixed ports, not memory:)"),
    ("--pool-size", "FILES_POOL_SIZE", "pool_size", int, "N",
     "database connections per replica (PostgreSQL; default 10, or pool_size in the URL)"),
    ("--auth-keys", "FILES_AUTH_KEYS", "auth_keys", str, "FILE",
     "API keys file (see `keys add`); without it every caller is anonymous"),
    ("--metrics-listen", "FILES_METRICS_LISTEN", "metrics_listen", str, "HOST:PORT",
     "where Prometheus scrapes /metrics (no credentials; keep it internal), or off"),
    ("--otlp-endpoint", "FILES_OTLP_ENDPOINT", "otlp_endpoint", str, "URL",
     "send traces over OTLP to this collector (as OTEL_EXPORTER_OTLP_ENDPOINT; traces are"
     " also on with OTEL_TRACES_EXPORTER=otlp, off otherwise)"),
    ("--log-format", "FILES_LOG_FORMAT", "log_format", str, "text|json",
     "log lines as text, or as JSON objects (time, level, logger, message, request_id, ...)"),
    ("--seed", "FILES_SEED", "seed", str, "FILE",
     "an archive (see `export`) to load a memory: store from at start"),
    ("--http-idle-timeout", "FILES_HTTP_IDLE_TIMEOUT", "http_idle_timeout_seconds", float,
     "SECONDS", "close an HTTP connection that has not sent a whole request, or sits idle"
     " between requests, for this long"),
    ("--max-connections", "FILES_MAX_CONNECTIONS", "max_connections", int, "N",
     "HTTP connections open at once; one more is closed as soon as it is accepted"),
]  # fmt: skip


# The numbers a server may start with, by Settings field: (least, most). A number outside
# is refused at start with one line naming its flag (a link expired when made, a sweeper that
# spins a core, a pool of no connections), not met later as odd behaviour.
_RANGES: dict[str, tuple[float, float]] = {
    "url_ttl_seconds": (1, MAX_URL_TTL_SECONDS),
    "sweep_interval_seconds": (0.1, 86_400),
    "shutdown_grace_seconds": (0, 3_600),
    "workers": (1, 256),
    "pool_size": (1, 1_000),
    "http_idle_timeout_seconds": (0.1, 3_600),
    "max_connections": (1, 1_000_000),
}


PROG = "files-api"
DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"  # OpenTelemetry's Prometheus exporter's port
COMMANDS = ("serve", "keys", "audit", "export", "import", "migrate", "backup")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parse_args(argv: list[str]) -> Settings:
    defaults = Settings(metrics_listen=DEFAULT_METRICS_LISTEN)
    parser = _Parser(
        prog=f"{PROG} serve",
        description="A self-hosted Yandex Cloud AI Studio Files API server (gRPC + HTTP).",
        epilog="Every flag can also be set by the environment variable named in its help.",
    )
    for flag, variable, field, kind, metavar, text in _FLAGS:
        default: Any = os.environ.get(variable, getattr(defaults, field))
        shown = "" if default is None else "; default %(default)s"
        parser.add_argument(
            flag, dest=field, type=kind, default=default, metavar=metavar,
            help=f"{text} ({variable}{shown})",
        )  # fmt: skip
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        default=os.environ.get("FILES_ALLOW_ANONYMOUS", "") not in ("", "0", "false"),
        help="without --auth-keys, listen on non-loopback addresses anyway (FILES_ALLOW_ANONYMOUS)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=os.environ.get("FILES_ACCESS_LOG", "") not in ("", "0", "false"),
        help="one log line per call: face, method or route, status, duration, subject, folder,"
        " peer, request id, bytes in and out (FILES_ACCESS_LOG)",
    )
    args = parser.parse_args(argv)
    # argparse converts string defaults (those from the environment) with `type` as well.
    values = {f[2]: getattr(args, f[2]) for f in _FLAGS}
    for flag, variable, field, *_ in _FLAGS:
        least, most = _RANGES.get(field, (None, None))
        value = values[field]
        if least is not None and value is not None and not least <= value <= most:
            parser.error(f"{flag} ({variable}) must be {least:g}-{most:g}, not {value:g}")
    return dataclasses.replace(
        defaults, allow_anonymous=args.allow_anonymous, access_log=args.access_log, **values
    )


def keys_command(argv: list[str]) -> None:
    """`files-api keys add|list|revoke`: keys are printed once, when made; ids from then on."""
    parser = _Parser(prog=f"{PROG} keys")
    keys_file = _Parser(add_help=False)
    keys_file.add_argument(
        "--file",
        default=os.environ.get("FILES_AUTH_KEYS", "data/keys.toml"),
        help="the keys file (FILES_AUTH_KEYS; default %(default)s)",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add", parents=[keys_file], help="make a key for a subject and add its hash"
    )
    add.add_argument("--subject", required=True, help="who the key belongs to")
    add.add_argument(
        "--folders", required=True, help="comma-separated folder ids the key may use, or '*'"
    )
    actions.add_parser(
        "list", parents=[keys_file], help="one line per key: id, when added, subject, folders"
    )
    revoke = actions.add_parser(
        "revoke", parents=[keys_file], help="remove a key; servers using the file drop it too"
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's id, as `keys list` shows it")
    args = parser.parse_args(argv)
    path = Path(args.file)
    if args.action == "add":
        try:
            key = add_key(path, args.subject, args.folders.split(","))
            entry = KeyRing.load(path).entry_of(key)
        except (OSError, ValueError) as e:
            sys.exit(f"cannot add the key: {e}")
        print(key)
        key_id = entry.key_id if entry else "?"
        print(
            f"added key {key_id} for {args.subject} to {args.file}; this key is shown only now",
            file=sys.stderr,
        )
    elif args.action == "list":
        try:
            entries = KeyRing.load(path).entries
        except ValueError as e:
            sys.exit(f"cannot list the keys: {e}")
        for line in key_lines(entries):
            print(line)
    else:
        try:
            removed = revoke_key(path, args.key_id)
        except (OSError, ValueError) as e:
            sys.exit(f"cannot revoke the key: {e}")
        print(
            f"revoked key {removed[0].key_id} of {removed[0].caller.subject} in {args.file};"
            " servers using this file refuse it within seconds",
            file=sys.stderr,
        )


def key_lines(entries: tuple[KeyEntry, ...]) -> list[str]:
    """`keys list`: id, time added (UTC), subject, folders, in columns; never a key or a hash."""

    def shown(text: str) -> str:  # one line per key, whatever a hand-written subject holds
        return text if text.isprintable() else json.dumps(text)

    rows = []
    for entry in entries:
        added = "unknown"
        if entry.added is not None:
            added = entry.added.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        folders = entry.caller.folders
        where = ALL_FOLDERS if folders is None else ",".join(shown(f) for f in sorted(folders))
        rows.append((entry.key_id, added, shown(entry.caller.subject), where))
    width = max((len(row[2]) for row in rows), default=0)
    return [f"{i}  {added:<20}  {subject:<{width}}  {where}" for i, added, subject, where in rows]


def audit_command(argv: list[str]) -> None:
    """`files-api audit --file ID`: the file's history, oldest first, one line each."""
    parser = _Parser(prog=f"{PROG} audit")
    parser.add_argument("--file", required=True, metavar="FILE_ID", help="the file's id")
    parser.add_argument(
        "--store",
        default=os.environ.get("FILES_STORE", Settings().store),
        metavar="URL",
        help="the store the server uses (FILES_STORE; default %(default)s)",
    )
    args = parser.parse_args(argv)

    async def history() -> list[AuditEvent]:
        store = open_store(args.store)
        await store.open()
        try:
            return await store.audit_log(args.file)
        finally:
            await store.close()

    try:
        events = asyncio.run(history())
    except (OSError, ValueError) as e:
        sys.exit(f"cannot read the audit log: {e}")
    if not events:
        sys.exit(f"no audit records for file {args.file!r}")
    for event in events:
        stamp = timestamp_pb2.Timestamp(
            seconds=event.time_ns // 10**9, nanos=event.time_ns % 10**9
        ).ToJsonString()
        paths = ",".join(event.paths) or "-"
        print(f"{stamp}  {event.action:<6}  {event.subject}  {paths}  request={event.request_id}")


def _store_flag(parser: argparse.ArgumentParser, flag: str = "--store", what: str = "") -> None:
    parser.add_argument(
        flag,
        dest={"--store": "store", "--from": "from_", "--to": "to"}[flag],
        default=os.environ.get("FILES_STORE", Settings().store) if flag == "--store" else None,
        required=flag != "--store",
        metavar="URL",
        help=what or "the store (FILES_STORE; default %(default)s)",
    )


def _summary(verb: str, summary: Summary) -> str:
    skipped = []
    if summary.skipped_existing:
        skipped.append(f"{summary.skipped_existing} skipped as their ids exist")
    if summary.skipped_expired:
        skipped.append(f"{summary.skipped_expired} skipped as expired")
    tail = f" ({'; '.join(skipped)})" if skipped else ""
    return (
        f"{verb} {summary.files} files{tail}, {summary.content_bytes} content bytes,"
        f" {summary.audit_records} audit records, {summary.uploads} pending uploads"
    )


def archive_command(command: str, argv: list[str]) -> None:
    """`files-api export|import|migrate|backup`: one line on stderr when done, or exit 1 with
    one line saying what is wrong (naming the archive's entry)."""
    parser = _Parser(prog=f"{PROG} {command}")
    if command == "migrate":
        _store_flag(parser, "--from", "the store to copy (any server may keep serving it)")
        _store_flag(parser, "--to", "the empty store to fill")
        parser.add_argument(
            "--verify",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="compare counts and every content's SHA-256 afterwards (default: on)",
        )
    else:
        _store_flag(parser)
    if command in ("export", "backup"):
        parser.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    if command == "export":
        parser.add_argument(
            "--without-secret",
            action="store_true",
            help="leave the signing secret out (links and page tokens die with the old store)",
        )
    if command in ("export", "migrate"):
        parser.add_argument(
            "--without-uploads", action="store_true", help="leave pending uploads behind"
        )
    if command == "import":
        parser.add_argument("--in", dest="source", required=True, metavar="FILE")
        parser.add_argument(
            "--merge", action="store_true", help="into a store with files: skip ids it has"
        )
    args = parser.parse_args(argv)
    try:
        if command == "export":
            summary = asyncio.run(
                archive.export_store(
                    args.store,
                    args.out,
                    with_secret=not args.without_secret,
                    with_uploads=not args.without_uploads,
                )
            )
            print(_summary("exported", summary) + f" to {args.out}", file=sys.stderr)
        elif command == "import":
            summary = asyncio.run(archive.import_store(args.store, args.source, merge=args.merge))
            print(_summary("imported", summary), file=sys.stderr)
        elif command == "migrate":
            summary = archive.migrate(
                args.from_, args.to, verify=args.verify, with_uploads=not args.without_uploads
            )
            checked = " and verified" if args.verify else ""
            print(_summary(f"migrated{checked}", summary), file=sys.stderr)
        else:
            pages, files = archive.backup(args.store, args.out)
            print(
                f"backed up {pages} pages and {files} content files to {args.out};"
                " integrity_check ok",
                file=sys.stderr,
            )
    except (archive.ArchiveError, OSError, ValueError) as e:
        sys.exit(f"{PROG} {command}: {e}")


def usage() -> str:
    return (
        f"usage: {PROG} [serve] [FLAGS] | keys add|list|revoke ... | audit --file ID"
        " | export|import|migrate|backup ... | --version\n"
        f"\n  serve   run the server (the default): {PROG} serve --help lists its flags\n"
        "  keys    add, list or revoke API keys in a keys file\n"
        "  audit   print a file's history from the store\n"
        "  export  --store URL --out FILE: the store as an archive (.tar, .tar.gz, .tar.zst)\n"
        "  import  --store URL --in FILE: an archive into an empty store (or --merge)\n"
        "  migrate --from URL --to URL: one store into another, verified\n"
        "  backup  --store sqlite:///... --out FILE.db: an online copy of a SQLite store\n"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command, rest = (argv[0], argv[1:]) if argv[:1] and argv[0] in COMMANDS else ("serve", argv)
    if argv[:1] == ["--version"]:
        print(f"{PROG} {version()}")
    elif argv[:1] in (["-h"], ["--help"]):
        print(usage())
        parse_args(["--help"])  # serve's flags, as `--help` printed before there were commands
    elif argv[:1] and not argv[0].startswith("-") and rest is argv:
        print(f"{PROG}: unknown command {argv[0]!r} (see --help)", file=sys.stderr)
        sys.exit(2)
    elif command == "keys":
        keys_command(rest)
    elif command == "audit":
        audit_command(rest)
    elif command in ("export", "import", "migrate", "backup"):
        archive_command(command, rest)
    else:
        run(parse_args(rest))


def run(settings: Settings) -> None:
    try:
        configure_logging(settings.log_format)
    except ValueError as e:
        sys.exit(f"{PROG}: {e}")
    try:
        if settings.workers > 1:
            sys.exit(serve_workers(settings))
        asyncio.run(serve(settings))
    except (OSError, ValueError) as e:
        logging.getLogger("files_api").error("cannot start: %s", e)
        sys.exit(1)


if __name__ == "__main__":
    main()
