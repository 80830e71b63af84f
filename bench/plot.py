"""The PNG of a report: throughput and p99 latency against concurrency for the floor and ours,
and our rate as a fraction of the floor's for every scenario at the headline concurrency.

matplotlib comes with the `bench` extra (`pip install -e '.[bench]'`), so it is imported here
only, when a plot is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

_STYLE = {"floor": "--", "ours": "-"}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (an optional dependency, for the plot only)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    scenarios: dict[str, list[dict[str, Any]]] = {}
    for point in report["results"]:
        scenarios.setdefault(point["title"], []).append(point)
    swept = {t: sorted(ps, key=lambda p: p["concurrency"]) for t, ps in scenarios.items()}
    swept = {t: ps for t, ps in swept.items() if len(ps) > 1}
    if swept:
        figure, (rates, tails, ratios) = plt.subplots(
            1, 3, figsize=(16, 5), layout="constrained", width_ratios=[1, 1, 0.8]
        )
        _sweep_lines(swept, rates, tails)
    else:  # one concurrency only (--quick): no lines to draw
        figure, ratios = plt.subplots(figsize=(7, 4), layout="constrained")

    headline = [p for p in report["results"] if p["headline"]]
    if headline:
        first = headline[0]
        ratios.set_title(f"at {first['connections']} connections x {first['streams']} streams")
        labels = [p["title"] for p in headline]
    else:
        headline = report["results"]
        labels = [f"{p['title']} {p['connections']}x{p['streams']}" for p in headline]
    bars = ratios.barh(labels[::-1], [p["ratio"] for p in headline][::-1], color="C0")
    ratios.bar_label(bars, fmt="%.2f", padding=3)
    ratios.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ratios.set_xlim(0, max([1.1, *(p["ratio"] for p in headline)]) * 1.1)
    ratios.set_xlabel("ours / floor, median req/s")

    machine = report["machine"]
    figure.suptitle(
        "Files API (SQLite) vs the bare grpc.aio floor, driven by h2load\n"
        f"{machine['nproc']} cores, Python {machine['python']}, grpcio {machine['grpcio']}"
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _sweep_lines(swept: dict[str, list[dict[str, Any]]], rates: Axes, tails: Axes) -> None:
    ticks: set[int] = set()
    for number, (title, points) in enumerate(swept.items()):
        x = [p["concurrency"] for p in points]
        ticks.update(x)
        for side in ("floor", "ours"):
            median = [p[side]["rps_median"] for p in points]
            low = [m - p[side]["rps_min"] for m, p in zip(median, points, strict=True)]
            high = [p[side]["rps_max"] - m for m, p in zip(median, points, strict=True)]
            style: dict[str, Any] = {
                "linestyle": _STYLE[side],
                "marker": "o",
                "color": f"C{number}",
            }
            label = f"{title}: {side}"
            rates.errorbar(x, median, yerr=[low, high], capsize=3, label=label, **style)
            tails.plot(x, [p[side]["p99_ms"] for p in points], label=label, **style)
    for axes, ylabel in ((rates, "requests/s (median; bars: min to max)"), (tails, "p99, ms")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(sorted(ticks), [str(t) for t in sorted(ticks)])
        axes.set_xlabel("concurrent streams (connections x streams per connection)")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    rates.set_ylim(bottom=0)
    rates.set_title("throughput")
    tails.set_yscale("log")
    tails.set_title("p99 latency (log scale)")
