"""Wires store, domain, gRPC and HTTP listeners into one process, and takes it down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # grpcio ships no types for it

from files_api import version
from files_api.auth import Authenticator, KeysFile
from files_api.bodies import AUTO_DECOMPRESS, MAX_BODY_BYTES
from files_api.connections import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ConnectionGuard,
    GuardedSite,
    raise_descriptor_limit,
    throttle_accept_errors,
)
from files_api.domain import Core, Drive, Files
from files_api.domain.limits import DEFAULT_URL_TTL_SECONDS, MAX_CONTENT_BYTES
from files_api.grpc_api import (
    FILE_SERVICE,
    FileServicer,
    Health,
    ShutdownGate,
    add_services,
    set_serving,
)
from files_api.health_http import health_routes
from files_api.history import history_routes
from files_api.http_api import face_of, make_app
from files_api.metrics import (
    PrometheusMetrics,
    make_multiproc_dir,
    mark_dead,
    process_metrics,
    remove_multiproc_dir,
    serve_metrics,
    totals_interval,
)
from files_api.observe import GrpcEdge, configure_logging, http_edge
from files_api.openapi import openapi_document
from files_api.pds import Pds
from files_api.rest import ServicerInvoker, rest_handler
from files_api.store import open_store, with_pool_size, without_password
from files_api.tracing import ServerSpans, TracedStore, start_tracing
from files_api.transcoder import routes_for

if TYPE_CHECKING:
    from collections.abc import Sequence
    from multiprocessing.process import BaseProcess

    from files_api.store import FileStore
    from files_api.tracing import Tracing

log = logging.getLogger("files_api")

# Room for the other fields of a CreateFileRequest next to the largest content.
MAX_MESSAGE_BYTES = MAX_CONTENT_BYTES + 1024 * 1024

# On shutdown, calls that arrived before the signal are refused until none has come in for
# `Settings.drain_quiet_seconds` (DRAIN_MAX_SECONDS at most, within the grace period); see
# ShutdownGate.
DRAIN_MAX_SECONDS = 1.0

# How often a running server looks at its keys file's inode, size and modification time: a
# revoked key is refused within about this long without a signal (SIGHUP applies it at once).
KEYS_POLL_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Settings:
    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    store: str = "sqlite:///data/files.db"
    tls_cert: str | None = None
    tls_key: str | None = None
    public_http_url: str | None = None
    url_ttl_seconds: int = DEFAULT_URL_TTL_SECONDS
    sweep_interval_seconds: float = 60.0
    shutdown_grace_seconds: float = 10.0
    # 0 skips the wait for calls queued before the signal (they may then end CANCELLED): for
    # in-process test servers that are stopped after every test.
    drain_quiet_seconds: float = 0.05
    auth_keys: str | None = None
    allow_anonymous: bool = False
    pool_size: int | None = None
    workers: int = 1
    log_format: str = "text"
    access_log: bool = False
    # The CLI's default is 127.0.0.1:9464 (files_api.__main__); a Server made in code (tests,
    # FilesApiServer) serves no metrics unless asked.
    metrics_listen: str = "off"
    # Besides OTEL_TRACES_EXPORTER=otlp and the other OTEL_* variables (files_api.tracing).
    otlp_endpoint: str | None = None
    seed: str | None = None  # an archive a memory: store is loaded from at start
    http_idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per listener


# How gRPC connections are kept, and let go of: a connection with no call for 5 minutes is
# closed (clients reconnect by themselves), a peer that stops answering pings for 20 s is
# dropped, and a connection must finish its handshake (TLS, the HTTP/2 preface) within 20 s.
# A call whose client never sends its message is bounded too: at most 1,000 streams per
# connection, and a connection is told to go away after an hour, its calls cancelled 5 minutes
# later (a health Watch reconnects; every other call is unary and short).
GRPC_CONNECTION_OPTIONS = [
    ("grpc.max_connection_idle_ms", 300_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.server_handshake_timeout_ms", 20_000),
    ("grpc.max_concurrent_streams", 1_000),
    ("grpc.max_connection_age_ms", 3_600_000),
    ("grpc.max_connection_age_grace_ms", 300_000),
]


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _check_free(address: str, what: str) -> None:
    """Refuses a taken port before grpc tries it: grpc's own refusal comes with a line of its
    C core's log on stderr. Binds as a lone server's grpc would (SO_REUSEADDR, no SO_REUSEPORT).
    """
    host, port = split_host_port(address)
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return  # grpc says what is wrong with the name
    for family, kind, proto, _, place in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(place)
            except OSError as e:
                raise OSError(f"cannot listen for {what} on {address}: {e.strerror}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class _ClientFault(logging.Filter):
    """A request malformed below our code (HTTP framing, metadata encoding) is the client's
    fault: one WARNING line instead of an ERROR with a traceback any client could flood."""

    def __init__(self, *kinds: type[BaseException]) -> None:
        super().__init__()
        self.kinds = kinds

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, self.kinds):
            record.msg, record.args = f"{record.getMessage()}: {error}"[:300], ()
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


class _SpuriousPollerWakeup(logging.Filter):
    """grpc.aio wakes every event loop of the process that uses it when a completion arrives;
    all but one find nothing to read and asyncio logs their BlockingIOError as an ERROR with a
    traceback (grpc/grpc#25364, open in every grpcio our range allows). Nothing failed: the
    record is dropped. It happens when a loop of ours shares the process with others
    (`FilesApiServer` in a test suite) and, rarely, in the server alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(error, BlockingIOError)
            and "PollerCompletionQueue._handle_events" in record.getMessage()
        )


def _quiet_client_faults() -> None:
    for name, kinds in (
        ("aiohttp.server", (HttpProcessingError,)),
        # ExecuteBatchError: the client went away (cancelled, reset) before its answer went out.
        ("grpc._cython.cygrpc", (UnicodeDecodeError, cygrpc.ExecuteBatchError)),
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ClientFault) for f in logger.filters):
            logger.addFilter(_ClientFault(*kinds))
    loop_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _SpuriousPollerWakeup) for f in loop_log.filters):
        loop_log.addFilter(_SpuriousPollerWakeup())


class Server:
    """One running server; `start()` binds (port 0 picks a free port), `stop()` drains."""

    def __init__(self, settings: Settings, core: Core | None = None) -> None:
        self.settings = settings
        self.core = core or Core(
            open_store(with_pool_size(settings.store, settings.pool_size)),
            url_ttl_seconds=settings.url_ttl_seconds,
        )
        self.files = Files(self.core)
        self.drive = Drive(self.core)
        self.grpc_port = 0
        self.http_port = 0
        self._grpc: grpc.aio.Server | None = None
        self._health: Health | None = None
        self._http: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._keys_file: KeysFile | None = None
        self._keys_watcher: asyncio.Task[None] | None = None
        self._totals: asyncio.Task[None] | None = None
        self.metrics: PrometheusMetrics | None = None
        self._tracing: Tracing | None = None
        self._gate = ShutdownGate()

    @property
    def tls(self) -> bool:
        return self.settings.tls_cert is not None

    @property
    def http_base_url(self) -> str:
        if self.settings.public_http_url:
            return self.settings.public_http_url.rstrip("/")
        host, _ = split_host_port(self.settings.http_listen)
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{_url_host(host)}:{self.http_port}"

    async def _listen_http(self, app: web.Application) -> None:
        settings = self.settings
        # Outermost, so a request stops its connection's idle clock before anything else.
        guard = self.connections = ConnectionGuard(
            settings.http_idle_timeout_seconds, settings.max_connections
        )
        app.middlewares.insert(0, guard.middleware)
        self._http = web.AppRunner(
            app,
            access_log=None,
            auto_decompress=AUTO_DECOMPRESS,
            keepalive_timeout=settings.http_idle_timeout_seconds,
        )
        await self._http.setup()
        http_host, http_port = split_host_port(settings.http_listen)
        ssl_context = None
        if self.tls:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(settings.tls_cert, settings.tls_key)  # type: ignore[arg-type]
        site = GuardedSite(
            self._http,
            http_host,
            http_port,
            guard,
            ssl_context=ssl_context,
            reuse_port=settings.workers > 1,
        )
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def start(self) -> None:
        settings = self.settings
        if (settings.tls_cert is None) != (settings.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        auth = self._authenticator()
        _quiet_client_faults()
        await self.core.store.open()
        if settings.seed is not None:
            await _seed(self.core.store, settings.store, settings.seed)
        await self.core.start()

        spans = self._start_tracing()
        metrics = self.metrics = (
            None if settings.metrics_listen == "off" else process_metrics(version())
        )
        # What the edges feed: metrics, access lines, spans, and JSON lines' request ids.
        observed = bool(metrics or settings.access_log or spans or settings.log_format == "json")
        self._grpc = grpc.aio.server(
            # No interceptor at all when nothing would use it: grpc.aio then skips the chain.
            interceptors=[GrpcEdge(metrics, settings.access_log, spans)] if observed else [],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # Workers share their ports on purpose; a lone server must not share its port
                # by accident with another one started on the same address.
                ("grpc.so_reuseport", int(settings.workers > 1)),
                *GRPC_CONNECTION_OPTIONS,
            ],
        )
        servicer = FileServicer(self.files, lambda: self.http_base_url, auth, self._gate)
        self._health = add_services(self._grpc, servicer)
        if settings.workers == 1:
            _check_free(settings.grpc_listen, "gRPC")
        try:
            if self.tls:
                assert settings.tls_cert is not None and settings.tls_key is not None
                with open(settings.tls_key, "rb") as key, open(settings.tls_cert, "rb") as cert:
                    credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
                self.grpc_port = self._grpc.add_secure_port(settings.grpc_listen, credentials)
            else:
                self.grpc_port = self._grpc.add_insecure_port(settings.grpc_listen)
        except RuntimeError as e:  # grpc's way of saying the address is taken or invalid
            raise OSError(f"cannot listen for gRPC on {settings.grpc_listen}: {e}") from None

        routes = routes_for(file_service_pb2.DESCRIPTOR.services_by_name["FileService"])
        rest = rest_handler(
            routes,
            ServicerInvoker({FILE_SERVICE: servicer}),
            MAX_BODY_BYTES,
            servicer.auth.authenticate,
        )
        pds = Pds(self.drive, auth, lambda: self.http_base_url)
        health = health_routes(self.core.store, lambda: self._gate.closed)
        app = make_app(
            self.drive.uploads,
            rest,
            openapi_document(routes),
            [*pds.routes(), *history_routes(self.files, auth)],
            health=health,
            edge=http_edge(metrics, settings.access_log, face_of, spans) if observed else None,
        )
        await self._listen_http(app)

        await self._grpc.start()
        await set_serving(self._health, True)
        self.start_sweeper(settings.sweep_interval_seconds)
        if self._keys_file is not None:
            self._keys_watcher = asyncio.create_task(self._watch_keys(self._keys_file))
        if metrics is not None:
            self._totals = asyncio.create_task(self._count_forever(metrics))
        log.info(
            "serving gRPC on %s:%d and HTTP on %s:%d%s, store %s",
            split_host_port(settings.grpc_listen)[0],
            self.grpc_port,
            split_host_port(settings.http_listen)[0],
            self.http_port,
            " over TLS" if self.tls else "",
            without_password(settings.store),
        )

    def _start_tracing(self) -> ServerSpans | None:
        tracing = self._tracing = start_tracing(self.settings.otlp_endpoint)
        if tracing is None:
            return None
        tracer = tracing.tracer
        system = self.settings.store.partition(":")[0].replace("postgres", "postgresql")
        self.core.store = TracedStore(self.core.store, tracer, system)  # type: ignore[assignment]
        return ServerSpans(tracer)

    def start_sweeper(self, interval_seconds: float) -> None:
        """(Re)starts the periodic purge of expired files."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._sweeper = asyncio.create_task(self._sweep_forever(interval_seconds))

    def _authenticator(self) -> Authenticator:
        settings = self.settings
        if settings.auth_keys:
            self._keys_file = KeysFile(Path(settings.auth_keys))
            return self._keys_file.auth
        exposed = [
            a
            for a in (settings.grpc_listen, settings.http_listen)
            if not _is_loopback(split_host_port(a)[0])
        ]
        if exposed and not settings.allow_anonymous:
            raise ValueError(
                f"refusing to serve {', '.join(exposed)} without --auth-keys:"
                " anyone who can connect could read and change every file"
                " (pass --allow-anonymous if that is what you want)"
            )
        return Authenticator(None)

    def reload_keys(self) -> None:
        """SIGHUP: reads the keys file again now, whether or not it looks changed."""
        if self._keys_file is None:
            log.info("SIGHUP: no keys file to reload (the server runs without --auth-keys)")
        else:
            self._keys_file.reload()

    async def _watch_keys(self, keys_file: KeysFile) -> None:
        while True:
            await asyncio.sleep(KEYS_POLL_SECONDS)
            try:
                keys_file.poll()
            except Exception:
                log.exception("checking the keys file failed; trying again next time")

    async def _count_forever(self, metrics: PrometheusMetrics) -> None:
        while True:
            started = time.perf_counter()
            try:
                files, size = await self.core.store.totals(self.core.clock())
            except Exception:
                log.warning("counting the live files failed; trying again", exc_info=True)
            else:
                metrics.files.set(files)
                metrics.content_bytes.set(size)
            await asyncio.sleep(totals_interval(time.perf_counter() - started))

    async def _sweep_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                purged = await self.core.sweep()
            except Exception:
                log.exception("expiration sweep failed; trying again next interval")
            else:
                if self.metrics is not None:
                    self.metrics.purged.inc(purged)
                if purged:
                    log.info("purged %d expired files", purged)

    async def stop(self) -> None:
        """NOT_SERVING and no new calls first, in-flight calls finish, store closes last.

        The whole drain takes at most `shutdown_grace_seconds`; calls still running then are
        cancelled.
        """
        self._gate.closed = True
        stop_by = time.monotonic() + self.settings.shutdown_grace_seconds
        if self._health is not None:
            await set_serving(self._health, False)
        for task in (self._sweeper, self._keys_watcher, self._totals):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._grpc is not None:
            await self._refuse_backlog(stop_by)
            await self._grpc.stop(max(stop_by - time.monotonic(), 0.0))
        if self._http is not None:
            await self._http.cleanup()
        await self.core.store.close()
        if self._tracing is not None:
            # Off the loop: the last batch may wait for a collector (FLUSH_SECONDS at most).
            await asyncio.get_running_loop().run_in_executor(None, self._tracing.stop)

    async def _refuse_backlog(self, stop_by: float) -> None:
        """Keeps taking calls, refused by the gate, until none has arrived for a moment."""
        quiet = self.settings.drain_quiet_seconds
        give_up = min(time.monotonic() + DRAIN_MAX_SECONDS, stop_by)
        while (now := time.monotonic()) < give_up:
            quiet_for = now - self._gate.last_call
            if quiet_for >= quiet:
                return
            await asyncio.sleep(min(quiet - quiet_for, give_up - now))


# Young objects a collection waits for. Python's default (700) suits scripts; a server making
# tens of container objects per call ran a collection every few calls, and 35 us of every
# Update went to the collector (see docs/performance.md).
GC_YOUNG_THRESHOLD = 20_000


async def _seed(store: FileStore, url: str, seed: str) -> None:
    # Imported here: only a seeded start pays for tarfile and zstandard.
    from files_api.archive import seed_store  # noqa: PLC0415

    await seed_store(store, url, seed)


def tune_gc() -> None:
    """Moves what start-up built (modules, descriptors, the store) out of the collector's
    reach, so the collections that follow scan only what calls leave behind, and makes them
    rarer. Nothing is kept longer but cycles, which grpc.aio makes a few of per call."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


async def serve(settings: Settings) -> None:
    """Runs until SIGINT or SIGTERM; SIGHUP reloads the keys file."""
    server = Server(settings)
    metrics = settings.metrics_listen != "off" and settings.workers == 1
    # Bound first, so a taken port stops nothing half-started; said once the server serves.
    metrics_port = _serve_metrics(settings.metrics_listen) if metrics else 0
    raise_descriptor_limit()
    throttle_accept_errors(asyncio.get_running_loop())
    await server.start()
    if metrics:
        _log_metrics(settings.metrics_listen, metrics_port)
    tune_gc()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_keys)
    await stopping.wait()
    log.info("shutting down")
    await server.stop()
    log.info("stopped")


def serve_workers(settings: Settings) -> int:
    """`--workers N`: N server processes sharing both ports (SO_REUSEPORT; the kernel spreads
    connections) and one store. Returns the exit code: 0 after SIGINT/SIGTERM stopped them all.

    Each worker follows the keys file on its own (it polls, as a lone server does); a SIGHUP
    to this process is passed on to every worker.
    """
    if settings.workers < 2:
        raise ValueError("serve_workers wants two workers or more")
    if settings.store == "memory:":
        raise ValueError("--workers needs a shared store (SQLite or PostgreSQL), not memory:")
    for address in (settings.grpc_listen, settings.http_listen):
        if split_host_port(address)[1] == 0:
            raise ValueError(f"--workers needs fixed ports, not {address}: workers share them")
    metrics_dir = None
    if settings.metrics_listen != "off":
        metrics_dir = make_multiproc_dir()  # before the workers start: they inherit its name
        try:
            _log_metrics(
                settings.metrics_listen, _serve_metrics(settings.metrics_listen, metrics_dir)
            )
        except OSError:
            remove_multiproc_dir(metrics_dir)
            raise
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(settings,), name=f"worker-{n}", daemon=False)
        for n in range(settings.workers)
    ]
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    # A worker inherits SIGHUP ignored (ignored signals survive exec) until its loop takes it
    # as a reload: passed on earlier, it would kill the worker. A file changed meanwhile is
    # read at the worker's start or at its first poll.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for worker in workers:
        worker.start()
    signal.signal(signal.SIGHUP, lambda *_: _pass_on(signal.SIGHUP, workers))
    log.info("started %d workers: %s", len(workers), ", ".join(str(w.pid) for w in workers))
    while not stopping.wait(0.2):
        if any(not w.is_alive() for w in workers):
            log.error("a worker exited; stopping the others")
            break
    for worker in workers:
        if worker.is_alive() and worker.pid is not None:
            os.kill(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.join()
        if metrics_dir is not None and worker.pid is not None:
            mark_dead(worker.pid, metrics_dir)
    if metrics_dir is not None:
        remove_multiproc_dir(metrics_dir)
    codes = [w.exitcode for w in workers]
    log.info("stopped %d workers (exit codes %s)", len(workers), codes)
    return 0 if stopping.is_set() and all(code == 0 for code in codes) else 1


def _pass_on(sig: signal.Signals, workers: Sequence[BaseProcess]) -> None:
    for worker in workers:
        if worker.pid is not None and worker.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, sig)


def _serve_metrics(listen: str, multiproc_dir: str | None = None) -> int:
    try:
        return serve_metrics(split_host_port(listen), multiproc_dir)
    except OSError as e:
        raise OSError(f"cannot listen for metrics on {listen}: {e.strerror}") from None


def _log_metrics(listen: str, port: int) -> None:
    host, _ = split_host_port(listen)
    log.info("serving metrics on http://%s:%d/metrics", _url_host(host), port)


def _worker(settings: Settings) -> None:
    configure_logging(settings.log_format, prefix=f"[{os.getpid()}]")
    try:
        asyncio.run(serve(settings))
    except (OSError, ValueError) as e:
        log.error("cannot start: %s", e)
        sys.exit(1)
