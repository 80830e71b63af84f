"""`/healthz` and `/readyz` on the HTTP listener: no credentials, JSON, and readiness that
follows the store and turns 503 when graceful shutdown begins, while the listeners still serve."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from files_api.app import Server, Settings

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Running


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.json()


async def test_live_and_ready_without_credentials(running: Running) -> None:
    port = running.server.http_port
    assert await _get(port, "/healthz") == (200, {"status": "ok"})
    assert await _get(port, "/readyz") == (200, {"status": "ready"})


async def test_not_ready_when_the_store_does_not_answer(tmp_path: Path) -> None:
    server = Server(_settings(f"sqlite:///{tmp_path / 'files.db'}"))
    await server.start()
    try:
        await server.core.store.close()
        port = server.http_port
        assert await _get(port, "/readyz") == (
            503,
            {"status": "not ready", "reason": "store unavailable"},
        )
        assert (await _get(port, "/healthz"))[0] == 200
    finally:
        await server.stop()


async def test_not_ready_as_soon_as_shutdown_begins(tmp_path: Path) -> None:
    """A reflection stream held open keeps the gRPC listener draining (within the grace
    period): meanwhile the HTTP listener still answers, and /readyz says 503."""
    server = Server(_settings("memory:", grace=30))
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
    stream = stub.ServerReflectionInfo()
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    await stream.read()
    stopping = asyncio.create_task(server.stop())
    try:
        port = server.http_port
        for _ in range(200):  # a bounded wait for stop() to reach the drain
            if server._gate.closed:
                break
            await asyncio.sleep(0.01)
        assert await _get(port, "/readyz") == (
            503,
            {"status": "not ready", "reason": "shutting down"},
        )
        assert await _get(port, "/healthz") == (200, {"status": "ok"})
        assert not stopping.done()
    finally:
        await stream.done_writing()
        await channel.close()
        await stopping


def _settings(store: str, grace: float = 1) -> Settings:
    return Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store=store,
        sweep_interval_seconds=3600,
        shutdown_grace_seconds=grace,
        drain_quiet_seconds=0,
    )
