"""A real server in a thread of its own, for tests that drive it with blocking clients.

Hypothesis runs a test body many times inside one pytest test, so the hostile-input suites need
a server that outlives a single example and blocking clients that need no event loop of the
test's: the server gets its own loop in a background thread, on 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from grpc_health.v1 import health_pb2

from files_api.app import Server, Settings
from tests.support import health_stub

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from tests.postgres import Cluster


class ErrorLog(logging.Handler):
    """Keeps every record at ERROR or above, or with a traceback, logged anywhere in-process."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            with self._records_lock:
                self.records.append(record)

    def take(self) -> list[str]:
        """The records since the last call, formatted with their tracebacks."""
        with self._records_lock:
            records, self.records = self.records, []
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        return [formatter.format(r) for r in records]


@dataclasses.dataclass
class Reply:
    """An HTTP answer, read whole."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class ThreadedServer:
    """A running server with a blocking gRPC stub, a raw HTTP client and the process's errors."""

    server: Server
    channel: grpc.Channel
    stub: file_service_pb2_grpc.FileServiceStub
    errors: ErrorLog

    @property
    def http_port(self) -> int:
        return self.server.http_port

    def http(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Reply:
        """One HTTP/1.1 request on a fresh connection; `target` and header values (bytes are
        sent as they are) go out exactly as given."""
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        try:
            connection.putrequest(method, target, skip_accept_encoding=True)
            for key, value in (headers or {}).items():
                connection.putheader(key, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def http_json(
        self,
        method: str,
        target: str,
        body: object = None,
        headers: Mapping[str, str | bytes] | None = None,
    ) -> Reply:
        """JSON with `ensure_ascii`, so a lone surrogate travels as the escape `\\ud800`."""
        data = None if body is None else json.dumps(body).encode()
        json_type: dict[str, str | bytes] = {"Content-Type": "application/json"}
        return self.http(method, target, data, {**(json_type if data else {}), **(headers or {})})


@contextlib.contextmanager
def threaded_server(store: str, auth_keys: str | None = None) -> Iterator[ThreadedServer]:
    """Starts the server on its own loop in a thread; stops it and joins the thread on exit."""
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="server-loop", daemon=True)
    thread.start()
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store=store,
        sweep_interval_seconds=3600,
        shutdown_grace_seconds=1,
        auth_keys=auth_keys,
    )
    server = Server(settings)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=60)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        health_stub(channel).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
        try:
            yield ThreadedServer(
                server, channel, file_service_pb2_grpc.FileServiceStub(channel), errors
            )
        finally:
            channel.close()
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=60)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        logging.getLogger().removeHandler(errors)


@contextlib.contextmanager
def store_for(backend: str, tmp_dir: str, cluster: Cluster | None) -> Iterator[str]:
    """A fresh store URL of `backend` (a database of its own on the cluster for postgres)."""
    if backend == "memory":
        yield "memory:"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_dir}/files.db"
    elif backend == "postgres":
        assert cluster is not None
        name = cluster.database()
        try:
            yield cluster.url(name)
        finally:
            cluster.drop(name)
    else:
        raise ValueError(backend)
