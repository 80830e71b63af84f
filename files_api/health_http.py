"""`/healthz` and `/readyz` on the HTTP listener, for orchestrators and load balancers.

Liveness answers 200 while the loop runs: it touches nothing else, so a slow store never gets a
live process restarted. Readiness answers 503 once graceful shutdown begins (before the listeners
stop, so a load balancer drains the instance) and when the store does not answer a cheap read
within `PING_TIMEOUT_SECONDS`. Neither needs credentials; neither says more than a word on why.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

    from files_api.store import FileStore

HEALTHZ = "/healthz"
READYZ = "/readyz"
PING_TIMEOUT_SECONDS = 2.0

# An id no file has (ids are 20 lowercase characters): a lookup that finds nothing costs one
# indexed read on every backend, and needs no method of its own in the FileStore protocol.
_NO_SUCH_ID = "-readyz-"


async def ping(store: FileStore) -> None:
    """Raises when the store cannot answer a read."""
    await asyncio.wait_for(store.get(_NO_SUCH_ID, time.time_ns()), PING_TIMEOUT_SECONDS)


def health_routes(store: FileStore, shutting_down: Callable[[], bool]) -> list[web.RouteDef]:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if shutting_down():
            return _not_ready("shutting down")
        try:
            await ping(store)
        except Exception:  # the store's own error stays out of an unauthenticated answer
            return _not_ready("store unavailable")
        return web.json_response({"status": "ready"})

    return [web.get(HEALTHZ, healthz), web.get(READYZ, readyz)]


def _not_ready(reason: str) -> web.Response:
    return web.json_response({"status": "not ready", "reason": reason}, status=503)
