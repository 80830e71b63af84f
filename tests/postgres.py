"""A throwaway PostgreSQL cluster for the tests: one per session, one fresh database per test.

The cluster lives in a temp dir owned by the `postgres` user (the server refuses to run as
root, so a root test run drops to that user with `runuser`), listens on a free loopback port
and on a unix socket in the same dir, trusts every local connection and skips fsync: it holds
nothing worth keeping. `start_cluster(durable=True)` keeps PostgreSQL's durable defaults
(fsync, synchronous_commit, full_page_writes on) instead, for the benchmark: a server's users
run it that way, and a commit that waits for the disk is most of what a write costs. The
binaries come from Debian's `postgresql` package (make test installs it), the newest major
version installed; FILES_TEST_PG_BIN points elsewhere.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

DEBIAN_PG = Path("/usr/lib/postgresql")
OS_USER = "postgres"


def _major(bin_dir: Path) -> tuple[int, ...]:
    """(16,) for /usr/lib/postgresql/16/bin, (9, 6) for 9.6; () for a dir that is no version."""
    parts = bin_dir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else ()


def _newest_debian_bin() -> Path:
    """The bin dir of the newest major version with an initdb (Debian installs them side by
    side), or the pattern a missing install would match, for the error message."""
    found = [d for d in DEBIAN_PG.glob("*/bin") if _major(d) and (d / "initdb").exists()]
    return max(found, key=_major, default=DEBIAN_PG / "*" / "bin")


PG_BIN = Path(os.environ.get("FILES_TEST_PG_BIN") or _newest_debian_bin())


class ClusterError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """initdb + pg_ctl in a temp dir; `database()` makes an empty database and its URL."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            raise ClusterError(
                f"{initdb} is missing: the PostgreSQL tests need PostgreSQL "
                "(`apt-get install postgresql`, which make test does when it may), or set"
                " FILES_TEST_PG_BIN to the bin dir of another install"
            )
        self._as_user: list[str] = []
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(OS_USER)
            except KeyError:
                raise ClusterError(
                    f"running as root, and there is no {OS_USER!r} user to run PostgreSQL as"
                ) from None
            self._as_user = ["runuser", "-u", OS_USER, "--"]
        # In /tmp, not $TMPDIR: the postgres user must reach it, and a socket path is short.
        self.root = Path(tempfile.mkdtemp(prefix="files-pg-", dir="/tmp"))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = _free_port()
        self._names = itertools.count(1)

    def _run(self, *command: str, as_owner: bool = True) -> str:
        argv = [*(self._as_user if as_owner else []), *command]
        result = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
        )
        if result.returncode != 0:
            raise ClusterError(
                f"{' '.join(argv)} failed (exit {result.returncode}):\n{result.stdout}"
                f"{result.stderr}{self.log_tail()}"
            )
        return result.stdout

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
            return "\npostgres.log:\n" + "\n".join(text)
        return ""

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "--pgdata", str(self.data),
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",
            "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        fast = ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                *([] if self.durable else fast),
                "-c max_connections=200",
            ]
        )
        self._run(
            str(PG_BIN / "pg_ctl"), "start", "--wait", "--silent",
            "--pgdata", str(self.data), "--log", str(self.log), "--options", options,
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, as when an operator restarts the server."""
        self._run(
            str(PG_BIN / "pg_ctl"), "stop", "--wait", "--silent", "--mode", "fast",
            "--pgdata", str(self.data),
        )  # fmt: skip

    def destroy(self) -> None:
        with contextlib.suppress(ClusterError):
            self._run(
                str(PG_BIN / "pg_ctl"), "stop", "--wait", "--silent", "--mode", "immediate",
                "--pgdata", str(self.data),
            )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(
            str(PG_BIN / "psql"), "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
            "--set", "ON_ERROR_STOP=1",
            "--host", str(self.root), "--port", str(self.port), "--username", "postgres",
            "--dbname", database, "--command", sql,
            as_owner=False,
        )  # fmt: skip

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its name."""
        name = f"t_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return name

    def drop(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_cluster(*, durable: bool = False) -> Cluster:
    """A running cluster: fast and forgetful for the tests, with the durable defaults on
    `durable` (initdb's --no-sync stays: the data dir starts empty either way)."""
    cluster = Cluster(durable=durable)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster
