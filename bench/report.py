"""What a run writes for a person: Markdown tables of the points, and the machine it ran on.

`report_text` is the tables of `report.md` and stdout, `machine` what `results.json` records of
the machine (and the commit), `machine_text` the line above the tables in `report.md`.
"""

from __future__ import annotations

import itertools
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import grpc

from bench import h2load
from bench.bounds import bounds, bounds_table
from bench.parts import POSTGRES_TABLES
from bench.processes import ROOT
from bench.scenarios import BY_KEY


def _rate(side: dict[str, Any]) -> str:
    return f"{side['rps_median']:.0f} ({side['rps_min']:.0f}-{side['rps_max']:.0f})"


def _latency(side: dict[str, Any]) -> str:
    return f"{side['p50_ms']:.1f} / {side['p99_ms']:.1f}"


def table(points: list[dict[str, Any]]) -> str:
    """A Markdown table: medians over the rounds with (min-max), ratio of the medians."""
    base, other = points[0]["sides"]
    lines = [
        f"| scenario | conns x streams | {base} req/s | {other} req/s | ratio | {base} p50/p99 ms"
        f" | {other} p50/p99 ms | p99 ratio | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        title = f"**{p['title']}**" if p["headline"] else p["title"]
        lines.append(
            f"| {title} | {p['connections']}x{p['streams']} | {_rate(p[base])}"
            f" | {_rate(p[other])} | {p['ratio']:.2f} | {_latency(p[base])}"
            f" | {_latency(p[other])} | {p['p99_ratio']:.1f}"
            f" | {p[base]['failures'] + p[other]['failures']} |"
        )
    return "\n".join(lines)


def tables(points: list[dict[str, Any]]) -> str:
    """A table for each run of points that compare the same two sides."""
    runs = [list(run) for _, run in itertools.groupby(points, key=lambda p: p["sides"])]
    return "\n\n".join(table(run) for run in runs)


def stall_table(points: list[dict[str, Any]]) -> str:
    """A Markdown table of the stall part: a row per case and side, medians over the rounds of
    each round's worst call (with min-max) and p99, and ours minus the floor's worst."""
    lines = [
        "| case | server | worst ms | p99 ms | ours - floor worst ms | calls timed"
        " | big calls s | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        for side in p["sides"]:
            s, over = p[side], p["worst_over_floor_ms"].get(side)
            lines.append(
                f"| {p['title']} | {side}"
                f" | {s['worst_ms']:.0f} ({s['worst_min_ms']:.0f}-{s['worst_max_ms']:.0f})"
                f" | {s['p99_ms']:.1f} | {'' if over is None else f'{round(over):+d}'}"
                f" | {s['calls']:.0f} | {s['big_seconds']:.2f} | {s['failures']} |"
            )
    return "\n".join(lines)


def machine_text(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg_at_start"])
    return (
        f"Run {report['started_at']} of {m['commit'] or 'an unknown commit'}"
        f" in {report['duration_seconds']:.0f} s on {m['nproc']} CPUs"
        f" ({m['cpu_model']}), {m['platform']}; Python {m['python']}, grpcio {m['grpcio']},"
        f" {m['h2load']}. Load average at the start: {load}. Each point: rounds per side"
        f" {s['rounds']}, each {s['duration_s']:g} s after {s['warm_up_s']:g} s of warm-up."
    )


def report_text(report: dict[str, Any]) -> str:
    grpc_points = [p for p in report["results"] if not BY_KEY[p["scenario"]].rest]
    rest_points = [p for p in report["results"] if BY_KEY[p["scenario"]].rest]
    in_memory = report.get("in_memory") or []
    parts = [table(points) for points in (grpc_points, in_memory, rest_points) if points]
    scale = report["scale"]
    if scale:
        small, big = (f"{size:,} files" for size in scale["sizes"])
        rss, idle = scale["rss"], scale["idle"]["cpu_percent"]
        seeding = scale["seed_seconds"][str(scale["sizes"][1])]
        parts.append(
            f"{table(scale['points'])}\n\n"
            f"Seeding {big} took {seeding} s. RSS MiB at start and after the load:"
            f" {small} {rss[small]['start_mib']} and {rss[small]['after_load_mib']},"
            f" {big} {rss[big]['start_mib']} and {rss[big]['after_load_mib']}."
            f" Idle CPU with the sweeper every second: {small} {idle[small]} %,"
            f" {big} {idle[big]} %."
        )
    if report.get("sqlite_floor"):
        parts.append(table(report["sqlite_floor"]))
    if report.get("metrics"):
        parts.append(table(report["metrics"]))
    if report.get("upload_floor"):
        parts.append(tables(report["upload_floor"]))
    postgres = report.get("postgres")
    if postgres:
        pg_tables = "\n\n".join(table(postgres[k]) for k in POSTGRES_TABLES if k in postgres)
        parts.append(
            f"PostgreSQL {postgres['server_version']} ({postgres['cluster']}); all clients on one"
            f" file, then (own files) each connection on a file of its own:\n\n{pg_tables}"
        )
    if report.get("stall"):
        parts.append(stall_table(report["stall"]))
    if report.get("downloads"):
        parts.append(tables(report["downloads"]))
    if bounds_rows := bounds(report):
        parts.append(bounds_table(bounds_rows))
    return "\n\n".join(parts)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "h2load": h2load.version(),
        "loadavg_at_start": os.getloadavg(),
        "commit": _commit(),
    }


def _commit() -> str:
    """The checked-out commit, marked when the server's code differs from it ("" outside git)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "files_api", "generated", "protos")
    return f"{head} with uncommitted changes to the server" if head and dirty else head
