"""The server inside your own tests: `FilesApiServer`, a context manager.

    from files_api.testing import FilesApiServer

    with FilesApiServer() as server:  # a memory: store on free loopback ports
        channel = grpc.insecure_channel(server.grpc_target)
        ...
        server.reset()  # every file gone, the server still up

It runs in this process, on an event loop of its own in a background thread: it is serving in
a fraction of a second (no interpreter to start), and clients reach it over real loopback
sockets from any thread or event loop, as they would a remote server. The pytest plugin
(`files_api.pytest_plugin`, the `files_api` fixture) is built on it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

from files_api.app import Server, Settings

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from types import TracebackType

START_TIMEOUT_SECONDS = 30.0


class FilesApiServer:
    """A Files API server for one test session or one test: `start()` or `with`, then `stop()`.

    `store` is any store URL the server takes (`memory:` by default; `sqlite:///path.db` or
    `postgresql://...` to run the same tests on those); `auth_keys` a keys file, as
    `files-api serve --auth-keys` takes. Any other server setting can be passed by name
    (`url_ttl_seconds=60`, `seed="fixtures.tar"` for a memory: store that starts, and is
    reset, with an archive's files). Only loopback is ever listened on.
    """

    def __init__(
        self, store: str = "memory:", *, auth_keys: str | None = None, **settings: Any
    ) -> None:
        self.settings = Settings(
            grpc_listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            store=store,
            auth_keys=auth_keys,
            shutdown_grace_seconds=settings.pop("shutdown_grace_seconds", 1.0),
            drain_quiet_seconds=settings.pop("drain_quiet_seconds", 0.0),
            **settings,
        )
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def grpc_target(self) -> str:
        """`HOST:PORT` of the gRPC listener, as clients and `service_map`s take it."""
        return f"127.0.0.1:{self._running().grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP listener: REST (`/files/v1/...`), PDS (`/v2/...`), downloads."""
        return self._running().http_base_url

    @property
    def server(self) -> Server:
        """The running `files_api.app.Server`, for what the two addresses do not give."""
        return self._running()

    def start(self) -> FilesApiServer:
        if self._server is not None:
            raise RuntimeError("this FilesApiServer is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="files-api", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        server = Server(self.settings)
        try:
            self._call(server.start())
        except BaseException:
            self._shut_loop()
            raise
        self._server = server
        return self

    def reset(self) -> None:
        """Drops every file, its content and history, and every pending upload, then loads
        the seed archive again when there is one; the server keeps serving on the same ports
        with the same signing key."""
        self._call(self._reset())

    async def _reset(self) -> None:
        store = self._running().core.store
        await store.clear()
        if self.settings.seed is not None:
            # Imported here: only a seeded start pays for tarfile and zstandard.
            from files_api.archive import seed_store  # noqa: PLC0415

            await seed_store(store, self.settings.store, self.settings.seed)

    def stop(self) -> None:
        """Drains and stops the server; stopping twice, or before starting, does nothing."""
        server, self._server = self._server, None
        try:
            if server is not None:
                self._call(server.stop())
        finally:
            self._shut_loop()

    def __enter__(self) -> FilesApiServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> Server:
        if self._server is None:
            raise RuntimeError("the FilesApiServer is not running: use start() or `with`")
        return self._server

    def _call(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(work, self._loop).result(START_TIMEOUT_SECONDS)

    def _shut_loop(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_SECONDS)
        loop.close()
