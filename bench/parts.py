"""The parts of a run, each a list of compared points: the floor against ours scenario by
scenario (`run_main`), 1,000 against many files (`run_scale`), the floor against the SQLite floor
(`run_sqlite_floor`), ours with metrics off against on (`run_metrics`), PostgreSQL
(`run_postgres`), small calls stalled by big uploads (`run_stall`, measured by
bench/stall.py), and downloads against the bare aiohttp download floor (`run_downloads`).
Each starts its servers, sets them up, measures, reports every point on stderr as it is done,
and stops them.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from bench import stall, workload
from bench.bounds import IN_MEMORY, RECORDED_FLOOR, UPLOAD_FLOOR
from bench.measurement import compare, idle_cpu
from bench.processes import running, start_floor, start_http_floor, start_ours
from bench.scenarios import BY_KEY, DOWNLOAD_CONNECTIONS, DOWNLOADS, EMPTY_ANSWER, HEADLINE
from bench.seed import seed
from bench.targets import (
    Replicas,
    RestTarget,
    Target,
    make_files,
    own_files,
    serving_targets,
    set_up_ours,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from bench.scenarios import Settings
    from bench.targets import Side

SEED_FOLDER_ID = "b1gbenchseedfolder"


def run_main(settings: Settings, tmp: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The scenarios on the floor against ours; then, with List among them, List on the floor
    against ours on `memory:`, whose store encodes every File it lists: what List from stored
    File bytes (`files_api.store.wire`) saves ours on SQLite."""
    store = f"sqlite:///{tmp / 'bench.db'}"
    rest = any(BY_KEY[key].rest for key in settings.scenarios)
    list_in_memory = "list" in settings.scenarios
    processes = [start_floor(), start_ours(store)]
    if list_in_memory:
        processes.append(start_ours("memory:", name=IN_MEMORY))
    if rest:
        processes.append(start_http_floor())
    results, in_memory_points = [], []
    with running(*processes) as addresses:
        grpc_count = 3 if list_in_memory else 2
        targets = [
            Target(p, a, tmp) for p, a in zip(processes[:grpc_count], addresses, strict=False)
        ]
        # REST: the bare aiohttp handler against our HTTP listener, named as the gRPC sides are.
        rest_targets = (
            [
                RestTarget(processes[-1], addresses[-1], tmp, name="floor"),
                RestTarget(processes[1], processes[1].http_address, tmp),
            ]
            if rest
            else []
        )
        try:
            for target in targets[1:]:
                set_up_ours(target)
            others: list[Target | RestTarget] = [targets[0], *rest_targets]
            for other in others:
                other.ids = dict(targets[1].ids)
            for key in settings.scenarios:
                scenario = BY_KEY[key]
                sides = rest_targets if scenario.rest else targets[:2]
                for connections, streams in settings.points[key]:
                    point = compare(sides, scenario, connections, streams, settings)
                    results.append(point)
                    _progress(point)
            if list_in_memory:
                in_memory_points = _at_headline([targets[0], targets[2]], ("list",), settings)
        finally:
            for target in targets:
                target.close()
    return results, in_memory_points


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
    with serving_targets(processes, tmp) as targets:
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


def run_sqlite_floor(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Update and Get on the floor against the SQLite floor: what SQLite alone costs here."""
    processes = [
        start_floor(),
        start_floor("--sqlite", str(tmp / "sqlite-floor.db"), name="SQLite floor"),
    ]
    with serving_targets(processes, tmp) as targets:
        for target in targets:
            target.ids = {"update": "f", "get": "f"}  # floors answer any id
        return _at_headline(targets, ("update", "get"), settings)


def run_upload_floor(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Create 1 MiB: the durable-upload floor against ours, then against the recorded-upload
    floor (that, plus the SHA-1 and a row committed for each upload: what bounds the target,
    bench/bounds.py). Each side keeps every file it was sent, as a store does."""
    durable = start_floor("--durable-uploads", str(tmp / "upload-floor"), name=UPLOAD_FLOOR)
    recorded = start_floor("--recorded-uploads", str(tmp / "recorded"), name=RECORDED_FLOOR)
    ours = start_ours(f"sqlite:///{tmp / 'upload.db'}")
    with serving_targets([durable, ours, recorded], tmp) as targets:
        set_up_ours(targets[1])
        for target in (targets[0], targets[2]):
            target.ids = dict(targets[1].ids)
        return [
            *_at_headline(targets[:2], ("create_1m",), settings),
            *_at_headline([targets[0], targets[2]], ("create_1m",), settings),
        ]


def run_metrics(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Update and Get on ours with `--metrics-listen off` against ours with metrics on (the
    default): what the interceptor, the middleware and the store's timings cost."""
    processes = [
        start_ours(f"sqlite:///{tmp / 'metrics-off.db'}", "--metrics-listen", "off", name="off"),
        start_ours(f"sqlite:///{tmp / 'metrics-on.db'}", name="metrics on"),
    ]
    with serving_targets(processes, tmp) as targets:
        for target in targets:
            set_up_ours(target)
        return _at_headline(targets, ("update", "get"), settings)


def run_postgres(settings: Settings, tmp: Path) -> dict[str, Any]:
    """Update and Get on PostgreSQL: ours against the floor and against the PostgreSQL floor
    (bench/floor.py --postgres), all clients on one file and each connection on a file of its
    own; then one replica against two on the same database (connections split between them),
    both ways. On --postgres-url's database if given, else on a throwaway durable cluster."""
    work = tmp / "postgres"
    work.mkdir()
    if settings.postgres_url:
        points = _postgres_points(settings, work, settings.postgres_url)
        return {"cluster": "given by --postgres-url", **points}
    # The tests' cluster (initdb and pg_ctl as the postgres user), but with PostgreSQL's durable
    # defaults, as its users run it: a write is answered once its commit is on the disk.
    from tests.postgres import ClusterError, start_cluster  # noqa: PLC0415 (only with --postgres)

    try:
        cluster = start_cluster(durable=True)
    except ClusterError as e:
        raise SystemExit(f"--postgres: {e}") from None
    try:
        points = _postgres_points(settings, work, cluster.url(cluster.database()))
    finally:
        cluster.destroy()
    cluster_text = (
        "throwaway, in /tmp, durable: fsync, synchronous_commit and full_page_writes on"
        " (the defaults)"
    )
    return {"cluster": cluster_text, **points}


def _postgres_points(settings: Settings, work: Path, url: str) -> dict[str, Any]:
    processes = [
        start_floor(),
        start_floor("--postgres", url, name="PostgreSQL floor"),
        start_ours(url),
        start_ours(url, name="replica 2"),
        start_ours("memory:", name=IN_MEMORY),
    ]
    keys = ("update", "get")
    with serving_targets(processes, work) as targets:
        floor, pg_floor, ours, replica, in_memory = targets
        set_up_ours(ours)
        set_up_ours(in_memory)
        for other in (floor, pg_floor, replica):
            other.ids = dict(ours.ids)  # the PostgreSQL floor acts on ours' files
        # A file per connection: the same files for every side, ours and the floor's alike.
        files = make_files(ours, HEADLINE[0])
        own = {
            "floor": own_files("PostgreSQL floor, own files", [pg_floor], files),
            "ours": own_files("ours, own files", [ours], files),
            "1 replica": own_files("1 replica, own files", [ours], files),
            "2 replicas": own_files("2 replicas, own files", [ours, replica], files),
        }
        try:
            floor_points = _at_headline([floor, ours], keys, settings)
            postgres_floor_points = _at_headline([pg_floor, ours], keys, settings)
            own_files_points = _at_headline([own["floor"], own["ours"]], keys, settings)
            one, two = Replicas("1 replica", [ours]), Replicas("2 replicas", [ours, replica])
            replica_points = _at_headline([one, two], keys, settings)
            own_replica_points = _at_headline([own["1 replica"], own["2 replicas"]], keys, settings)
            # Get with no database at all: what bounds Get against the PostgreSQL floor.
            memory_points = _at_headline([floor, in_memory], ("get",), settings)
        finally:
            for side in own.values():
                side.close()
    return {
        "server_version": asyncio.run(_server_version(url)),
        "floor_points": floor_points,
        "postgres_floor_points": postgres_floor_points,
        "own_files_points": own_files_points,
        "replica_points": replica_points,
        "own_files_replica_points": own_replica_points,
        "memory_points": memory_points,
    }


POSTGRES_TABLES = (
    "floor_points",
    "postgres_floor_points",
    "own_files_points",
    "replica_points",
    "own_files_replica_points",
    "memory_points",
)
"""The PostgreSQL part's tables, in the order the report shows them."""


async def _server_version(url: str) -> str:
    import asyncpg  # noqa: PLC0415 (only with --postgres)

    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def run_stall(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """Each stall case on the floor, ours on SQLite and ours on memory:, fresh every round."""
    work = tmp / "stall"
    work.mkdir()
    # Not counted: the first round of a run, always the floor's, stalled its Gets 1.5-1.6 s in
    # three runs of four, against 0.2-0.7 s in the rounds after it.
    stall.measure(stall.CASES[0], "floor", settings.stall_bytes, work)
    points = []
    for case in stall.CASES:
        point = stall.compare(case, settings.stall_bytes, settings.rounds, work)
        points.append(point)
        worst = ", ".join(
            f"{side} {point[side]['worst_ms']:.0f}"
            + (f" ({round(point['worst_over_floor_ms'][side]):+d})" if side != "floor" else "")
            for side in point["sides"]
        )
        print(f"  {point['title']}: worst ms {worst}", file=sys.stderr, flush=True)
    return points


def run_downloads(settings: Settings, tmp: Path) -> list[dict[str, Any]]:
    """GETs of a signed link to a 1 MiB and a 64 KiB file (the default expiration policy, so a
    download is activity) over HTTP/1.1 at 16 connections: the bare aiohttp handler answering
    the same bytes from memory against ours on SQLite. Then what bounds them: the same against
    ours on `memory:`, and `/healthz` on both (bench/bounds.py)."""
    work = tmp / "downloads"
    work.mkdir()
    sizes = workload.DOWNLOAD_SIZES
    floor = start_http_floor("--downloads", ",".join(str(size) for size in sizes.values()))
    ours = start_ours(f"sqlite:///{work / 'downloads.db'}")
    in_memory = start_ours("memory:", name=IN_MEMORY)
    points = []
    with running(floor, ours, in_memory) as addresses:
        floor_side = RestTarget(floor, addresses[0], work, name="floor")
        sides = [
            RestTarget(ours, ours.http_address, work),
            RestTarget(in_memory, in_memory.http_address, work),
        ]
        grpc_sides = [Target(ours, addresses[1], work), Target(in_memory, addresses[2], work)]
        try:
            for key, size in sizes.items():
                floor_side.ids[key] = f"/files/v1/files/floor/content?size={size}"
                for side, grpc_side in zip(sides, grpc_sides, strict=True):
                    side.ids[key] = _download_path(grpc_side, key, size)
            measured = [
                *((scenario, sides[0]) for scenario in DOWNLOADS),
                *((scenario, sides[1]) for scenario in DOWNLOADS),
                (EMPTY_ANSWER, sides[0]),
            ]
            for scenario, side in measured:
                point = compare([floor_side, side], scenario, DOWNLOAD_CONNECTIONS, 1, settings)
                points.append(point)
                _progress(point)
        finally:
            for grpc_side in grpc_sides:
                grpc_side.close()
    return points


def _download_path(target: Target, key: str, size: int) -> str:
    """The path and query of a signed link to a new file of `size` bytes on `target`."""
    content = workload.download_content(size)
    request = workload.create_request(content, workload.CREATE_FOLDER_ID, f"{key}.bin")
    created = target.call("Create", request)
    url = target.call("GetUrl", workload.get_url_request(created.id)).url  # type: ignore[attr-defined]
    return str(url[url.index("/files/") :])


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


def _progress(point: dict[str, Any]) -> None:
    base, other = point["sides"]
    print(
        f"  {point['title']:<26} {point['connections']:>3}x{point['streams']:<2}"
        f" {base} {point[base]['rps_median']:8.0f} req/s, {other} {point[other]['rps_median']:8.0f}"
        f" req/s, ratio {point['ratio']:.2f}",
        file=sys.stderr,
        flush=True,
    )
