"""What one HTTP client may hold of a listener: a connection that is not being served (its
headers never finished, or it sits between requests) is closed after `idle_timeout`, and at
most `max_connections` are open at once (one past that is closed as soon as it is accepted).

aiohttp has a keep-alive timeout but none for a request's headers, so a client that sends
part of a request line, or nothing, held its connection (and a file descriptor) forever.
`ConnectionGuard` wraps the protocol each accepted connection gets; its middleware says when
a request is being served, which stops the clock until the response has gone out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 10_000

log = logging.getLogger(__name__)


class _Clock:
    """One connection's idle clock: how many of its requests are being served, since when it
    has been idle, and the timer that looks at the two when the idle time could be up."""

    __slots__ = ("handle", "idle_since", "serving")

    def __init__(self, idle_since: float) -> None:
        self.serving = 0
        self.idle_since = idle_since
        self.handle: asyncio.TimerHandle | None = None


class ConnectionGuard:
    """Closes connections idle for `idle_timeout` seconds and refuses past `max_connections`.

    A request touches two fields of its connection's clock, not its timer: the timer goes off
    when the idle time could be up, and sets itself again when the connection was busy since
    (cancelling and arming a timer per request cost a download of 64 KiB about 12 % of its
    rate)."""

    def __init__(self, idle_timeout: float, max_connections: int) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._idle: dict[asyncio.BaseTransport, _Clock] = {}
        self._open: set[asyncio.BaseTransport] = set()
        self._refused = _Throttled(log, 10.0)

    @property
    def open(self) -> int:
        return len(self._open)

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(factory(), self)

    def _opened(self, transport: asyncio.BaseTransport) -> bool:
        if len(self._open) >= self.max_connections:
            self._refused.warning(
                "refusing HTTP connections: %d open, the most --max-connections allows",
                len(self._open),
            )
            transport.close()
            return False
        self._open.add(transport)
        self._arm(transport)
        return True

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._open.discard(transport)
        self._disarm(transport)

    def _arm(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        clock = self._idle[transport] = _Clock(loop.time())
        clock.handle = loop.call_later(self.idle_timeout, self._look, transport, clock)

    def _look(self, transport: asyncio.BaseTransport, clock: _Clock) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if clock.serving:
            due = now + self.idle_timeout
        else:
            due = clock.idle_since + self.idle_timeout
            if due <= now:
                transport.close()
                return
        clock.handle = loop.call_at(due, self._look, transport, clock)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        clock = self._idle.pop(transport, None)
        if clock is not None and clock.handle is not None:
            clock.handle.cancel()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A request being served stops its connection's clock; the clock starts again once
        the response has gone out."""
        clock = self._idle.get(request.transport)  # type: ignore[arg-type]
        if clock is None:
            return await handler(request)
        clock.serving += 1
        try:
            return await handler(request)
        finally:
            clock.serving -= 1
            clock.idle_since = asyncio.get_running_loop().time()


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard told when it opens and closes."""

    def __init__(self, inner: asyncio.BaseProtocol, guard: ConnectionGuard) -> None:
        self._inner: Any = inner
        self._guard = guard
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._guard._opened(transport):
            self._transport = transport
            self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard._closed(self._transport)
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self._inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, with every accepted connection under a `ConnectionGuard`."""

    __slots__ = ("_guard",)

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard, **kwargs: Any
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]


class _Throttled:
    """A logger's warning, said at most once per `interval` seconds."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        self._last = -interval

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._logger.warning(message, *args)


def raise_descriptor_limit() -> int:
    """Raises the soft limit on open files to the hard one; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def throttle_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
    """When descriptors run out, asyncio reports each failed accept; this says so once per
    `interval` instead (the listener retries by itself and serves again once some close)."""
    throttled = _Throttled(logging.getLogger("asyncio"), interval)
    default = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            throttled.warning(
                "%s (said at most every %g s): %s", message, interval, context.get("exception")
            )
            return
        if default is not None:
            default(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
