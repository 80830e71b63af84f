"""`python -m bench.run`: our server against the floor, scenario by scenario, with h2load.

For every point (a scenario at a number of connections and of streams per connection) the
floor and our server take turns, round after round, so slow drift of a shared machine hits both
alike; each reports its median req/s over the rounds with the spread, p50/p99 latency, and our
rate as a fraction of the floor's.

Every h2load run is bracketed by a few real gRPC calls of the same request (their status must
be OK), checked against h2load's own failure counts and the DATA bytes it received, and followed
by a look at the server's log: any failure makes the exit status 1. REST PATCH runs the same way
over HTTP/1.1 against a bare aiohttp handler (bench/http_floor.py); `--postgres` adds Update and
Get on a throwaway durable PostgreSQL cluster, against the floor and the PostgreSQL floor
(bench/floor.py --postgres) and with one replica against two, all clients on one file and
each connection on a file of its own;
`--sqlite-floor` runs Update and Get on the floor against the SQLite floor (bench/floor.py
--sqlite), the floor plus the least SQLite work a durable server does; `--stall` times small
calls during 128 MiB uploads on ours against the same on the floor (bench/stall.py); `--metrics`
runs Update and Get on ours with metrics off against on; `--upload-floor` runs Create 1 MiB on
the durable-upload floor (bench/floor.py --durable-uploads: each upload fsynced to a file of its
own) against ours and against the recorded-upload floor (--recorded-uploads: that, plus a SHA-1
and a row per upload); `--downloads` GETs a signed link to a 1 MiB and a 64 KiB file over
HTTP/1.1 at 16 connections, ours against a bare aiohttp handler answering the same bytes from
memory (bench/http_floor.py --downloads), and the same against ours on `memory:` and `/healthz`
on both. Where ours misses one of issue 20's targets, the report's last table says what bounds
it, from points of the same run (bench/bounds.py).

    python -m bench.run               # everything, with the scale runs (~20 minutes on 2 cores)
    python -m bench.run --no-scale    # without 1,000 vs 1,000,000 files (~13 minutes)
    python -m bench.run --quick       # every scenario once, one stall round (~1 minute)
    python -m bench.run --scenarios none --no-scale --postgres   # the PostgreSQL part alone
    python -m bench.run --scenarios none --no-scale --postgres-url URL   # ... on your database
    python -m bench.run --scenarios none --no-scale --stall   # the stall part alone (~80 s)
    python -m bench.run --scenarios none --no-scale --no-stall --downloads   # downloads alone

This module is the command line and the report files; the rest of the harness lives in
bench/scenarios.py (what is measured), bench/targets.py (the servers as the driver sees them),
bench/measurement.py (one point: h2load and its checks), bench/parts.py (the parts of a run),
bench/stall.py (the stall part's cases) and bench/report.py (the tables and the machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import h2load
from bench.bounds import bounds
from bench.parts import (
    POSTGRES_TABLES,
    run_downloads,
    run_main,
    run_metrics,
    run_postgres,
    run_scale,
    run_sqlite_floor,
    run_stall,
    run_upload_floor,
)
from bench.report import machine, machine_text, report_text
from bench.scenarios import BY_KEY, HEADLINE, SWEEP, Settings
from bench.stall import MIN_STALL_BYTES
from bench.targets import PROBES
from files_api.domain.limits import MAX_CONTENT_BYTES

SCHEMA_VERSION = 1


def parse_args(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Our server against the bare gRPC floor, driven by h2load.",
    )
    parser.add_argument("--quick", action="store_true", help="one short round at the headline")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), metavar="DIR")
    parser.add_argument("--rounds", type=int, help="runs per side per point (default 3)")
    parser.add_argument("--duration", type=float, help="seconds measured per run (default 4)")
    parser.add_argument("--warm-up", type=float, help="seconds of warm-up per run (default 1)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of {','.join(BY_KEY)}, or 'none' (default all)",
    )
    parser.add_argument(
        "--concurrency",
        help="comma-separated CONNSxSTREAMS for every chosen scenario (default: the sweep"
        " 1x1,1x8,8x8,16x8,32x8 for update and get, 16x8 for the rest)",
    )
    parser.add_argument("--no-plot", dest="plot", action="store_false", help="skip the PNG")
    parser.add_argument(
        "--scale",
        action=argparse.BooleanOptionalAction,
        help="Update, Get and List at 1,000 vs --scale-files files, with RSS and idle CPU"
        " (default: on in the full run, off with --quick, --scenarios or --concurrency)",
    )
    parser.add_argument("--scale-files", type=int, default=1_000_000, metavar="N")
    parser.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        help="Update and Get on a throwaway durable PostgreSQL cluster (tests/postgres.py) against"
        " the floor and the PostgreSQL floor, and 1 vs 2 replicas (default: on in the full run,"
        " off with --quick, --scenarios or --concurrency)",
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        help="run the PostgreSQL part (implied) on this empty database rather than on a"
        " throwaway cluster: postgresql://user:password@host:port/database",
    )
    parser.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        help="Update and Get on ours with --metrics-listen off against metrics on (default: on"
        " in the full run only, as --postgres)",
    )
    parser.add_argument(
        "--sqlite-floor",
        action=argparse.BooleanOptionalAction,
        help="Update and Get on the floor against the floor plus the least SQLite work"
        " (python -m bench.floor --sqlite; default: on in the full run only, as --postgres)",
    )
    parser.add_argument(
        "--upload-floor",
        action=argparse.BooleanOptionalAction,
        help="Create 1 MiB on the durable-upload floor (python -m bench.floor --durable-uploads)"
        " against ours and against the recorded-upload floor (default: on in the full run only)",
    )
    parser.add_argument(
        "--stall",
        action=argparse.BooleanOptionalAction,
        help="how long Gets (Updates) of a small file stall during two 128 MiB Creates (a 128"
        " MiB PDS completion), ours against the floor (bench/stall.py; default: on, one round"
        " with --quick; off with --scenarios or --concurrency)",
    )
    parser.add_argument(
        "--downloads",
        action=argparse.BooleanOptionalAction,
        help="GETs of a signed link to a 1 MiB and a 64 KiB file at 16 HTTP/1.1 connections,"
        " ours against a bare aiohttp handler answering from memory (default: on in the full"
        " run only, as --postgres)",
    )
    parser.add_argument(
        "--stall-bytes",
        type=int,
        default=MAX_CONTENT_BYTES,
        metavar="N",
        help=f"content of each big call in the stall part (default and most {MAX_CONTENT_BYTES});"
        " less only to try the harness, as its test does",
    )
    args = parser.parse_args(argv)
    if not MIN_STALL_BYTES <= args.stall_bytes <= MAX_CONTENT_BYTES:
        parser.error(f"--stall-bytes wants {MIN_STALL_BYTES}-{MAX_CONTENT_BYTES}")
    full_run = not (args.quick or args.scenarios or args.concurrency)

    scenarios = list(BY_KEY) if not args.scenarios else args.scenarios.split(",")
    if scenarios == ["none"]:
        scenarios = []
    unknown = set(scenarios) - set(BY_KEY)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.concurrency:
        fixed = [_connections_streams(parser, item) for item in args.concurrency.split(",")]
        points = {key: fixed for key in scenarios}
    elif args.quick:
        points = {key: [HEADLINE] for key in scenarios}
    else:
        points = {key: SWEEP if BY_KEY[key].sweep else [BY_KEY[key].headline] for key in scenarios}
    # HTTP/1.1 has no streams: CONNSxSTREAMS over REST is that many connections of one each.
    for key in scenarios:
        if BY_KEY[key].rest:
            points[key] = sorted({(c * s, 1) for c, s in points[key]})
    return Settings(
        rounds=args.rounds or (1 if args.quick else 3),
        duration_s=args.duration or (1.5 if args.quick else 4.0),
        warm_up_s=args.warm_up if args.warm_up is not None else (0.5 if args.quick else 1.0),
        scenarios=scenarios,
        points=points,
        out=args.out,
        plot=args.plot,
        scale=full_run if args.scale is None else args.scale,
        scale_files=args.scale_files,
        quick=args.quick,
        postgres=(full_run or bool(args.postgres_url)) if args.postgres is None else args.postgres,
        sqlite_floor=full_run if args.sqlite_floor is None else args.sqlite_floor,
        metrics=full_run if args.metrics is None else args.metrics,
        upload_floor=full_run if args.upload_floor is None else args.upload_floor,
        postgres_url=args.postgres_url,
        # The stall part has no scenarios or concurrency of its own to choose.
        stall=not (args.scenarios or args.concurrency) if args.stall is None else args.stall,
        stall_bytes=args.stall_bytes,
        downloads=full_run if args.downloads is None else args.downloads,
    )


def _connections_streams(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    connections, _, streams = text.partition("x")
    if not (connections.isdigit() and streams.isdigit()) or "0" in (connections, streams):
        parser.error(f"--concurrency wants CONNSxSTREAMS such as 16x8, not {text!r}")
    return int(connections), int(streams)


@dataclasses.dataclass
class _Clock:
    started: float = dataclasses.field(default_factory=time.monotonic)

    def seconds(self) -> float:
        return round(time.monotonic() - self.started, 1)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    h2load.require_h2load()
    clock = _Clock()
    report: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "rounds": settings.rounds,
            "duration_s": settings.duration_s,
            "warm_up_s": settings.warm_up_s,
            "probes_per_check": PROBES,
            "quick": settings.quick,
            "store": "sqlite (temporary directory)",
        },
        "results": [],
        "in_memory": [],
        "scale": None,
        "sqlite_floor": None,
        "metrics": None,
        "upload_floor": None,
        "postgres": None,
        "stall": None,
        "downloads": None,
    }
    with tempfile.TemporaryDirectory(prefix="files-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if settings.scenarios:
            print("floor vs ours:", file=sys.stderr)
            report["results"], report["in_memory"] = run_main(settings, tmp)
        if settings.scale:
            print(f"scale: 1,000 vs {settings.scale_files:,} files:", file=sys.stderr)
            report["scale"] = run_scale(settings, tmp)
        if settings.sqlite_floor:
            print("floor vs SQLite floor:", file=sys.stderr)
            report["sqlite_floor"] = run_sqlite_floor(settings, tmp)
        if settings.upload_floor:
            print("Create 1 MiB: durable-upload floor vs ours, vs recorded floor:", file=sys.stderr)
            report["upload_floor"] = run_upload_floor(settings, tmp)
        if settings.metrics:
            print("ours, metrics off vs on:", file=sys.stderr)
            report["metrics"] = run_metrics(settings, tmp)
        if settings.postgres:
            print("PostgreSQL: floors vs ours, then 1 vs 2 replicas:", file=sys.stderr)
            report["postgres"] = run_postgres(settings, tmp)
        if settings.stall:
            print("stall: small calls during big uploads, floor vs ours:", file=sys.stderr)
            report["stall"] = run_stall(settings, tmp)
        if settings.downloads:
            print("downloads: bare aiohttp from memory vs ours:", file=sys.stderr)
            report["downloads"] = run_downloads(settings, tmp)
    report["duration_seconds"] = clock.seconds()
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    postgres = report["postgres"] or {}
    points = [
        *report["results"],
        *report["in_memory"],
        *(report["scale"] or {}).get("points", []),
        *(report["sqlite_floor"] or []),
        *(report["metrics"] or []),
        *(report["upload_floor"] or []),
        *(p for key in POSTGRES_TABLES for p in postgres.get(key, [])),
        *(report["stall"] or []),
        *(report["downloads"] or []),
    ]
    failures = sum(p[side]["failures"] for p in points for side in p["sides"])
    report["failures"] = failures
    report["bounds"] = bounds(report)

    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    text = report_text(report)
    (settings.out / "report.md").write_text(f"{machine_text(report)}\n\n{text}\n")
    print(text)
    if settings.plot and report["results"]:
        from bench.plot import plot  # noqa: PLC0415 (matplotlib only when plotting)

        plot(report, settings.out / "bench.png")
    print(
        f"\n{failures} failed calls; {report['duration_seconds']:.0f} s;"
        f" wrote {settings.out / 'results.json'}",
        file=sys.stderr,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
