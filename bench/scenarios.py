"""What a benchmark run measures: the scenarios, their concurrency points, and the run's Settings.

A `Scenario` is one request (gRPC, or its REST call) built from the ids that the set-up made on
the server under test; its payload is what h2load sends. `HEADLINE` and `SWEEP` are the points
(connections x streams per connection) that `python -m bench.run` measures by default, and
`Settings` is what its command line asks for.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from bench import workload
from files_api.domain.limits import MAX_CONTENT_BYTES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from google.protobuf.message import Message

    from bench.workload import RestCall

HEADLINE = (16, 8)
SWEEP = [(1, 1), (1, 8), (8, 8), (16, 8), (32, 8)]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One request the benchmark repeats (over gRPC, or REST with `rest`), under a key and title."""

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

# The download part (`--downloads`): GETs of a signed link, a file of the default expiration
# policy, against the bare aiohttp floor answering the same bytes from memory. Not in SCENARIOS:
# its links come from a set-up of its own (bench.parts.run_downloads).
DOWNLOADS = [
    Scenario(
        key,
        f"Download {title} (floor: bare aiohttp from memory)",
        "download",
        lambda ids: workload.get_request(""),  # none: it is REST only
        rest=lambda ids, key=key: workload.rest_download(ids[key]),  # type: ignore[misc]
    )
    for key, title in (("download_1m", "1 MiB"), ("download_64k", "64 KiB"))
]
DOWNLOAD_CONNECTIONS = 16
EMPTY_ANSWER = Scenario(
    "empty_answer",
    "Empty answer: /healthz (floor: bare aiohttp)",
    "download",
    lambda ids: workload.get_request(""),  # none: it is REST only
    rest=lambda ids: workload.rest_download("/healthz"),
)
"""What any HTTP answer costs ours beyond the floor (routing, middlewares, the connection
guard): with the download floor, it bounds what a download can reach (bench/bounds.py)."""


def _content(size: int) -> bytes:
    # Incompressible and not text, like an uploaded binary: MIME detection reads its head.
    return (os.urandom(4096) * (size // 4096 + 1))[:size]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one `python -m bench.run` was asked to measure, and where to write it."""

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
    metrics: bool = False
    upload_floor: bool = False
    postgres_url: str | None = None
    stall: bool = False
    stall_bytes: int = MAX_CONTENT_BYTES
    downloads: bool = False
