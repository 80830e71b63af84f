"""The servers under test as child processes: start, find the port, watch the log, measure, stop."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0

# Ours logs "serving gRPC on H:P and HTTP on H:P, ..."; each floor names the one it serves.
_SERVING = re.compile(r"serving (?:gRPC on (\S+:\d+))?(?: and )?(?:HTTP on (\S+:\d+))?")
# Our log format is "%(asctime)s %(levelname)s %(name)s: ..."; tracebacks and gRPC core's own
# "E0101 ..." lines count as errors too.
_ERROR = re.compile(r" (ERROR|CRITICAL) |^Traceback|^E\d{4} ")


class ServerProcess:
    """One server under test, its stdout and stderr read as they come: the last lines are kept
    for a failure message, and every error line (a server may log each request: the rest go)."""

    def __init__(
        self, name: str, command: list[str], *, health: bool = True, grpc: bool = True
    ) -> None:
        self.name = name
        self.health = health
        self.grpc = grpc
        self.http_address = ""
        """HOST:PORT of its HTTP listener, once it serves, where it has one."""
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._found = threading.Event()
        self._target = ""
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._drain, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                self.tail.append(line)
                if _ERROR.search(line):
                    self.errors.append(line.rstrip())
            match = _SERVING.search(line)
            if match and (match[1] or match[2]) and not self._found.is_set():
                self._target = match[1] or ""
                self.http_address = match[2] or ""
                self._found.set()
        self._found.set()  # the process ended: stop waiting

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_serving(self) -> str:
        """The HOST:PORT it listens on (gRPC, or HTTP for an HTTP-only server), once it takes
        connections and its health service (where it has one: the floors have none) says
        SERVING."""
        if not self._found.wait(STARTUP_TIMEOUT) or not (self._target or self.http_address):
            raise RuntimeError(f"{self.name} did not start:\n{self.log_text()}")
        if not self.grpc:
            return self.http_address  # it printed that line once it was listening
        with grpc.insecure_channel(self._target) as channel:
            grpc.channel_ready_future(channel).result(timeout=STARTUP_TIMEOUT)
            if self.health:
                health = health_pb2_grpc.HealthStub(channel)
                response = health.Check(  # type: ignore[attr-defined]
                    health_pb2.HealthCheckRequest(), timeout=STARTUP_TIMEOUT
                )
                if response.status != health_pb2.HealthCheckResponse.SERVING:
                    raise RuntimeError(f"{self.name} is not SERVING")
        return self._target

    def log_text(self) -> str:
        with self._lock:
            return "".join(self.tail)

    def log_mark(self) -> int:
        with self._lock:
            return len(self.errors)

    def errors_since(self, mark: int) -> list[str]:
        with self._lock:
            return self.errors[mark:]

    def rss_bytes(self) -> int:
        """Resident set size from /proc (Linux), 0 where there is none."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User plus system CPU time so far, from /proc/PID/stat (Linux), 0 where there is none."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0
        # Fields after the parenthesised command; utime and stime are the 14th and 15th.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start_floor(*args: str, name: str = "floor") -> ServerProcess:
    return ServerProcess(name, [sys.executable, "-m", "bench.floor", *args], health=False)


def start_http_floor(*args: str) -> ServerProcess:
    return ServerProcess(
        "bare aiohttp", [sys.executable, "-m", "bench.http_floor", *args], health=False, grpc=False
    )


def start_ours(store_url: str, *args: str, name: str = "ours") -> ServerProcess:
    return ServerProcess(
        name,
        [
            sys.executable,
            "-m",
            "files_api",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--store",
            store_url,
            # Metrics on, as the CLI's default has them, on a port of its own: several of ours
            # run at once (a later --metrics-listen in `args` wins).
            "--metrics-listen",
            "127.0.0.1:0",
            *args,
        ],
    )


@contextlib.contextmanager
def running(*processes: ServerProcess) -> Iterator[list[str]]:
    """Waits until all serve and yields their targets; stops every one on the way out."""
    try:
        yield [p.wait_serving() for p in processes]
    finally:
        for p in processes:
            p.stop()
