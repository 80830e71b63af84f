"""Measuring one point: h2load against one side or several at once, with every check.

`measure` runs h2load (warm-up, then the measured run; one per replica, at once) bracketed by
probes and followed by a look at each server's log; `summarize` folds a side's rounds into
medians with their spread, `compare` alternates two sides round after round and gives their
ratios. `idle_cpu` measures idle servers' CPU.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench import h2load
from bench.processes import running, start_ours
from bench.targets import PROBES

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from bench.scenarios import Scenario, Settings
    from bench.targets import Load, Side


def _max_frame_bytes(probes: list[dict[str, Any]]) -> int:
    """The longest a successful response can be: exact when every probe got the same bytes
    (Get, List, the floors), else with every timestamp at its longest (Update, Create)."""
    frames = set().union(*(p["frames"] for p in probes))
    if len(frames) == 1:
        return len(next(iter(frames)))
    return int(max(p["widest"] for p in probes))


def split_connections(connections: int, replicas: int) -> list[int]:
    """Connections per replica, as even as they go (16 over 2: 8 and 8; 1 over 2: 1 and 0)."""
    return [connections // replicas + (i < connections % replicas) for i in range(replicas)]


def _h2load(
    loads: list[tuple[Load, int]],
    streams: int,
    duration_s: float,
    log_files: list[Path] | None = None,
) -> list[h2load.Run]:
    """One h2load per (load, connections), all at once; a run each."""

    def one(index: int) -> h2load.Run:
        load, connections = loads[index]
        return h2load.run(
            load.url,
            load.payload,
            connections=connections,
            streams=streams,
            duration_s=duration_s,
            log_file=log_files[index] if log_files else None,
            headers=load.headers,
            http1=load.http1,
        )

    if len(loads) == 1:
        return [one(0)]
    with concurrent.futures.ThreadPoolExecutor(len(loads)) as pool:
        return list(pool.map(one, range(len(loads))))


def measure(
    side: Side, scenario: Scenario, connections: int, streams: int, settings: Settings
) -> dict[str, Any]:
    """One h2load run against one server (or one per replica at once), with its checks."""
    loaded = [
        (member, share)
        for member, share in zip(
            side.members, split_connections(connections, len(side.members)), strict=True
        )
        if share
    ]
    members = [member for member, _ in loaded]
    # Members may share a server (one file per connection): count each server once.
    processes = list({id(m.process): m.process for m in members}.values())
    loads = [(member.load(scenario), share) for member, share in loaded]
    marks = [p.log_mark() for p in processes]
    before = [m.probe(scenario) for m in members]
    if settings.warm_up_s > 0:
        _h2load(loads, streams, settings.warm_up_s)
    log_files = [m.payload_dir / f"h2load-{i}.log" for i, m in enumerate(members)]
    cpu_before = sum(p.cpu_seconds() for p in processes)
    started = time.monotonic()
    runs = _h2load(loads, streams, settings.duration_s, log_files)
    elapsed = time.monotonic() - started
    cpu = sum(p.cpu_seconds() for p in processes) - cpu_before
    after = [m.probe(scenario) for m in members]
    log_errors = [
        line for p, mark in zip(processes, marks, strict=True) for line in p.errors_since(mark)
    ]
    result = (
        runs[0] if len(runs) == 1 else h2load.combine(runs, h2load.latency_from_log(*log_files))
    )
    max_frame = _max_frame_bytes(before + after)
    probe_failures = 2 * PROBES * len(members) - sum(p["ok"] for p in before + after)
    return {
        "rps": result.rps,
        "replica_rps": [r.rps for r in runs],
        "done": result.done,
        "succeeded": result.succeeded,
        "failed": result.failed,
        "errored": result.errored,
        "timeout": result.timeout,
        "status_2xx": result.status_2xx,
        "data_bytes": result.data_bytes,
        "max_frame_bytes": max_frame,
        "messages_min": result.messages_min(max_frame),
        "latency_ms": result.latency_ms,
        "probe_failures": probe_failures,
        "probe_errors": [e for p in before + after for e in p["errors"]],
        "log_errors": log_errors[:20],
        # A run in which nothing completed measured nothing: count it as a failure.
        "failures": result.h2load_failures + probe_failures + len(log_errors) + (result.done == 0),
        "server_cpu_percent": round(100 * cpu / elapsed, 1) if elapsed else 0.0,
        "server_rss_mib": round(sum(p.rss_bytes() for p in processes) / 2**20, 1),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rps"] for r in runs]
    return {
        "rps_median": statistics.median(rates),
        "rps_min": min(rates),
        "rps_max": max(rates),
        "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in runs),
        "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "unconfirmed": sum(r["done"] - min(r["done"], r["messages_min"]) for r in runs),
        "rounds": runs,
    }


def compare(
    targets: Sequence[Side], scenario: Scenario, connections: int, streams: int, settings: Settings
) -> dict[str, Any]:
    """All rounds of one point; the order flips every round so neither side always goes first."""
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    for number in range(settings.rounds):
        for target in targets if number % 2 == 0 else targets[::-1]:
            runs[target.name].append(measure(target, scenario, connections, streams, settings))
    base, other = (t.name for t in targets)
    sides = {name: summarize(r) for name, r in runs.items()}
    return {
        "scenario": scenario.key,
        "title": scenario.title,
        "method": scenario.method,
        "connections": connections,
        "streams": streams,
        "concurrency": connections * streams,
        "headline": (connections, streams) == scenario.headline,
        "sides": [base, other],
        **sides,
        "ratio": _ratio(sides[other]["rps_median"], sides[base]["rps_median"]),
        "p99_ratio": _ratio(sides[other]["p99_ms"], sides[base]["p99_ms"]),
        "round_ratios": [
            _ratio(o["rps"], b["rps"]) for b, o in zip(runs[base], runs[other], strict=True)
        ],
    }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def idle_cpu(urls: list[str], sizes: list[int], seconds: float = 5.0) -> dict[str, Any]:
    """CPU of idle servers, the expiration sweeper running every second, over each store."""
    processes = [
        start_ours(url, "--sweep-interval", "1", name=f"{size:,} files")
        for url, size in zip(urls, sizes, strict=True)
    ]
    with running(*processes):
        time.sleep(1.5)  # past start-up work and the first sweep
        before = [p.cpu_seconds() for p in processes]
        time.sleep(seconds)
        after = [p.cpu_seconds() for p in processes]
    return {
        "seconds": seconds,
        "sweep_interval_seconds": 1,
        "cpu_percent": {
            p.name: round(100 * (a - b) / seconds, 2)
            for p, b, a in zip(processes, before, after, strict=True)
        },
    }
