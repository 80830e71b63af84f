"""Driving h2load (nghttp2) with gRPC frames and reading what it reports.

h2load counts HTTP statuses, and a failed gRPC call is still HTTP 200 (its grpc-status is in the
trailers, which h2load does not read). What it does count exactly is the DATA bytes it received:
a call that fails before answering (a "Trailers-Only" response) carries none. So besides
h2load's own failed/errored counts, `Run.messages_min` bounds from below how many calls carried
a response message; the driver adds real gRPC calls before and after each run.

REST runs go over HTTP/1.1 (`--h1`), where the status line tells a failure; h2load has no method
flag, but a `:method` header overrides its POST (for HTTP/1.1 too: it builds the request line
from that pseudo-header), which is how the benchmark sends a true PATCH.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

INSTALL_HINT = "h2load not found on PATH: apt-get install nghttp2-client"
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")


def require_h2load() -> str:
    """The path of h2load, or SystemExit with the install hint."""
    path = shutil.which("h2load")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def version() -> str:
    result = subprocess.run(
        [require_h2load(), "--version"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


@dataclasses.dataclass(frozen=True)
class Run:
    """One h2load run: its own counts, the DATA bytes received, latency from its request log."""

    rps: float
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    status_other: int
    data_bytes: int
    latency_ms: dict[str, float]

    @property
    def h2load_failures(self) -> int:
        """Calls h2load itself saw fail, plus any answered with an HTTP status other than 2xx."""
        return self.failed + self.errored + self.timeout + self.status_other

    def messages_min(self, max_frame_bytes: int) -> int:
        """At least this many responses carried a message of at most `max_frame_bytes`."""
        return self.data_bytes // max_frame_bytes if max_frame_bytes else 0


_FINISHED = re.compile(r"^finished in [\d.]+m?s, ([\d.]+) req/s", re.M)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed,"
    r" (\d+) errored, (\d+) timeout",
    re.M,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)
_DATA = re.compile(r"^traffic: .* \((\d+)\) data", re.M)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


def latency_from_log(*log_files: Path) -> dict[str, float]:
    """p50/p90/p99/max/mean in ms over the successful requests of h2load --log-files (several
    when h2load runs in parallel against replicas: their requests are pooled).

    Its rows are: start time (µs since the epoch), HTTP status (-1 for a failed stream), µs until
    the end of the response.
    """
    micros: list[int] = []
    for log_file in log_files:
        for line in log_file.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) >= 3 and fields[1] == "200":
                micros.append(int(fields[2]))
    micros.sort()
    if not micros:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "p50": percentile(micros, 0.50) / 1000,
        "p90": percentile(micros, 0.90) / 1000,
        "p99": percentile(micros, 0.99) / 1000,
        "max": micros[-1] / 1000,
        "mean": sum(micros) / len(micros) / 1000,
    }


def parse(output: str, log_file: Path | None) -> Run:
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    status = _STATUS.search(output)
    data = _DATA.search(output)
    if not (finished and requests and status and data):
        raise RuntimeError(f"cannot read h2load's report:\n{output}")
    _total, _started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    return Run(
        rps=float(finished[1]),
        done=done,
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeout=timeout,
        status_2xx=int(status[1]),
        status_other=int(status[2]) + int(status[3]) + int(status[4]),
        data_bytes=int(data[1]),
        latency_ms=latency_from_log(log_file) if log_file is not None else {},
    )


def combine(runs: Sequence[Run], latency_ms: dict[str, float]) -> Run:
    """Runs that went side by side (one per replica) as one: counts and rates add up."""
    return Run(
        rps=sum(r.rps for r in runs),
        done=sum(r.done for r in runs),
        succeeded=sum(r.succeeded for r in runs),
        failed=sum(r.failed for r in runs),
        errored=sum(r.errored for r in runs),
        timeout=sum(r.timeout for r in runs),
        status_2xx=sum(r.status_2xx for r in runs),
        status_other=sum(r.status_other for r in runs),
        data_bytes=sum(r.data_bytes for r in runs),
        latency_ms=latency_ms,
    )


def run(
    url: str,
    payload: Path | None,
    *,
    connections: int,
    streams: int,
    duration_s: float,
    log_file: Path | None = None,
    headers: Sequence[str] = GRPC_HEADERS,
    http1: bool = False,
) -> Run:
    """A timed run: `connections` times `streams` POSTs of `payload` to `url` for `duration_s`
    (another method with a `:method: PATCH` header; GETs with no payload; over HTTP/1.1 with
    `http1`, where `streams` above 1 would be pipelining).

    No --warm-up-time: h2load 1.52 keeps counting DATA bytes through the warm-up while it resets
    the request counts, which would spoil the byte check; warm up with a separate run instead.
    """
    command = [
        require_h2load(),
        *(["--h1"] if http1 else []),
        *(arg for header in headers for arg in ("-H", header)),
        *(["-d", str(payload)] if payload is not None else []),
        "-c",
        str(connections),
        "-m",
        str(streams),
        "-D",
        f"{max(1, round(duration_s * 1000))}ms",
    ]
    if log_file is not None:
        log_file.unlink(missing_ok=True)  # h2load appends to it
        command += ["--log-file", str(log_file)]
    result = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration_s + 120,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"h2load exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return parse(result.stdout, log_file)
