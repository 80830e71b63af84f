"""How the floors (bench/floor.py, bench/http_floor.py) wait, once serving, to be stopped.

`ServerProcess.stop` sends SIGTERM; Ctrl-C sends SIGINT when a floor is run by hand. Kept apart
from bench/processes.py, the driver's side, so that a floor imports nothing more than this.
"""

from __future__ import annotations

import asyncio
import signal


async def until_stopped() -> None:
    """Returns on the first SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
