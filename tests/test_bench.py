"""The benchmark harness itself (bench/): a short run makes a well-formed report, seeding makes
rows the store reads back. Nothing here asserts on speed; `make bench` reports, a person reads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from bench import h2load, workload
from bench.floor import (
    POSTGRES_FLOOR_FILE_ID,
    RECORDS,
    FloorServicer,
    GroupCommit,
    PostgresFloorServicer,
    RecordedUploadFloorServicer,
    SqliteFloorServicer,
)
from bench.h2load import INSTALL_HINT
from bench.measurement import measure, split_connections
from bench.processes import ServerProcess, running, start_floor
from bench.run import parse_args
from bench.scenarios import BY_KEY, HEADLINE
from bench.seed import migrate, seed
from bench.stall import MIN_STALL_BYTES, file_problems
from bench.targets import Replicas, Target
from files_api.domain.limits import MAX_CONTENT_BYTES
from files_api.store.sqlite import SqliteStore
from tests.support import ROOT

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
    )


def require_h2load() -> None:
    if shutil.which("h2load") is None:
        pytest.fail(INSTALL_HINT)


def short_run(out: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`bench.run ARGS` briefly (one round of a second, no warm-up, no plot) and its report."""
    require_h2load()
    brief = ("--rounds", "1", "--duration", "1", "--warm-up", "0", "--no-plot", "--out", str(out))
    result = bench(*args, *brief)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((out / "results.json").read_text())


def test_a_short_run_reports_every_side_with_no_failed_call(tmp_path: Path) -> None:
    result, report = short_run(
        tmp_path, "--scenarios", "update,get,rest_update", "--concurrency", "2x4"
    )

    assert report["schema"] == 1
    assert report["failures"] == 0
    assert {"nproc", "cpu_model", "python", "grpcio", "h2load"} <= report["machine"].keys()
    assert [p["scenario"] for p in report["results"]] == ["update", "get", "rest_update"]
    for point in report["results"]:
        # REST goes over HTTP/1.1: the same 8 in flight, as 8 connections of one request each.
        shape = (8, 1) if point["scenario"] == "rest_update" else (2, 4)
        assert (point["connections"], point["streams"], point["concurrency"]) == (*shape, 8)
        assert point["ratio"] > 0
        for side in ("floor", "ours"):
            summary = point[side]
            assert summary["rps_median"] > 0
            assert 0 < summary["p50_ms"] <= summary["p99_ms"]
            assert summary["failures"] == 0
            (run,) = summary["rounds"]
            assert run["done"] > 0
            assert run["failed"] == run["errored"] == run["timeout"] == 0
            assert run["probe_failures"] == 0 and run["log_errors"] == []
            # Every call but a few in flight at the end carried a response message.
            assert run["messages_min"] >= 0.95 * run["done"]
    assert report["in_memory"] == report["bounds"] == []  # List's bound comes with List
    # The table on stdout has a row per point.
    assert "| Update name+description | 2x4 |" in result.stdout
    assert "| Get | 2x4 |" in result.stdout
    assert "| REST PATCH name+description (floor: bare aiohttp) | 8x1 |" in result.stdout


def test_replicas_are_loaded_at_once_and_their_rates_add_up(tmp_path: Path) -> None:
    """The 1-vs-2 replica comparison's arithmetic, on two gRPC floors (no PostgreSQL needed)."""
    require_h2load()
    settings = parse_args(["--rounds", "1", "--duration", "0.5", "--warm-up", "0"])
    floors = [start_floor(), start_floor()]
    with running(*floors) as addresses:
        targets = [Target(f, a, tmp_path) for f, a in zip(floors, addresses, strict=True)]
        for number, target in enumerate(targets):
            target.name = f"floor {number}"  # payload files apart
            target.ids = {"get": "f"}
        try:
            run = measure(Replicas("two", targets), BY_KEY["get"], 3, 2, settings)
        finally:
            for target in targets:
                target.close()
    assert run["failures"] == 0 and run["probe_failures"] == 0
    assert len(run["replica_rps"]) == 2 and all(rps > 0 for rps in run["replica_rps"])
    assert run["rps"] == pytest.approx(sum(run["replica_rps"]))
    assert run["done"] > 0 and run["messages_min"] >= 0.95 * run["done"]
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]


@pytest.mark.parametrize(
    ("connections", "replicas", "shares"),
    [(16, 1, [16]), (16, 2, [8, 8]), (3, 2, [2, 1]), (1, 2, [1, 0])],
)
def test_connections_split_between_replicas(
    connections: int, replicas: int, shares: list[int]
) -> None:
    assert split_connections(connections, replicas) == shares


def test_runs_side_by_side_combine_into_one() -> None:
    def run(rps: float, done: int, failed: int) -> h2load.Run:
        return h2load.Run(rps, done, done - failed, failed, 0, 0, done, 0, 10 * done, {})

    combined = h2load.combine([run(100.5, 400, 1), run(99.5, 398, 0)], {"p50": 1.0})
    assert (combined.rps, combined.done, combined.failed) == (200.0, 798, 1)
    assert combined.data_bytes == 7980 and combined.h2load_failures == 1
    assert combined.latency_ms == {"p50": 1.0}


def test_latency_pools_the_requests_of_several_logs(tmp_path: Path) -> None:
    first, second = tmp_path / "0.log", tmp_path / "1.log"
    first.write_text("1\t200\t1000\n2\t200\t3000\n")
    second.write_text("1\t200\t2000\n2\t-1\t9000\n")
    latency = h2load.latency_from_log(first, second)
    assert (latency["p50"], latency["max"], latency["mean"]) == (2.0, 3.0, 2.0)


@pytest.mark.parametrize(
    ("args", "on"),
    [
        ([], True),
        (["--quick"], False),
        (["--scenarios", "get"], False),
        (["--concurrency", "1x1"], False),
        (
            [
                "--quick",
                "--postgres",
                "--sqlite-floor",
                "--metrics",
                "--upload-floor",
                "--downloads",
            ],
            True,
        ),
        (
            [
                "--no-postgres",
                "--no-sqlite-floor",
                "--no-metrics",
                "--no-upload-floor",
                "--no-downloads",
            ],
            False,
        ),
    ],
)
def test_postgres_and_the_sqlite_floor_are_part_of_the_full_run_only(
    args: list[str], on: bool
) -> None:
    settings = parse_args(args)
    assert settings.postgres is on
    assert settings.sqlite_floor is on
    assert settings.metrics is on
    assert settings.upload_floor is on
    assert settings.downloads is on


def test_uploads_are_measured_against_the_durable_and_the_recorded_upload_floor(
    tmp_path: Path,
) -> None:
    result, report = short_run(tmp_path, "--scenarios", "none", "--no-scale", "--upload-floor")
    assert report["failures"] == 0
    points = report["upload_floor"]
    assert [p["sides"] for p in points] == [
        ["upload floor", "ours"],
        ["upload floor", "recorded floor"],
    ]
    for point in points:
        assert point["scenario"] == "create_1m"
        assert all(point[side]["rounds"][0]["done"] > 0 for side in point["sides"])
    assert "| upload floor req/s | ours req/s |" in result.stdout
    assert "| upload floor req/s | recorded floor req/s |" in result.stdout
    # The bound is the recorded floor's ratio; its cost and the rest add up to ours' gap.
    (bound,) = report["bounds"]
    ours, recorded = points
    assert (bound["ratio"], bound["bound"]) == (ours["ratio"], recorded["ratio"])
    gap = 1 / ours["ours"]["rps_median"] - 1 / ours["upload floor"]["rps_median"]
    assert sum(bound["parts_us"].values()) == pytest.approx(gap * 1e6)
    recording = bound["parts_us"]["recording it (SHA-1, a row)"]
    floors = [1 / recorded[side]["rps_median"] for side in ("recorded floor", "upload floor")]
    assert recording == pytest.approx((floors[0] - floors[1]) * 1e6)
    assert "| target | ours | bound | ours - floor, us per call |" in result.stdout


def test_the_downloads_part_gets_1_mib_and_64_kib_from_both_sides(tmp_path: Path) -> None:
    result, report = short_run(
        tmp_path, "--scenarios", "none", "--no-scale", "--no-stall", "--downloads"
    )
    assert report["failures"] == 0
    points = report["downloads"]
    assert [(p["scenario"], p["sides"][1]) for p in points] == [
        ("download_1m", "ours"),
        ("download_64k", "ours"),
        ("download_1m", "ours, memory:"),
        ("download_64k", "ours, memory:"),
        ("empty_answer", "ours"),
    ]
    sizes = (2**20, 2**16, 2**20, 2**16, len(b'{"status": "ok"}'))
    for point, size in zip(points, sizes, strict=True):
        assert (point["sides"][0], point["connections"]) == ("floor", 16)
        assert point["ratio"] > 0
        for side in point["sides"]:
            (run,) = point[side]["rounds"]
            assert run["max_frame_bytes"] == size  # the probes got the whole answer
            assert run["messages_min"] >= 0.95 * run["done"] > 0
    assert "| Download 1 MiB (floor: bare aiohttp from memory) | 16x1 |" in result.stdout
    assert "| floor req/s | ours, memory: req/s |" in result.stdout
    # The bound is ours with no storage work; the gap to the floor splits into its parts.
    bound_1m, bound = report["bounds"]
    assert (bound_1m["ratio"], bound_1m["bound"]) == (points[0]["ratio"], points[2]["ratio"])
    ours, memory, empty = points[1], points[3], points[4]
    assert (bound["ratio"], bound["bound"]) == (ours["ratio"], memory["ratio"])
    gap = 1 / ours["ours"]["rps_median"] - 1 / ours["floor"]["rps_median"]
    handling = 1 / memory["ours, memory:"]["rps_median"] - 1 / memory["floor"]["rps_median"]
    fixed = 1 / empty["ours"]["rps_median"] - 1 / empty["floor"]["rps_median"]
    assert bound["gap_us"] == pytest.approx(gap * 1e6)
    assert bound["parts_us"] == pytest.approx(
        {
            "storage": (gap - handling) * 1e6,
            "any answer of ours": fixed * 1e6,
            "the rest of a download": (handling - fixed) * 1e6,
        }
    )
    assert "| target | ours | bound | ours - floor, us per call |" in result.stdout


def test_list_is_measured_on_memory_too_where_each_file_is_encoded_as_listed(
    tmp_path: Path,
) -> None:
    result, report = short_run(tmp_path, "--scenarios", "list", "--concurrency", "16x8")
    assert report["failures"] == 0
    ((ours,), (memory,)) = report["results"], report["in_memory"]
    assert (ours["sides"], memory["sides"]) == (["floor", "ours"], ["floor", "ours, memory:"])
    assert memory["scenario"] == "list" and memory["ours, memory:"]["rounds"][0]["done"] > 0
    assert report["bounds"] == []  # not a bound: SQLite lists stored bytes, memory encodes
    assert "| floor req/s | ours, memory: req/s |" in result.stdout


def test_the_sqlite_floor_is_measured_against_the_floor(tmp_path: Path) -> None:
    result, report = short_run(tmp_path, "--scenarios", "none", "--no-scale", "--sqlite-floor")
    assert report["failures"] == 0
    assert [p["scenario"] for p in report["sqlite_floor"]] == ["update", "get"]
    for point in report["sqlite_floor"]:
        assert point["sides"] == ["floor", "SQLite floor"]
        assert point["ratio"] > 0
        assert point["SQLite floor"]["rounds"][0]["done"] > 0
    assert "| **Update name+description** | 16x8 |" in result.stdout


def test_the_metrics_part_measures_ours_with_metrics_off_against_on(tmp_path: Path) -> None:
    result, report = short_run(tmp_path, "--scenarios", "none", "--no-scale", "--metrics")
    assert report["failures"] == 0
    assert [p["scenario"] for p in report["metrics"]] == ["update", "get"]
    for point in report["metrics"]:
        assert point["sides"] == ["off", "metrics on"]
        assert point["ratio"] > 0
        assert point["metrics on"]["rounds"][0]["done"] > 0
    assert "metrics on" in result.stdout


def test_the_postgres_part_measures_update_and_get_and_one_replica_against_two(
    tmp_path: Path, postgres_database: str
) -> None:
    result, report = short_run(
        tmp_path, "--scenarios", "none", "--no-scale", "--postgres-url", postgres_database
    )
    assert report["failures"] == 0
    postgres = report["postgres"]
    assert postgres["server_version"] and postgres["cluster"] == "given by --postgres-url"
    own = ", own files"
    sides = {
        "floor_points": ["floor", "ours"],
        "postgres_floor_points": ["PostgreSQL floor", "ours"],
        "own_files_points": [f"PostgreSQL floor{own}", f"ours{own}"],
        "replica_points": ["1 replica", "2 replicas"],
        "own_files_replica_points": [f"1 replica{own}", f"2 replicas{own}"],
    }
    assert [(p["scenario"], p["sides"]) for p in postgres["memory_points"]] == [
        ("get", ["floor", "ours, memory:"])
    ]
    # The bound: the PostgreSQL floor's Get with our per-call cost (on memory:) for the floor's.
    (bound,) = report["bounds"]
    get, (memory,) = postgres["postgres_floor_points"][1], postgres["memory_points"]
    pg_floor = 1 / get["PostgreSQL floor"]["rps_median"]
    handling = 1 / memory["ours, memory:"]["rps_median"] - 1 / memory["floor"]["rps_median"]
    assert bound["target"].startswith("PostgreSQL Get") and bound["ratio"] == get["ratio"]
    assert bound["bound"] == pytest.approx(pg_floor / (pg_floor + handling))
    assert bound["parts_us"]["our handling of a call"] == pytest.approx(handling * 1e6)
    for part, names in sides.items():
        assert [p["scenario"] for p in postgres[part]] == ["update", "get"]
        for point in postgres[part]:
            assert point["sides"] == names
            assert point["ratio"] > 0
    for point in postgres["replica_points"]:
        # Two replicas are loaded at once, each with its share of the connections.
        for name, replicas in (("1 replica", 1), ("2 replicas", 2)):
            (run,) = point[name]["rounds"]
            assert len(run["replica_rps"]) == replicas and all(run["replica_rps"])
    for point in postgres["own_files_replica_points"]:
        # A file per connection: one h2load of one connection each, all at once.
        for name in (f"1 replica{own}", f"2 replicas{own}"):
            (run,) = point[name]["rounds"]
            assert len(run["replica_rps"]) == HEADLINE[0] and all(run["replica_rps"])
    assert f"PostgreSQL {postgres['server_version']} (given by --postgres-url)" in result.stdout
    assert "| scenario | conns x streams | 1 replica req/s | 2 replicas req/s |" in result.stdout
    assert "| **Get** | 16x8 |" in result.stdout


@pytest.mark.parametrize(
    ("args", "on"),
    [
        ([], True),
        (["--quick"], True),
        (["--scenarios", "get"], False),
        (["--concurrency", "1x1"], False),
        (["--scenarios", "none", "--stall"], True),
        (["--quick", "--no-stall"], False),
    ],
)
def test_the_stall_part_is_on_unless_scenarios_or_concurrency_are_chosen(
    args: list[str], on: bool
) -> None:
    settings = parse_args(args)
    assert settings.stall is on
    assert settings.stall_bytes == MAX_CONTENT_BYTES


@pytest.mark.parametrize("size", [MIN_STALL_BYTES - 1, MAX_CONTENT_BYTES + 1])
def test_stall_bytes_stay_within_what_the_server_takes(size: int) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--stall-bytes", str(size)])


def test_the_stall_part_times_small_calls_during_big_uploads(tmp_path: Path) -> None:
    """1 MiB instead of 128 MiB: the harness and its checks, not the stall itself."""
    result, report = short_run(
        tmp_path, "--scenarios", "none", "--no-scale", "--stall", "--stall-bytes", str(2**20)
    )
    assert report["failures"] == 0
    points = report["stall"]
    assert [p["case"] for p in points] == ["get_json", "get_random", "update_pds"]
    for point in points:
        assert point["bytes"] == 2**20
        assert point["sides"] == ["floor", "ours (SQLite)", "ours (memory)"]
        for side in point["sides"]:
            (run,) = point[side]["rounds"]
            assert run["failures"] == 0 and run["problems"] == run["errors"] == []
            assert run["calls"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"] <= run["worst_ms"]
            assert run["window_seconds"] >= run["big_seconds"] > 0
        over = point["worst_over_floor_ms"]
        assert over["ours (SQLite)"] == pytest.approx(
            point["ours (SQLite)"]["worst_ms"] - point["floor"]["worst_ms"], abs=0.1
        )
    creates = points[0]["ours (memory)"]["rounds"][0]["big_calls"]
    assert [(c["code"], c["mime_type"]) for c in creates] == [("OK", "application/json")] * 2
    assert "| Get during 2 Creates of 1 MiB, a JSON array | ours (SQLite) |" in result.stdout
    assert "| Update during a PDS completion of 1 MiB (floor: 1 Create) | floor |" in result.stdout


@pytest.mark.parametrize(
    ("status", "file", "problem"),
    [
        (200, {"size": 4, "content_hash": "AB", "content_type": "text/plain"}, None),
        (404, {"code": "NotFound.File"}, "HTTP 404"),
        (200, {"size": 3, "content_hash": "AB", "content_type": "text/plain"}, "3 bytes"),
        (200, {"size": 4, "content_hash": "CD", "content_type": "text/plain"}, "not the 4 sent"),
        (200, {"size": 4, "content_hash": "AB", "content_type": "text/html"}, "not text/plain"),
    ],
)
def test_a_big_file_must_hold_what_was_sent(
    status: int, file: dict[str, Any], problem: str | None
) -> None:
    problems = file_problems(status, file, 4, "AB", "text/plain")
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize("size", [3, 4, 1001, 1024])
def test_the_json_array_has_exactly_the_size_asked_for(size: int) -> None:
    content = workload.json_array(size)
    assert len(content) == size
    assert set(json.loads(content)) == {1}


def test_a_failed_call_is_http_200_to_h2load_but_carries_no_message(tmp_path: Path) -> None:
    """Why the harness counts DATA bytes: h2load sees an UNIMPLEMENTED call as a success."""
    require_h2load()
    payload = tmp_path / "get.grpc"
    payload.write_bytes(workload.grpc_frame(workload.get_request("f").SerializeToString()))
    floor = start_floor()
    with running(floor) as (address,):
        url = f"http://{address}/{workload.SERVICE}/NoSuchMethod"
        run = h2load.run(url, payload, connections=1, streams=2, duration_s=0.3)
    assert run.done > 0 and run.status_2xx == run.done and run.h2load_failures == 0
    assert run.data_bytes == 0 and run.messages_min(200) == 0


def test_error_lines_in_a_server_log_are_counted() -> None:
    script = (
        "import sys; print('INFO server: fine'); "
        "print('2026-01-01 00:00:00,000 ERROR files_api.grpc_api: unexpected', file=sys.stderr); "
        "print('Traceback (most recent call last):', file=sys.stderr)"
    )
    process = ServerProcess("fake", [sys.executable, "-c", script], health=False)
    process.process.wait(timeout=30)
    process.stop()
    assert process.errors_since(0) == [
        "2026-01-01 00:00:00,000 ERROR files_api.grpc_api: unexpected",
        "Traceback (most recent call last):",
    ]
    assert process.errors_since(2) == []


def test_without_h2load_it_says_how_to_install_it(tmp_path: Path) -> None:
    result = bench("--quick", env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode != 0
    assert INSTALL_HINT in result.stderr


async def test_seeded_files_are_ones_the_store_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "seeded.db"
    await asyncio.to_thread(seed, path, 250, "f1")  # seed() runs its own event loop
    store = SqliteStore(path)
    await store.open()
    try:
        now = time.time_ns()
        page = await store.list("f1", now, 100, None)
        assert len(page) == 100
        assert [r.created_at_ns for r in page] == sorted(
            (r.created_at_ns for r in page), reverse=True
        )
        rest = await store.list("f1", now, 1000, (page[-1].created_at_ns, page[-1].id))
        assert len(rest) == 150
        record = await store.get(page[0].id, now)
        assert record == page[0]
        assert record.labels == {"seed": "yes"} and record.expires_at_ns > now
        assert await store.content(record.id, now) is not None
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def floor_stub(
    servicer: FloorServicer, commits: GroupCommit | None = None
) -> AsyncIterator[file_service_pb2_grpc.FileServiceAsyncStub]:
    """A stub to `servicer` on a loopback gRPC server, with its group commit running."""
    server = grpc.aio.server()
    file_service_pb2_grpc.add_FileServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    if commits is not None:
        commits.start(asyncio.get_running_loop())
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield file_service_pb2_grpc.FileServiceStub(channel)
    finally:
        if commits is not None:
            commits.stop()
        await server.stop(None)


async def test_the_sqlite_floor_commits_an_update_before_it_answers(tmp_path: Path) -> None:
    path = tmp_path / "floor.db"
    await asyncio.to_thread(seed, path, 10, "sqlite-floor")  # it runs a loop of its own
    servicer = SqliteFloorServicer(path)
    request = workload.update_request("any")
    async with floor_stub(servicer, servicer.commits) as stub:
        await stub.Update(request)
        # Another connection, as after a crash: only committed rows are there to see.
        with contextlib.closing(sqlite3.connect(path)) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM files WHERE name = ? AND description = ?",
                (request.name, request.description),
            ).fetchone()
        assert count == 1


async def test_the_recorded_upload_floor_keeps_the_content_and_its_row_before_it_answers(
    tmp_path: Path,
) -> None:
    await asyncio.to_thread(migrate, tmp_path / RECORDS)  # it runs a loop of its own
    servicer = RecordedUploadFloorServicer(tmp_path)
    content = workload.download_content(300_000)
    async with floor_stub(servicer, servicer.commits) as stub:
        await stub.Create(workload.create_request(content))
        # Another connection, as after a crash: only committed rows are there to see.
        with contextlib.closing(sqlite3.connect(tmp_path / RECORDS)) as conn:
            rows = conn.execute("SELECT size, content_hash FROM files").fetchall()
        assert rows == [(len(content), hashlib.sha1(content).hexdigest().upper())]
        assert (tmp_path / "1.bin").read_bytes() == content


async def test_the_postgres_floor_commits_an_update_before_it_answers(
    postgres_database: str,
) -> None:
    servicer = PostgresFloorServicer(postgres_database)
    await servicer.start()  # migrates our schema and makes its own file
    request = workload.update_request(POSTGRES_FLOOR_FILE_ID)
    try:
        async with floor_stub(servicer) as stub:
            await stub.Update(request)
        # Another connection: only committed rows are there to see.
        conn = await asyncpg.connect(postgres_database)
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM files WHERE id = $1 AND name = $2 AND description = $3",
                POSTGRES_FLOOR_FILE_ID,
                request.name,
                request.description.encode(),
            )
        finally:
            await conn.close()
        assert count == 1
    finally:
        await servicer.stop()
