"""`python -m bench.run`: our server against the floor, scenario by scenario, with h2load.

For every point (a scenario at a number of connections and of streams per connection) the
floor and our server take turns, round after round, so slow drift of a shared machine hits both
alike; each reports its median req/s over the rounds with the spread, p50/p99 latency, and our
rate as a fraction of the floor's.

Every h2load run is bracketed by a few real gRPC calls of the same request (their status must
be OK), checked against h2load's own failure counts and the DATA bytes it received, and followed
by a look at the server's log: any failure makes the exit status 1.

    python -m bench.run               # everything, with the scale runs (~9 minutes on 2 cores)
    python -m bench.run --no-scale    # without 1,000 vs 1,000,000 files (~7 minutes)
    python -m bench.run --quick       # every scenario once, at the headline concurrency (~30 s)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import timestamp_pb2
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from bench import h2load, workload
from bench.processes import ROOT, ServerProcess, running, start_floor, start_ours
from bench.seed import seed

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.protobuf.message import Message

SCHEMA_VERSION = 1
HEADLINE = (16, 8)
SWEEP = [(1, 1), (1, 8), (8, 8), (16, 8), (32, 8)]
PROBES = 5
SEED_FOLDER_ID = "b1gbenchseedfolder"


@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    method: str
    request: Callable[[dict[str, str]], Message]
    """Builds the request from the ids the set-up made on that server."""
    sweep: bool = False


SCENARIOS = [
    Scenario(
        "update",
        "Update name+description",
        "Update",
        lambda ids: workload.update_request(ids["update"]),
        sweep=True,
    ),
    Scenario(
        "update_label",
        "Update labels.stage",
        "Update",
        lambda ids: workload.update_label_request(ids["update_label"]),
    ),
    Scenario("get", "Get", "Get", lambda ids: workload.get_request(ids["get"]), sweep=True),
    Scenario(
        "list",
        "List first page of 100",
        "List",
        lambda ids: workload.list_request(ids.get("list_folder", workload.LIST_FOLDER_ID)),
    ),
    Scenario(
        "create_1k",
        "Create 1 KiB",
        "Create",
        lambda ids: workload.create_request(
            _content(1024), workload.CREATE_FOLDER_ID, "bench-1k.bin"
        ),
    ),
    Scenario(
        "create_1m",
        "Create 1 MiB",
        "Create",
        lambda ids: workload.create_request(
            _content(1024 * 1024), workload.CREATE_FOLDER_ID, "bench-1m.bin"
        ),
    ),
]
BY_KEY = {s.key: s for s in SCENARIOS}


def _content(size: int) -> bytes:
    # Incompressible and not text, like an uploaded binary: MIME detection reads its head.
    return (os.urandom(4096) * (size // 4096 + 1))[:size]


@dataclasses.dataclass(frozen=True)
class Settings:
    rounds: int
    duration_s: float
    warm_up_s: float
    scenarios: list[str]
    points: dict[str, list[tuple[int, int]]]
    out: Path
    plot: bool
    scale: bool
    scale_files: int
    quick: bool


class Target:
    """One server under test, seen by h2load (URL, payload files) and by a grpcio client."""

    def __init__(self, process: ServerProcess, address: str, payload_dir: Path) -> None:
        self.process = process
        self.name = process.name
        self.address = address
        self.payload_dir = payload_dir
        self.channel = grpc.insecure_channel(address)
        self.stub = file_service_pb2_grpc.FileServiceStub(self.channel)
        self.ids: dict[str, str] = {}
        self._payloads: dict[str, tuple[Message, Path]] = {}

    def url(self, method: str) -> str:
        return f"http://{self.address}/{workload.SERVICE}/{method}"

    def payload(self, scenario: Scenario) -> tuple[Message, Path]:
        """The request and the file holding it as one gRPC frame, made once per scenario."""
        if scenario.key not in self._payloads:
            request = scenario.request(self.ids)
            path = self.payload_dir / f"{self.name}-{scenario.key}.grpc"
            path.write_bytes(workload.grpc_frame(request.SerializeToString()))
            self._payloads[scenario.key] = (request, path)
        return self._payloads[scenario.key]

    def call(self, method: str, request: Message) -> Message:
        rpc: Callable[..., Message] = getattr(self.stub, method)
        return rpc(request, timeout=60)

    def close(self) -> None:
        self.channel.close()


def _widest(response: Message) -> Message:
    """A copy with every Timestamp at nine-digit nanos: the longest the same answer can get."""
    widest = type(response)()
    widest.CopyFrom(response)

    def widen(message: Message) -> None:
        if isinstance(message, timestamp_pb2.Timestamp):
            message.nanos = 999_999_999
            return
        for field, value in message.ListFields():
            if field.message_type is None or field.message_type.GetOptions().map_entry:
                continue
            for item in value if field.is_repeated else [value]:
                widen(item)

    widen(widest)
    return widest


def probe(target: Target, scenario: Scenario) -> dict[str, Any]:
    """A few real gRPC calls of the benchmark's request; each must end with status OK.

    Also returns the response frames seen, exactly, and widened to their longest form.
    """
    request, _ = target.payload(scenario)
    errors: list[str] = []
    frames: set[bytes] = set()
    widest = 0
    for _ in range(PROBES):
        try:
            response = target.call(scenario.method, request)
        except grpc.RpcError as e:
            errors.append(f"{e.code().name}: {e.details()}")
            continue
        frames.add(workload.grpc_frame(response.SerializeToString()))
        widest = max(widest, len(workload.grpc_frame(_widest(response).SerializeToString())))
    return {"ok": PROBES - len(errors), "errors": errors, "frames": frames, "widest": widest}


def _max_frame_bytes(before: dict[str, Any], after: dict[str, Any]) -> int:
    """The longest a successful response can be: exact when every probe got the same bytes
    (Get, List, the floor), else with every timestamp at its longest (Update, Create)."""
    frames = before["frames"] | after["frames"]
    if len(frames) == 1:
        return len(next(iter(frames)))
    return int(max(before["widest"], after["widest"]))


def measure(
    target: Target, scenario: Scenario, connections: int, streams: int, settings: Settings
) -> dict[str, Any]:
    """One h2load run against one server, with its checks."""
    _, payload = target.payload(scenario)
    url = target.url(scenario.method)
    mark = target.process.log_mark()
    before = probe(target, scenario)
    if settings.warm_up_s > 0:
        h2load.run(
            url,
            payload,
            connections=connections,
            streams=streams,
            duration_s=settings.warm_up_s,
        )
    log_file = target.payload_dir / "h2load.log"
    cpu_before = target.process.cpu_seconds()
    started = time.monotonic()
    result = h2load.run(
        url,
        payload,
        connections=connections,
        streams=streams,
        duration_s=settings.duration_s,
        log_file=log_file,
    )
    elapsed = time.monotonic() - started
    cpu = target.process.cpu_seconds() - cpu_before
    after = probe(target, scenario)
    log_errors = target.process.errors_since(mark)
    max_frame = _max_frame_bytes(before, after)
    probe_failures = 2 * PROBES - before["ok"] - after["ok"]
    return {
        "rps": result.rps,
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
        "probe_errors": before["errors"] + after["errors"],
        "log_errors": log_errors[:20],
        # A run in which nothing completed measured nothing: count it as a failure.
        "failures": result.h2load_failures + probe_failures + len(log_errors) + (result.done == 0),
        "server_cpu_percent": round(100 * cpu / elapsed, 1) if elapsed else 0.0,
        "server_rss_mib": round(target.process.rss_bytes() / 2**20, 1),
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
    targets: list[Target], scenario: Scenario, connections: int, streams: int, settings: Settings
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
        "headline": (connections, streams) == HEADLINE,
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


def set_up_ours(target: Target) -> None:
    """The files the scenarios read and update, and a folder with more than a page of files."""
    for key in ("update", "update_label", "get"):
        created = target.call("Create", workload.create_request())
        target.ids[key] = created.id  # type: ignore[attr-defined]
    for number in range(workload.LIST_PAGE_SIZE + 20):
        target.call(
            "Create", workload.create_request(folder_id=workload.LIST_FOLDER_ID, name=f"{number}")
        )


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
    dirty = git("status", "--porcelain", "--", "server", "generated", "protos")
    return f"{head} with uncommitted changes to the server" if head and dirty else head


def run_main(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    store = f"sqlite:///{tmp / 'bench.db'}"
    floor, ours = start_floor(), start_ours(store)
    results = []
    with running(floor, ours) as (floor_address, ours_address):
        targets = [Target(floor, floor_address, tmp), Target(ours, ours_address, tmp)]
        try:
            set_up_ours(targets[1])
            targets[0].ids = dict(targets[1].ids)
            for key in settings.scenarios:
                scenario = BY_KEY[key]
                for connections, streams in settings.points[key]:
                    point = compare(targets, scenario, connections, streams, settings)
                    results.append(point)
                    _progress(point)
        finally:
            for target in targets:
                target.close()
    return results


def run_scale(settings: Settings, tmp: Path) -> dict[str, Any]:
    """Update, Get and the first List page at 1,000 files and at `scale_files` files."""
    sizes = [1000, settings.scale_files]
    seeding: dict[str, float] = {}
    urls = {}
    for size in sizes:
        path = tmp / f"scale-{size}.db"
        seeding[str(size)] = round(seed(path, size, SEED_FOLDER_ID), 1)
        urls[size] = f"sqlite:///{path}"
    processes = [start_ours(urls[size], name=f"{size:,} files") for size in sizes]
    points, rss = [], {}
    with running(*processes) as addresses:
        targets = [Target(p, a, tmp) for p, a in zip(processes, addresses, strict=True)]
        try:
            rss_start = {t.name: t.process.rss_bytes() for t in targets}
            for target in targets:
                page = target.call("List", workload.list_request(SEED_FOLDER_ID))
                file_id = page.files[0].id  # type: ignore[attr-defined]
                target.ids = {"update": file_id, "get": file_id, "list_folder": SEED_FOLDER_ID}
            for key in ("update", "get", "list"):
                point = compare(targets, BY_KEY[key], *HEADLINE, settings)
                points.append(point)
                _progress(point)
            for target in targets:
                rss[target.name] = {
                    "start_mib": round(rss_start[target.name] / 2**20, 1),
                    "after_load_mib": round(target.process.rss_bytes() / 2**20, 1),
                }
        finally:
            for target in targets:
                target.close()
    return {
        "sizes": sizes,
        "seed_seconds": seeding,
        "points": points,
        "rss": rss,
        "idle": idle_cpu([urls[size] for size in sizes], sizes),
    }


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


def _progress(point: dict[str, Any]) -> None:
    base, other = point["sides"]
    print(
        f"  {point['title']:<26} {point['connections']:>3}x{point['streams']:<2}"
        f" {base} {point[base]['rps_median']:8.0f} req/s, {other} {point[other]['rps_median']:8.0f}"
        f" req/s, ratio {point['ratio']:.2f}",
        file=sys.stderr,
        flush=True,
    )


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
    parts = [table(report["results"])] if report["results"] else []
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
    return "\n\n".join(parts)


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
    args = parser.parse_args(argv)

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
        points = {key: SWEEP if BY_KEY[key].sweep else [HEADLINE] for key in scenarios}
    return Settings(
        rounds=args.rounds or (1 if args.quick else 3),
        duration_s=args.duration or (1.5 if args.quick else 4.0),
        warm_up_s=args.warm_up if args.warm_up is not None else (0.5 if args.quick else 1.0),
        scenarios=scenarios,
        points=points,
        out=args.out,
        plot=args.plot,
        scale=(
            args.scale
            if args.scale is not None
            else not (args.quick or args.scenarios or args.concurrency)
        ),
        scale_files=args.scale_files,
        quick=args.quick,
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
        "scale": None,
    }
    with tempfile.TemporaryDirectory(prefix="files-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if settings.scenarios:
            print("floor vs ours:", file=sys.stderr)
            report["results"] = run_main(settings, tmp)
        if settings.scale:
            print(f"scale: 1,000 vs {settings.scale_files:,} files:", file=sys.stderr)
            report["scale"] = run_scale(settings, tmp)
    report["duration_seconds"] = clock.seconds()
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    points = report["results"] + (report["scale"] or {}).get("points", [])
    failures = sum(p[side]["failures"] for p in points for side in p["sides"])
    report["failures"] = failures

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
