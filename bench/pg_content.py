"""`python -m bench.pg_content URL`: what 128 MiB of content costs a PostgreSQL client, two ways.

The PostgreSQL store keeps content as `bytea` rows of CHUNK_BYTES, streamed each way
(files_api/store/postgres.py); the layout it was chosen over is one `bytea` value per file. For each
layout this puts the content and reads it back, and reports each step's wall time and the
client's peak memory beyond the content itself (a read's result is the caller's and not counted).
Memory is what tracemalloc sees allocated, which includes asyncpg's buffers (PyMem): unlike the
resident set, it does not hide a step's peak in memory the allocator kept from the step before.
The chunks go through the store itself, as the server calls it.

    python -m bench.pg_content postgresql://postgres@127.0.0.1:5432/scratch
    python -m bench.pg_content URL --size-mib 256 --rounds 3

URL names a scratch database: the store's tables are made there if missing, with a table
`bench_content_whole` for the single value, and what the run wrote is deleted at its end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import statistics
import sys
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

import asyncpg

from files_api.store import FileRecord
from files_api.store.postgres import CHUNK_BYTES, PostgresStore

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

MIB = 2**20
FILE_ID = "bench-pg-content-000"
WHOLE = "bench_content_whole"


async def _step(action: Callable[[], Awaitable[Any]]) -> tuple[Any, dict[str, float]]:
    """Runs `action`: its result, and its seconds and peak MiB beyond what it returned."""
    gc.collect()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    result = await action()
    seconds = time.perf_counter() - started
    kept = len(result) if isinstance(result, bytes | bytearray) else 0
    peak = tracemalloc.get_traced_memory()[1] - before - kept
    return result, {"seconds": seconds, "peak_mib": peak / MIB}


def _record(size: int) -> FileRecord:
    now = time.time_ns()
    return FileRecord(
        id=FILE_ID,
        folder_id="bench",
        name="content.bin",
        description="",
        mime_type="application/octet-stream",
        created_by="bench",
        created_at_ns=now,
        updated_by="bench",
        updated_at_ns=now,
        expiration_policy=1,
        ttl_days=1,
        expires_at_ns=now + 86_400 * 10**9,
        labels={},
        size=size,
    )


async def _whole(url: str, content: bytes) -> list[dict[str, float]]:
    """One `bytea` value: asyncpg encodes and decodes it whole."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {WHOLE} (id text PRIMARY KEY, data bytea)")
        await conn.execute(f"DELETE FROM {WHOLE}")
        _, put = await _step(
            lambda: conn.execute(f"INSERT INTO {WHOLE} VALUES ($1, $2)", FILE_ID, content)
        )
        data, read = await _step(
            lambda: conn.fetchval(f"SELECT data FROM {WHOLE} WHERE id = $1", FILE_ID)
        )
        _check(content, data)
        await conn.execute(f"DROP TABLE {WHOLE}")
    finally:
        await conn.close()
    return [put, read]


async def _chunks(url: str, content: bytes) -> list[dict[str, float]]:
    """The store's layout: rows of CHUNK_BYTES, through PostgresStore.create and .content."""
    store = PostgresStore.from_url(url)
    await store.open()
    try:
        await store.delete(FILE_ID, 0)
        record = _record(len(content))
        _, put = await _step(lambda: store.create(record, content))
        data, read = await _step(lambda: store.content(FILE_ID, time.time_ns()))
        _check(content, data)
        await store.delete(FILE_ID, 0)
    finally:
        await store.close()
    return [put, read]


def _check(content: bytes, data: bytes | bytearray | None) -> None:
    if data is None or hashlib.sha256(data).digest() != hashlib.sha256(content).digest():
        raise SystemExit("the content read back differs from the content put")


def _line(layout: str, step: str, runs: list[dict[str, float]]) -> str:
    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    return f"| {layout} | {step} | {median('seconds'):.2f} | +{median('peak_mib'):.0f} |"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_content", description=__doc__)
    parser.add_argument("url", help="postgresql://user@host:port/database of a scratch database")
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=1, help="runs per layout; medians shown")
    args = parser.parse_args(argv)
    content = os.urandom(args.size_mib * MIB)  # incompressible, as TOAST would find most uploads
    tracemalloc.start()
    results: dict[str, list[list[dict[str, float]]]] = {"whole": [], "chunks": []}
    for _ in range(args.rounds):
        results["whole"].append(await _whole(args.url, content))
        results["chunks"].append(await _chunks(args.url, content))
    tracemalloc.stop()
    print(f"{args.size_mib} MiB, median of {args.rounds} round(s); memory beyond the content:\n")
    print("| layout | step | seconds | peak MiB |")
    print("|---|---|---|---|")
    names = {"whole": "one bytea value", "chunks": f"bytea rows of {CHUNK_BYTES // MIB} MiB"}
    for layout, rounds in results.items():
        for index, step in enumerate(("put", "read")):
            print(_line(names[layout], step, [steps[index] for steps in rounds]))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (OSError, asyncpg.PostgresError) as e:
        sys.exit(f"python -m bench.pg_content: {e}")
