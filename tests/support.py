"""Helpers for tests that run the server as a real process and drive it with real clients."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast, overload

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

    class HealthStub(Protocol):
        """The Health service's client on a blocking channel, as grpcio generates it."""

        Check: grpc.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]
        Watch: grpc.UnaryStreamMultiCallable[HealthCheckRequest, HealthCheckResponse]

    class HealthAsyncStub(Protocol):
        """The same on a grpc.aio channel."""

        Check: grpc.aio.UnaryUnaryMultiCallable[HealthCheckRequest, HealthCheckResponse]
        Watch: grpc.aio.UnaryStreamMultiCallable[HealthCheckRequest, HealthCheckResponse]


ROOT = Path(__file__).resolve().parent.parent
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
CLIENT_SCRIPTS = Path(__file__).resolve().parent / "clients"
VENV_BIN = Path(sys.executable).parent

_LISTENING = re.compile(r"serving gRPC on (\S+):(\d+) and HTTP on (\S+):(\d+)")
STARTUP_TIMEOUT = 30.0


@dataclasses.dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    grpc_address: str
    http_address: str
    log: list[str]

    def log_text(self) -> str:
        return "".join(self.log)


@overload
def health_stub(channel: grpc.Channel) -> HealthStub: ...
@overload
def health_stub(channel: grpc.aio.Channel) -> HealthAsyncStub: ...
def health_stub(channel: grpc.Channel | grpc.aio.Channel) -> HealthStub | HealthAsyncStub:
    """`health_pb2_grpc.HealthStub`, with the methods types-grpcio-health-checking leaves out."""
    return cast("HealthStub | HealthAsyncStub", health_pb2_grpc.HealthStub(channel))


def wait_serving(target: str, credentials: grpc.ChannelCredentials | None = None) -> None:
    """Blocks until the health service says SERVING (no sleeps: the RPC waits for readiness)."""
    channel = (
        grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    )
    with channel:
        response = health_stub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=STARTUP_TIMEOUT, wait_for_ready=True
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@contextlib.contextmanager
def spawn(
    command: list[str],
    ready: re.Pattern[str],
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[tuple[subprocess.Popen[str], re.Match[str], list[str]]]:
    """Runs a command until it prints a line matching `ready`; SIGTERM (then SIGKILL) on exit.

    Yields the process, that match, and the output so far (stdout and stderr, kept growing).
    """
    process = subprocess.Popen(
        command,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    log: list[str] = []
    found = threading.Event()
    matches: list[re.Match[str]] = []

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            match = ready.search(line)
            if match and not found.is_set():
                matches.append(match)
                found.set()
        found.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not found.wait(STARTUP_TIMEOUT) or not matches:
            raise RuntimeError(f"{command} did not start:\n" + "".join(log))
        yield process, matches[0], log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def server_process(
    *args: str,
    env: dict[str, str] | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    cwd: Path = ROOT,
) -> Iterator[ServerProcess]:
    """`python -m server` on free loopback ports (unless `env` names them), serving when
    yielded."""
    env = env or {}
    command = [sys.executable, "-m", "files_api"]
    for flag, variable in [
        ("--grpc-listen", "FILES_GRPC_LISTEN"),
        ("--http-listen", "FILES_HTTP_LISTEN"),
    ]:
        if variable not in env:
            command += [flag, "127.0.0.1:0"]
    command += args
    with spawn(command, _LISTENING, env, cwd) as (process, match, log):
        grpc_address, http_address = f"{match[1]}:{match[2]}", f"{match[3]}:{match[4]}"
        wait_serving(grpc_address, credentials)
        yield ServerProcess(process, grpc_address, http_address, log)


class ServerProcesses:
    """Servers launched together by `server_processes`; `serving()` waits until all are."""

    def __init__(self, count: int) -> None:
        self._outcomes: dict[int, ServerProcess | BaseException] = {}
        self._settled = threading.Condition()
        self._count = count

    def _settle(self, index: int, outcome: ServerProcess | BaseException) -> None:
        with self._settled:
            self._outcomes[index] = outcome
            self._settled.notify_all()

    def serving(self, timeout: float = 2 * STARTUP_TIMEOUT) -> list[ServerProcess]:
        """Every server, serving, in the order of their arguments; a failed start raises here."""
        with self._settled:
            if not self._settled.wait_for(lambda: len(self._outcomes) == self._count, timeout):
                raise RuntimeError(f"{self._count - len(self._outcomes)} servers did not start")
        outcomes = [self._outcomes[index] for index in range(self._count)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return [outcome for outcome in outcomes if isinstance(outcome, ServerProcess)]


@contextlib.contextmanager
def server_processes(*arg_lists: list[str]) -> Iterator[ServerProcesses]:
    """`server_process` for each list of arguments, all launched at once: none waits for another
    to be serving, as when a deployment rolls out replicas together. Yields at once, before any
    serves; stops them all on the way out."""
    servers = ServerProcesses(len(arg_lists))
    stop = threading.Event()

    def run(index: int, args: list[str]) -> None:
        try:
            with server_process(*args) as server:
                servers._settle(index, server)
                stop.wait()
        except BaseException as e:  # raised in the test's thread by serving()
            if not stop.is_set():
                servers._settle(index, e)

    threads = [
        threading.Thread(target=run, args=(index, args), daemon=True)
        for index, args in enumerate(arg_lists)
    ]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def run_server_command(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """`python -m server ARGS` run to its end: a subcommand, --help, or a start that must fail."""
    return subprocess.run(
        [sys.executable, "-m", "files_api", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=check,
    )


def run_client(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Runs tests/clients/SCRIPT with the independent clients' own Python (.venv-clients)."""
    if not CLIENTS_PYTHON.exists():
        raise RuntimeError(f"{CLIENTS_PYTHON} is missing: run `make test`, which installs it")
    started = time.monotonic()
    result = subprocess.run(
        [str(CLIENTS_PYTHON), str(CLIENT_SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{script} failed after {time.monotonic() - started:.1f}s"
            f" (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result
