"""What bounds each of issue 20's missed targets, from points of the same run.

Each such target compares ours with a floor that does the least work its call needs. The bound
is a second floor, or a second server, that does part of ours' work and nothing else, measured
in the same run; per call (1/req/s at the point, the loop or the CPUs being the bottleneck on
every side) the gap between ours and the floor then splits into parts:

- **Create 1 MiB against the durable-upload floor**: the recorded-upload floor (bench/floor.py)
  adds only what any server that keeps a record of its uploads must add: the content's SHA-1,
  and a row committed once the content is durable. If it stays under the target, so does any
  server that records its files, ours included.
- **Downloads against the download floor**: ours on `memory:`, the same server with no storage
  work. No store makes ours faster than no store. `/healthz` on both HTTP sides says how much
  of the rest any answer of ours costs (routing, the middlewares, the connection guard). (Not
  for List: the memory store keeps no File bytes and encodes each File as it lists it, so its
  List is slower than SQLite's; `bench.parts.run_main` measures it to show what the stored
  bytes save.)
- **PostgreSQL Get against the PostgreSQL floor**: that floor is the gRPC floor plus one
  SELECT, so ours can at best be the PostgreSQL floor plus our own handling of a call,
  measured as ours on `memory:` against the gRPC floor: `t_pg_floor / (t_pg_floor +
  t_handling)`. That times per call add up is a model; the parts it adds are measured.
"""

from __future__ import annotations

from typing import Any

IN_MEMORY = "ours, memory:"
"""The side name of ours on the memory store (bench.parts starts it)."""
UPLOAD_FLOOR = "upload floor"
RECORDED_FLOOR = "recorded floor"


def _seconds(point: dict[str, Any], side: str) -> float:
    return 1.0 / float(point[side]["rps_median"])


def _point(points: list[dict[str, Any]], scenario: str, other: str) -> dict[str, Any] | None:
    return next((p for p in points if p["scenario"] == scenario and p["sides"][1] == other), None)


def _row(
    target: str, ours: dict[str, Any], floor: str, bound: float, parts: dict[str, float]
) -> dict[str, Any]:
    """`parts` are seconds per call; what they leave of ours' gap to the floor is ours' own."""
    gap = _seconds(ours, "ours") - _seconds(ours, floor)
    return {
        "target": target,
        "ratio": ours["ratio"],
        "bound": bound,
        "gap_us": gap * 1e6,
        "parts_us": {name: seconds * 1e6 for name, seconds in parts.items()},
    }


def _without_storage(
    target: str, ours: dict[str, Any], memory: dict[str, Any], fixed: float | None = None
) -> dict[str, Any]:
    """Bounded by ours on `memory:` against the same floor: the gap splits into storage's part
    and our handling's (with `fixed`, that of any answer of ours, taken out of the handling)."""
    handling = _seconds(memory, IN_MEMORY) - _seconds(memory, "floor")
    gap = _seconds(ours, "ours") - _seconds(ours, "floor")
    parts = {"storage": gap - handling}
    if fixed is None:
        parts["our handling"] = handling
    else:
        parts |= {"any answer of ours": fixed, "the rest of a download": handling - fixed}
    return _row(target, ours, "floor", memory["ratio"], parts)


def bounds(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per target this run can bound: ours' ratio, the bound, the gap's parts."""
    rows = []
    uploads = report.get("upload_floor") or []
    ours, recorded = (_point(uploads, "create_1m", side) for side in ("ours", RECORDED_FLOOR))
    if ours and recorded:
        recording = _seconds(recorded, RECORDED_FLOOR) - _seconds(recorded, UPLOAD_FLOOR)
        gap = _seconds(ours, "ours") - _seconds(ours, UPLOAD_FLOOR)
        parts = {"recording it (SHA-1, a row)": recording, "the rest of ours": gap - recording}
        bound = recorded["ratio"]
        target = "Create 1 MiB >= 0.8 x the durable-upload floor"
        rows.append(_row(target, ours, UPLOAD_FLOOR, bound, parts))
    downloads = report.get("downloads") or []
    empty = _point(downloads, "empty_answer", "ours")
    for key, title, floor in (("download_1m", "1 MiB", 0.7), ("download_64k", "64 KiB", 0.6)):
        ours, memory = (_point(downloads, key, side) for side in ("ours", IN_MEMORY))
        if ours and memory:
            fixed = None
            if empty is not None:
                fixed = _seconds(empty, "ours") - _seconds(empty, "floor")
            target = f"Download {title} >= {floor} x the download floor"
            rows.append(_without_storage(target, ours, memory, fixed))
    postgres = report.get("postgres") or {}
    ours = _point(postgres.get("postgres_floor_points", []), "get", "ours")
    memory = _point(postgres.get("memory_points", []), "get", IN_MEMORY)
    if ours and memory:
        pg_floor = _seconds(ours, "PostgreSQL floor")
        handling = _seconds(memory, IN_MEMORY) - _seconds(memory, "floor")
        gap = _seconds(ours, "ours") - pg_floor
        parts = {"our handling of a call": handling, "the rest of ours": gap - handling}
        target = "PostgreSQL Get >= 0.8 x the PostgreSQL floor"
        bound = pg_floor / (pg_floor + handling)
        rows.append(_row(target, ours, "PostgreSQL floor", bound, parts))
    return rows


def bounds_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | ours | bound | ours - floor, us per call | of which, us per call |",
        "|---|---|---|---|---|",
        *(
            f"| {r['target']} | {r['ratio']:.2f} | {r['bound']:.2f} | {r['gap_us']:.0f} | "
            + "; ".join(f"{name} {us:.0f}" for name, us in r["parts_us"].items())
            + " |"
            for r in rows
        ),
    ]
    return "\n".join(lines)
