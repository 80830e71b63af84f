"""What bounds each of issue 20's missed targets, from points of the same run.

Each of those targets compares ours with a floor that does the least work the call needs. The
run also measures ours on `memory:`, the same server with no storage work at all, against the
floor of its point. Per call (1/req/s at the point, the loop being the bottleneck on every
side), the gap between ours and its floor then splits into storage's part (ours minus ours on
`memory:`) and our handling's part (ours on `memory:` minus the floor): everything that is not
the store, from grpcio or aiohttp up to the domain.

- **Create 1 MiB against the durable-upload floor**, and **Download 64 KiB against the download
  floor**: the bound is ours on `memory:` against the same floor. No store makes ours faster
  than no store. For downloads, `/healthz` on both sides says how much of our handling any
  answer of ours costs (routing, the middlewares, the connection guard).
- **PostgreSQL Get against the PostgreSQL floor**: that floor is the gRPC floor plus one
  SELECT, so ours can at best be the PostgreSQL floor plus our handling, measured as ours on
  `memory:` against the gRPC floor: `t_pg_floor / (t_pg_floor + t_handling)`. Times per call
  adding up is a model; the parts it adds are measured.
"""

from __future__ import annotations

from typing import Any

IN_MEMORY = "ours, memory:"
"""The side name of ours on the memory store (bench.parts starts it)."""


def _seconds(point: dict[str, Any], side: str) -> float:
    return 1.0 / float(point[side]["rps_median"])


def _point(points: list[dict[str, Any]], scenario: str, other: str) -> dict[str, Any] | None:
    return next((p for p in points if p["scenario"] == scenario and p["sides"][1] == other), None)


def _gap(
    ours: dict[str, Any], floor: str, memory: dict[str, Any], memory_floor: str
) -> dict[str, Any]:
    """Ours against its floor per call, and its two parts, in microseconds."""
    gap = _seconds(ours, "ours") - _seconds(ours, floor)
    handling = _seconds(memory, IN_MEMORY) - _seconds(memory, memory_floor)
    return {
        "ratio": ours["ratio"],
        "gap_us": gap * 1e6,
        "storage_us": (gap - handling) * 1e6,
        "handling_us": handling * 1e6,
    }


def bounds(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per target this run can bound: ours' ratio, the bound, and the gap's parts."""
    rows = []
    uploads = report.get("upload_floor") or []
    ours, memory = (_point(uploads, "create_1m", side) for side in ("ours", IN_MEMORY))
    if ours and memory:
        rows.append(
            {
                "target": "Create 1 MiB >= 0.8 x the durable-upload floor",
                "bound": memory["ratio"],
                "how": "ours on memory: against the same floor",
                **_gap(ours, "upload floor", memory, "upload floor"),
            }
        )
    downloads = report.get("downloads") or []
    ours, memory, empty = (
        _point(downloads, scenario, side)
        for scenario, side in (
            ("download_64k", "ours"),
            ("download_64k", IN_MEMORY),
            ("empty_answer", "ours"),
        )
    )
    if ours and memory and empty:
        fixed = _seconds(empty, "ours") - _seconds(empty, "floor")
        rows.append(
            {
                "target": "Download 64 KiB >= 0.6 x the download floor",
                "bound": memory["ratio"],
                "how": "ours on memory: against the same floor; of our handling,"
                f" {fixed * 1e6:.0f} us is any answer's (/healthz against the bare one's)",
                **_gap(ours, "floor", memory, "floor"),
            }
        )
    postgres = report.get("postgres") or {}
    ours = _point(postgres.get("postgres_floor_points", []), "get", "ours")
    memory = _point(postgres.get("memory_points", []), "get", IN_MEMORY)
    if ours and memory:
        pg_floor = _seconds(ours, "PostgreSQL floor")
        gap = _gap(ours, "PostgreSQL floor", memory, "floor")
        rows.append(
            {
                "target": "PostgreSQL Get >= 0.8 x the PostgreSQL floor",
                "bound": pg_floor / (pg_floor + gap["handling_us"] / 1e6),
                "how": "the PostgreSQL floor plus our handling (ours on memory: against the"
                " gRPC floor)",
                **gap,
            }
        )
    return rows


def bounds_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | ours | bound | ours - floor, us per call | storage's part"
        " | our handling's part | bound measured as |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['target']} | {r['ratio']:.2f} | {r['bound']:.2f} | {r['gap_us']:.0f}"
            f" | {r['storage_us']:.0f} | {r['handling_us']:.0f} | {r['how']} |"
            for r in rows
        ),
    ]
    return "\n".join(lines)
