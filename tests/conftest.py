"""Fixtures: one contract suite runs against every store backend and a real in-process server.

The PostgreSQL backend runs on a throwaway cluster started once per session (tests/postgres.py),
and only when a test asks for it; each test gets a database of its own.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from grpc_health.v1 import health_pb2

from files_api.app import Server, Settings
from files_api.domain import Core, Files
from files_api.store import open_store
from tests.inprocess import store_for
from tests.postgres import Cluster, ClusterError, start_cluster
from tests.support import health_stub

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator, Iterator
    from pathlib import Path

    from files_api.store import FileStore

BACKENDS = ["memory", "sqlite", "postgres"]

# Servers the tests start as processes serve metrics on a free port, not all on 9464 (the
# default); tests of the metrics listener name their own.
os.environ.setdefault("FILES_METRICS_LISTEN", "127.0.0.1:0")
NEVER_SKIPPED = "tests are never skipped here"


def _fail_if_skipped(report: pytest.CollectReport | pytest.TestReport) -> None:
    """A skip (or xfail, a skip by another name) reads as a pass in a green run; here it fails."""
    if not report.skipped:
        return
    longrepr = report.longrepr
    reason = getattr(report, "wasxfail", None) or (
        longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    ).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail"):
        del report.wasxfail  # else the terminal still shows it as an expected failure
    report.outcome = "failed"
    report.longrepr = f"{NEVER_SKIPPED}: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report() -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _fail_if_skipped(report)
    return report


class Clock:
    """A clock the test moves: starts at the real time, advances only when told."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """Fails, rather than skips, without PostgreSQL: CI installs it, so no test goes unrun."""
    try:
        cluster = start_cluster()
    except ClusterError as e:
        failure = str(e)
    else:
        failure = ""
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module", params=BACKENDS)
def module_store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A store of each backend that one module's tests share (a server they all talk to)."""
    backend = str(request.param)
    cluster = request.getfixturevalue("postgres_cluster") if backend == "postgres" else None
    with store_for(backend, str(tmp_path_factory.mktemp(backend)), cluster) as url:
        yield url


@pytest.fixture
def postgres_database(postgres_cluster: Cluster) -> Iterator[str]:
    """The URL of an empty database, dropped after the test."""
    name = postgres_cluster.database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store of the test's backend."""
    if backend == "memory":
        return "memory:"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'files.db'}"
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_database"))
    raise ValueError(backend)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[FileStore]:
    opened = open_store(store_url)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def files(store: FileStore, clock: Clock) -> Files:
    core = Core(store, clock=clock)
    await core.start()
    return Files(core)


@dataclasses.dataclass
class Running:
    server: Server
    channel: grpc.aio.Channel
    stub: file_service_pb2_grpc.FileServiceAsyncStub
    clock: Clock


@pytest.fixture
async def running(store_url: str, clock: Clock) -> AsyncIterator[Running]:
    """A real server on 127.0.0.1 port 0 with the test's clock, and a channel to it."""
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store=store_url,
        sweep_interval_seconds=3600,
        shutdown_grace_seconds=1,
        drain_quiet_seconds=0,
    )
    server = Server(settings, Core(open_store(settings.store), clock=clock))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    health = health_stub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    try:
        yield Running(server, channel, file_service_pb2_grpc.FileServiceStub(channel), clock)
    finally:
        await channel.close()
        await server.stop()
