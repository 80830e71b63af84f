"""`python -m bench.run`: our server against the floor, scenario by scenario, with h2load.

For every point (a scenario at a number of connections and of streams per connection) the
floor and our server take turns, round after round, so slow drift of a shared machine hits both
alike; each reports its median req/s over the rounds with the spread, p50/p99 latency, and our
rate as a fraction of the floor's.

Every h2load run is bracketed by a few real gRPC calls of the same request (their status must
be OK), checked against h2load's own failure counts and the DATA bytes it received, and followed
by a look at the server's log: any failure makes the exit status 1. REST PATCH runs the same way
over HTTP/1.1 against a bare aiohttp handler (bench/http_floor.py); `--postgres` adds Update and
Get on a throwaway PostgreSQL cluster, against the floor and with one replica against two;
`--sqlite-floor` runs Update and Get on the floor against the SQLite floor (bench/floor.py
--sqlite), the floor plus the least SQLite work a durable server does.

    python -m bench.run               # everything, with the scale runs (~13 minutes on 2 cores)
    python -m bench.run --no-scale    # without 1,000 vs 1,000,000 files (~7 minutes)
    python -m bench.run --quick       # every scenario once, at the headline concurrency (~30 s)
    python -m bench.run --scenarios none --no-scale --postgres   # the PostgreSQL part alone
    python -m bench.run --scenarios none --no-scale --postgres-url URL   # ... on your database
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from google.protobuf import timestamp_pb2
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from bench import h2load, workload
from bench.processes import (
    ROOT,
    ServerProcess,
    running,
    start_floor,
    start_http_floor,
    start_ours,
)
from bench.seed import seed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from google.protobuf.message import Message

    from bench.workload import RestCall

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
    rest: Callable[[dict[str, str]], RestCall] | None = None
    """Over REST instead: the HTTP request, against the bare aiohttp floor."""

    @property
    def headline(self) -> tuple[int, int]:
        # HTTP/1.1 carries one request at a time per connection: the same 128 in flight.
        return (HEADLINE[0] * HEADLINE[1], 1) if self.rest else HEADLINE


SCENARIOS = [
    Scenario(
        "update",
        "Update name+description",
        "Update",
        lambda ids: workload.update_request(ids["update"]),
        sweep=True,
    ),
    Scenario(
        "rest_update",
        "REST PATCH name+description (floor: bare aiohttp)",
        "Update",
        lambda ids: workload.update_request(ids["update"]),
        rest=lambda ids: workload.rest_update(ids["update"]),
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
    postgres: bool
    sqlite_floor: bool
    postgres_url: str | None = None


@dataclasses.dataclass(frozen=True)
class Load:
    """What h2load sends one server in a scenario."""

    url: str
    payload: Path
    headers: tuple[str, ...] = h2load.GRPC_HEADERS
    http1: bool = False


class Endpoint(Protocol):
    """One server process as the driver sees it: what to load it with, how to probe it."""

    name: str
    process: ServerProcess
    payload_dir: Path
    ids: dict[str, str]

    def load(self, scenario: Scenario) -> Load: ...

    def probe(self, scenario: Scenario) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Side(Protocol):
    """What one column of a table measures: one server, or replicas loaded side by side."""

    @property
    def name(self) -> str: ...

    @property
    def members(self) -> list[Endpoint]: ...


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

    @property
    def members(self) -> list[Endpoint]:
        return [self]

    def url(self, method: str) -> str:
        return f"http://{self.address}/{workload.SERVICE}/{method}"

    def load(self, scenario: Scenario) -> Load:
        return Load(self.url(scenario.method), self.payload(scenario)[1])

    def probe(self, scenario: Scenario) -> dict[str, Any]:
        """A few real gRPC calls of the benchmark's request; each must end with status OK.

        Also returns the response frames seen, exactly, and widened to their longest form.
        """
        request, _ = self.payload(scenario)
        errors: list[str] = []
        frames: set[bytes] = set()
        widest = 0
        for _ in range(PROBES):
            try:
                response = self.call(scenario.method, request)
            except grpc.RpcError as e:
                errors.append(f"{e.code().name}: {e.details()}")
                continue
            frames.add(workload.grpc_frame(response.SerializeToString()))
            widest = max(widest, len(workload.grpc_frame(_widest(response).SerializeToString())))
        return {"ok": PROBES - len(errors), "errors": errors, "frames": frames, "widest": widest}

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


class RestTarget:
    """One server's HTTP listener, seen by h2load over HTTP/1.1 and by http.client."""

    def __init__(
        self, process: ServerProcess, address: str, payload_dir: Path, name: str = ""
    ) -> None:
        self.process = process
        self.name = name or process.name
        self.address = address
        self.payload_dir = payload_dir
        self.ids: dict[str, str] = {}
        self._calls: dict[str, tuple[RestCall, Path]] = {}

    @property
    def members(self) -> list[Endpoint]:
        return [self]

    def _call(self, scenario: Scenario) -> tuple[RestCall, Path]:
        if scenario.key not in self._calls:
            assert scenario.rest is not None
            call = scenario.rest(self.ids)
            path = self.payload_dir / f"{self.name}-{scenario.key}.json"
            path.write_bytes(call.body)
            self._calls[scenario.key] = (call, path)
        return self._calls[scenario.key]

    def load(self, scenario: Scenario) -> Load:
        call, path = self._call(scenario)
        return Load(
            f"http://{self.address}{call.path}",
            path,
            (f":method: {call.method}", "content-type: application/json"),
            http1=True,
        )

    def probe(self, scenario: Scenario) -> dict[str, Any]:
        """A few real requests of the benchmark's call on one connection; each must be 200.

        Also returns the bodies seen, and the longest each could be (see `_widest_json`).
        """
        call, _ = self._call(scenario)
        errors: list[str] = []
        bodies: set[bytes] = set()
        widest = 0
        connection = http.client.HTTPConnection(self.address, timeout=60)
        try:
            for _ in range(PROBES):
                try:
                    connection.request(
                        call.method, call.path, call.body, {"content-type": "application/json"}
                    )
                    response = connection.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    connection.close()  # the next request reconnects
                    continue
                if response.status != 200:
                    errors.append(f"HTTP {response.status}: {body[:200]!r}")
                    continue
                bodies.add(body)
                widest = max(widest, _widest_json(body))
        finally:
            connection.close()
        return {"ok": PROBES - len(errors), "errors": errors, "frames": bodies, "widest": widest}

    def close(self) -> None:
        pass


class Replicas:
    """Several replicas as one side: h2load runs against each at once, with the connections
    split between them, and their counts and rates add up."""

    def __init__(self, name: str, members: list[Target]) -> None:
        self.name = name
        self.members: list[Endpoint] = list(members)


# An RFC 3339 timestamp in proto3 JSON; its fraction has 0, 3, 6 or 9 digits.
_JSON_TIMESTAMP = re.compile(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')


def _widest_json(body: bytes) -> int:
    """The longest the same JSON answer can get: every timestamp with nine-digit nanos."""
    return len(body) + sum(10 - len(m[1] or b"") for m in _JSON_TIMESTAMP.finditer(body))


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
    loads = [(member.load(scenario), share) for member, share in loaded]
    marks = [m.process.log_mark() for m in members]
    before = [m.probe(scenario) for m in members]
    if settings.warm_up_s > 0:
        _h2load(loads, streams, settings.warm_up_s)
    log_files = [m.payload_dir / f"h2load-{i}.log" for i, m in enumerate(members)]
    cpu_before = sum(m.process.cpu_seconds() for m in members)
    started = time.monotonic()
    runs = _h2load(loads, streams, settings.duration_s, log_files)
    elapsed = time.monotonic() - started
    cpu = sum(m.process.cpu_seconds() for m in members) - cpu_before
    after = [m.probe(scenario) for m in members]
    log_errors = [
        line
        for m, mark in zip(members, marks, strict=True)
        for line in m.process.errors_since(mark)
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
        "server_rss_mib": round(sum(m.process.rss_bytes() for m in members) / 2**20, 1),
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
    rest = any(BY_KEY[key].rest for key in settings.scenarios)
    floor, ours = start_floor(), start_ours(store)
    processes = [floor, ours, *([start_http_floor()] if rest else [])]
    results = []
    with running(*processes) as addresses:
        targets = [Target(floor, addresses[0], tmp), Target(ours, addresses[1], tmp)]
        # REST: the bare aiohttp handler against our HTTP listener, named as the gRPC sides are.
        rest_targets = (
            [
                RestTarget(processes[2], addresses[2], tmp, name="floor"),
                RestTarget(ours, ours.http_address, tmp),
            ]
            if rest
            else []
        )
        try:
            set_up_ours(targets[1])
            others: list[Target | RestTarget] = [targets[0], *rest_targets]
            for other in others:
                other.ids = dict(targets[1].ids)
            for key in settings.scenarios:
                scenario = BY_KEY[key]
                sides = rest_targets if scenario.rest else targets
                for connections, streams in settings.points[key]:
                    point = compare(sides, scenario, connections, streams, settings)
                    results.append(point)
                    _progress(point)
        finally:
            for target in targets:
                target.close()
    return results


@contextlib.contextmanager
def _targets(processes: list[ServerProcess], payload_dir: Path) -> Iterator[list[Target]]:
    """The processes serving, as targets; all stopped, their channels closed, on the way out."""
    with running(*processes) as addresses:
        targets = [Target(p, a, payload_dir) for p, a in zip(processes, addresses, strict=True)]
        try:
            yield targets
        finally:
            for target in targets:
                target.close()


def _at_headline(
    sides: Sequence[Side], keys: Sequence[str], settings: Settings
) -> list[dict[str, Any]]:
    """One point per scenario at the headline concurrency, each reported as it is done."""
    points = []
    for key in keys:
        point = compare(sides, BY_KEY[key], *HEADLINE, settings)
        points.append(point)
        _progress(point)
    return points


def run_postgres(settings: Settings, tmp: Path) -> dict[str, Any]:
    """Update and Get on PostgreSQL: against the floor, and one replica against two on the same
    database (connections split between them). On --postgres-url's database if given, else on a
    throwaway cluster."""
    work = tmp / "postgres"
    work.mkdir()
    if settings.postgres_url:
        points = _postgres_points(settings, work, settings.postgres_url)
        return {"cluster": "given by --postgres-url", **points}
    # The tests' cluster (initdb and pg_ctl as the postgres user, fsync off): a bench measures
    # the server's work, not this VM's disk.
    from tests.postgres import ClusterError, start_cluster  # noqa: PLC0415 (only with --postgres)

    try:
        cluster = start_cluster()
    except ClusterError as e:
        raise SystemExit(f"--postgres: {e}") from None
    try:
        points = _postgres_points(settings, work, cluster.url(cluster.database()))
    finally:
        cluster.destroy()
    cluster_text = "throwaway, in /tmp; fsync=off, synchronous_commit=off, full_page_writes=off"
    return {"cluster": cluster_text, **points}


def _postgres_points(settings: Settings, work: Path, url: str) -> dict[str, Any]:
    processes = [start_floor(), start_ours(url), start_ours(url, name="replica 2")]
    with _targets(processes, work) as targets:
        set_up_ours(targets[1])
        for other in (targets[0], targets[2]):
            other.ids = dict(targets[1].ids)
        floor_points = _at_headline(targets[:2], ("update", "get"), settings)
        one, two = Replicas("1 replica", targets[1:2]), Replicas("2 replicas", targets[1:])
        replica_points = _at_headline([one, two], ("update", "get"), settings)
    return {
        "server_version": asyncio.run(_server_version(url)),
        "floor_points": floor_points,
        "replica_points": replica_points,
    }


async def _server_version(url: str) -> str:
    import asyncpg  # noqa: PLC0415 (only with --postgres)

    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def run_sqlite_floor(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Update and Get on the floor against the SQLite floor: what SQLite alone costs here."""
    processes = [
        start_floor(),
        start_floor("--sqlite", str(tmp / "sqlite-floor.db"), name="SQLite floor"),
    ]
    with _targets(processes, tmp) as targets:
        for target in targets:
            target.ids = {"update": "f", "get": "f"}  # floors answer any id
        return _at_headline(targets, ("update", "get"), settings)


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
    rss = {}
    with _targets(processes, tmp) as targets:
        rss_start = {t.name: t.process.rss_bytes() for t in targets}
        for target in targets:
            page = target.call("List", workload.list_request(SEED_FOLDER_ID))
            file_id = page.files[0].id  # type: ignore[attr-defined]
            target.ids = {"update": file_id, "get": file_id, "list_folder": SEED_FOLDER_ID}
        points = _at_headline(targets, ("update", "get", "list"), settings)
        for target in targets:
            rss[target.name] = {
                "start_mib": round(rss_start[target.name] / 2**20, 1),
                "after_load_mib": round(target.process.rss_bytes() / 2**20, 1),
            }
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
    grpc_points = [p for p in report["results"] if not BY_KEY[p["scenario"]].rest]
    rest_points = [p for p in report["results"] if BY_KEY[p["scenario"]].rest]
    parts = [table(points) for points in (grpc_points, rest_points) if points]
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
    postgres = report.get("postgres")
    if postgres:
        parts.append(
            f"PostgreSQL {postgres['server_version']} ({postgres['cluster']}):\n\n"
            f"{table(postgres['floor_points'])}\n\n{table(postgres['replica_points'])}"
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
    parser.add_argument(
        "--postgres",
        action=argparse.BooleanOptionalAction,
        help="Update and Get on a throwaway PostgreSQL 15 cluster (tests/postgres.py) against the"
        " floor, and 1 vs 2 replicas (default: on in the full run, off with --quick, --scenarios"
        " or --concurrency)",
    )
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        help="run the PostgreSQL part (implied) on this empty database rather than on a"
        " throwaway cluster: postgresql://user:password@host:port/database",
    )
    parser.add_argument(
        "--sqlite-floor",
        action=argparse.BooleanOptionalAction,
        help="Update and Get on the floor against the floor plus the least SQLite work"
        " (python -m bench.floor --sqlite; default: on in the full run only, as --postgres)",
    )
    args = parser.parse_args(argv)
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
        postgres_url=args.postgres_url,
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
        "sqlite_floor": None,
        "postgres": None,
    }
    with tempfile.TemporaryDirectory(prefix="files-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if settings.scenarios:
            print("floor vs ours:", file=sys.stderr)
            report["results"] = run_main(settings, tmp)
        if settings.scale:
            print(f"scale: 1,000 vs {settings.scale_files:,} files:", file=sys.stderr)
            report["scale"] = run_scale(settings, tmp)
        if settings.sqlite_floor:
            print("floor vs SQLite floor:", file=sys.stderr)
            report["sqlite_floor"] = run_sqlite_floor(settings, tmp)
        if settings.postgres:
            print("PostgreSQL: floor vs ours, then 1 vs 2 replicas:", file=sys.stderr)
            report["postgres"] = run_postgres(settings, tmp)
    report["duration_seconds"] = clock.seconds()
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    postgres = report["postgres"] or {}
    points = [
        *report["results"],
        *(report["scale"] or {}).get("points", []),
        *(report["sqlite_floor"] or []),
        *postgres.get("floor_points", []),
        *postgres.get("replica_points", []),
    ]
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
