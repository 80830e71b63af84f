"""What bounds each of issue 20's targets that a run measures, from points of the same run.

A target ratio (ours against a floor) is out of reach when ours, with the cost the target is
about taken away, is already below it. Each bound compares two sides measured in one point, so
the machine's moment is the same for both:

- **Create 1 MiB against the durable-upload floor**: ours on `memory:` (no disk work at all)
  against that floor. No store can make ours faster than ours with no store.
- **Download 64 KiB against the download floor**: our app's `/healthz` against the bare
  handler's gives the fixed cost of any answer of ours. Per request (1/req/s, the loop being
  the bottleneck on both), ours needs at least that fixed cost plus what the floor spends on
  the download beyond its own empty answer, so it can reach at most
  `t_floor_download / (t_floor_download - t_floor_empty + t_ours_empty)`. Ours on `memory:`
  is reported beside it: the part of the gap the store is not.
- **PostgreSQL Get against the PostgreSQL floor**: the same model. Ours on `memory:` against
  the gRPC floor gives our per-call cost with no database; ours on PostgreSQL needs at least
  that plus what the PostgreSQL floor adds to the gRPC floor (its one SELECT), so at most
  `t_pg_floor / (t_pg_floor - t_floor + t_ours_memory)`.

The model (times per request add up) is an estimate, not a measurement; the ratios it is built
from are measured.
"""

from __future__ import annotations

from typing import Any

IN_MEMORY = "ours, memory:"
"""The side name of ours on the memory store (bench.parts starts it)."""


def _seconds(point: dict[str, Any], side: str) -> float:
    return 1.0 / float(point[side]["rps_median"])


def _point(points: list[dict[str, Any]], scenario: str, other: str) -> dict[str, Any] | None:
    return next((p for p in points if p["scenario"] == scenario and p["sides"][1] == other), None)


def bounds(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per target this run can bound: the target, ours' ratio, and the bound."""
    rows = []
    uploads = report.get("upload_floor") or []
    ours, memory = (_point(uploads, "create_1m", side) for side in ("ours", IN_MEMORY))
    if ours and memory:
        rows.append(
            {
                "target": "Create 1 MiB >= 0.8 x the durable-upload floor",
                "ratio": ours["ratio"],
                "bound": memory["ratio"],
                "how": "ours on memory: (no disk work) against the same floor",
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
    if ours and empty:
        floor_download = _seconds(ours, "floor")
        fixed = _seconds(empty, "ours") - _seconds(empty, "floor")
        memory_text = f"; ours on memory: {memory['ratio']:.2f}" if memory else ""
        rows.append(
            {
                "target": "Download 64 KiB >= 0.6 x the download floor",
                "ratio": ours["ratio"],
                "bound": floor_download / (floor_download + fixed),
                "how": f"our /healthz at {empty['ratio']:.2f} of the bare one's"
                f" ({fixed * 1e6:.0f} us more per answer){memory_text}",
            }
        )
    postgres = report.get("postgres") or {}
    ours = _point(postgres.get("postgres_floor_points", []), "get", "ours")
    memory = _point(postgres.get("memory_points", []), "get", IN_MEMORY)
    if ours and memory:
        pg_floor = _seconds(ours, "PostgreSQL floor")
        ours_memory = _seconds(memory, IN_MEMORY)
        rows.append(
            {
                "target": "PostgreSQL Get >= 0.8 x the PostgreSQL floor",
                "ratio": ours["ratio"],
                "bound": pg_floor / (pg_floor - _seconds(memory, "floor") + ours_memory),
                "how": f"ours on memory: at {memory['ratio']:.2f} of the gRPC floor's Get",
            }
        )
    return rows


def bounds_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| target | ours | bound from this run | measured as |",
        "|---|---|---|---|",
        *(f"| {r['target']} | {r['ratio']:.2f} | {r['bound']:.2f} | {r['how']} |" for r in rows),
    ]
    return "\n".join(lines)
