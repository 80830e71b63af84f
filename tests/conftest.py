"""Fixtures: one contract suite runs against every store backend and a real in-process server."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from server.app import Server, Settings
from server.domain import Files
from server.store import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from server.store import FileStore

BACKENDS = ["memory", "sqlite"]


class Clock:
    """A clock the test moves: starts at the real time, advances only when told."""

    def __init__(self) -> None:
        self.now = time.time_ns()

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


def store_url(backend: str, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory:"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'files.db'}"
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[FileStore]:
    opened = open_store(store_url(backend, tmp_path))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def files(store: FileStore, clock: Clock) -> Files:
    domain = Files(store, clock=clock)
    await domain.start()
    return domain


@dataclasses.dataclass
class Running:
    server: Server
    channel: grpc.aio.Channel
    stub: file_service_pb2_grpc.FileServiceStub
    clock: Clock


@pytest.fixture
async def running(backend: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Running]:
    """A real server on 127.0.0.1 port 0 with the test's clock, and a channel to it."""
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store=store_url(backend, tmp_path),
        sweep_interval_seconds=3600,
        shutdown_grace_seconds=1,
    )
    server = Server(settings, Files(open_store(settings.store), clock=clock))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    try:
        yield Running(server, channel, file_service_pb2_grpc.FileServiceStub(channel), clock)
    finally:
        await channel.close()
        await server.stop()
