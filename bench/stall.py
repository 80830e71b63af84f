"""The stall part (`python -m bench.run --stall`): how long a big upload holds up another
client's small calls on our server, against how long it holds them up on the floor (issue #16).

A bare grpc.aio server already stalls a small Get for a good part of a second while it takes in
two 128 MiB Creates on this 2-core machine (grpcio copies every received message under the GIL),
so an absolute bound would measure gRPC. What is ours is how far our stall is above the floor's,
in the same run. Three cases (`CASES`), each with the driver timing one small call after another
on its own channel, from just before the big calls start until they are answered:

- **Get during big Creates**, of a JSON array (`[1,1,...]`) and of random bytes:
  `bench.big_creates`, a client process of its own, sends two Creates of the content at once.
- **Update during a big PDS completion**: four parts of a quarter each are PUT first; only
  `POST /v2/file/complete`, from a thread of the driver (its request and answer are small), is
  timed against. The floor has no PDS face: its side is one Create of the content from the
  client process, the least any server must do to take the bytes in.

Every big call must succeed; on ours the file must also hold the content (size and SHA-1 through
PDS's get) and have the type the content has. The floor, ours on SQLite and ours on `memory:` take
turns, each round in fresh processes, in an order that turns every round.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from bench import workload
from bench.big_creates import CONTENTS, FOLDER_ID
from bench.h2load import percentile
from bench.processes import ROOT, running, start_floor, start_ours
from bench.targets import Target

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from bench.processes import ServerProcess

PDS_PARTS = 4
MIN_STALL_BYTES = 1024  # every part of a PDS upload gets some
TIMEOUT_S = 600.0
WARM_UP_CALLS = 10
SIDES = ["floor", "ours (SQLite)", "ours (memory)"]


@dataclasses.dataclass(frozen=True)
class StallCase:
    """What the driver times (`method`) while which big calls run (`content`, `pds`)."""

    key: str
    title: str
    method: str
    content: str
    """The big calls' content: a key of bench.big_creates.CONTENTS."""
    creates: int = 2
    """Creates at once from the client process (on the floor only, with `pds`)."""
    pds: bool = False
    """Ours completes a PDS upload of the content instead of taking Creates."""


CASES = [
    StallCase("get_json", "Get during 2 Creates of {size}, a JSON array", "Get", "json"),
    StallCase("get_random", "Get during 2 Creates of {size}, random bytes", "Get", "random"),
    StallCase(
        "update_pds",
        "Update during a PDS completion of {size} (floor: 1 Create)",
        "Update",
        "random",
        creates=1,
        pds=True,
    ),
]


class BigCalls(Protocol):
    """The big calls of one round, ready to go: `go` starts them, `done` is set once they are
    answered, and `problems` then says what was wrong with them (nothing, if all went well)."""

    done: threading.Event

    def go(self) -> None: ...

    def problems(self, ours: Target | None) -> list[str]: ...

    def record(self) -> dict[str, Any]: ...


class CreatesClient:
    """`bench.big_creates` in a process of its own, its content built and serialized."""

    def __init__(self, address: str, content: str, size: int, calls: int) -> None:
        command = [sys.executable, "-m", "bench.big_creates", address, "--content", content]
        self.process = subprocess.Popen(
            [*command, "--bytes", str(size), "--calls", str(calls)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.done = threading.Event()
        self._lines: list[str] = []
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"bench.big_creates did not start (exit {self.process.returncode})")

    def _read(self) -> None:
        assert self.process.stdout is not None
        self._lines.append(self.process.stdout.readline())
        self.done.set()

    def go(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def outcome(self) -> dict[str, Any]:
        try:
            outcome: dict[str, Any] = json.loads(self._lines[0])
        except (IndexError, ValueError):
            return {"calls": []}
        return outcome

    def problems(self, ours: Target | None) -> list[str]:
        outcome = self.outcome()
        calls = outcome["calls"]
        if not calls:
            return [f"bench.big_creates ended with no outcome (exit {self.process.poll()})"]
        problems = [
            f"Create: {call['code']}: {call['details']}" for call in calls if call["code"] != "OK"
        ]
        if ours is None or problems:
            return problems  # the floor answers a constant File: its status is all there is
        for call in calls:
            if call["mime_type"] != outcome["mime_type"]:
                problems.append(f"Create: {call['mime_type']}, not {outcome['mime_type']}")
            status, file = _pds(ours, "get", {"drive_id": FOLDER_ID, "file_id": call["id"]})
            problems += file_problems(status, file, outcome["bytes"], outcome["sha1"], None)
        return problems

    def record(self) -> dict[str, Any]:
        calls = self.outcome()["calls"]
        return {
            "big_seconds": round(max((c["seconds"] for c in calls), default=0.0), 3),
            "big_calls": calls,
        }

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class PdsCompletion:
    """A PDS upload of the content in `PDS_PARTS` parts, all put: `go` completes it."""

    def __init__(self, ours: Target, content: bytes, mime_type: str) -> None:
        self.size = len(content)
        self.mime_type = mime_type
        self.sha1 = hashlib.sha1(content).hexdigest().upper()
        self.done = threading.Event()
        self._answer: tuple[int, dict[str, Any], float] | None = None
        self._error = "PDS complete: no answer"
        status, staged = _pds(
            ours,
            "create",
            {
                "drive_id": FOLDER_ID,
                "parent_file_id": "root",
                "name": "stall-pds",  # no extension: the type comes from the bytes
                "type": "file",
                "size": self.size,
                "part_info_list": [{"part_number": n} for n in range(1, PDS_PARTS + 1)],
            },
        )
        if status != 200:
            raise RuntimeError(f"PDS create: HTTP {status}: {staged}")
        self._ours = ours
        self._complete = {k: staged[k] for k in ("drive_id", "file_id", "upload_id")}
        part = -(-self.size // PDS_PARTS)
        for number, link in enumerate(staged["part_info_list"]):
            url = urllib.parse.urlsplit(link["upload_url"])
            chunk = content[number * part : (number + 1) * part]
            status, body = _http(url.netloc, "PUT", f"{url.path}?{url.query}", chunk)
            if status != 200:
                raise RuntimeError(f"PUT part {number + 1}: HTTP {status}: {body[:200]!r}")

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            status, file = _pds(self._ours, "complete", self._complete)
            self._answer = status, file, time.perf_counter() - started
        except (OSError, http.client.HTTPException, ValueError) as e:
            self._error = f"PDS complete: {type(e).__name__}: {e}"
        finally:
            self.done.set()

    def go(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def problems(self, ours: Target | None) -> list[str]:
        if self._answer is None:
            return [self._error]
        status, file, _ = self._answer
        return file_problems(status, file, self.size, self.sha1, self.mime_type)

    def record(self) -> dict[str, Any]:
        status, _, seconds = self._answer or (0, {}, 0.0)
        return {"big_seconds": round(seconds, 3), "big_calls": [{"status": status}]}


def file_problems(
    status: int, file: dict[str, Any], size: int, sha1: str, mime_type: str | None
) -> list[str]:
    """What a PDS answer about a file says is wrong with it: not 200, not `size` bytes of the
    content whose SHA-1 is `sha1`, or (when given) not of `mime_type`."""
    if status != 200:
        return [f"PDS: HTTP {status}: {file}"]
    problems = []
    if file.get("size") != size or file.get("content_hash") != sha1:
        problems.append(f"{file.get('file_id')}: {file.get('size')} bytes, not the {size} sent")
    if mime_type is not None and file.get("content_type") != mime_type:
        problems.append(f"{file.get('file_id')}: {file.get('content_type')}, not {mime_type}")
    return problems


def _http(address: str, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(address, timeout=TIMEOUT_S)
    try:
        connection.request(method, path, body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _pds(ours: Target, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, answer = _http(
        ours.process.http_address, "POST", f"/v2/file/{operation}", json.dumps(body).encode()
    )
    return status, json.loads(answer) if answer else {}


def _timed_call(case: StallCase, target: Target, file_id: str) -> Callable[[], object]:
    if case.method == "Get":
        request = workload.get_request(file_id)
        return lambda: target.call("Get", request)
    names = (f"stall-{number}" for number in itertools.count())  # a new name every time
    return lambda: target.call("Update", workload.update_name_request(file_id, next(names)))


def _time_until(call: Callable[[], object], done: threading.Event) -> tuple[list[float], list[str]]:
    """Calls one after another until `done` is set: each successful one's seconds, sorted, and
    the errors of the others."""
    seconds: list[float] = []
    errors: list[str] = []
    while not done.is_set():
        started = time.perf_counter()
        try:
            call()
        except grpc.RpcError as e:
            errors.append(f"{e.code().name}: {e.details()}")
        else:
            seconds.append(time.perf_counter() - started)
    return sorted(seconds), errors


def _start(side: str, store: Path) -> ServerProcess:
    if side == "floor":
        return start_floor()
    url = "memory:" if side == "ours (memory)" else f"sqlite:///{store / 'stall.db'}"
    return start_ours(url, name=side)


@contextlib.contextmanager
def _big_calls(case: StallCase, target: Target, size: int) -> Iterator[BigCalls]:
    if case.pds and target.name != "floor":
        make, mime_type = CONTENTS[case.content]
        yield PdsCompletion(target, make(size), mime_type)
        return
    client = CreatesClient(target.address, case.content, size, case.creates)
    try:
        yield client
    finally:
        client.close()


def measure(case: StallCase, side: str, size: int, work: Path) -> dict[str, Any]:
    """One round of a case on one side, in fresh processes and a fresh store."""
    store = work / "store"
    store.mkdir()
    process = _start(side, store)
    try:
        with running(process) as (address,):
            target = Target(process, address, work)
            try:
                return _measure(case, target, size)
            finally:
                target.close()
    finally:
        shutil.rmtree(store)


def _measure(case: StallCase, target: Target, size: int) -> dict[str, Any]:
    ours = None if target.name == "floor" else target
    file_id = "f"  # the floor answers any id
    if ours is not None:
        created = ours.call("Create", workload.create_request())
        file_id = created.id  # type: ignore[attr-defined]
    call = _timed_call(case, target, file_id)
    mark = target.process.log_mark()
    for _ in range(WARM_UP_CALLS):  # the channel connected, the first call's work done
        call()
    with _big_calls(case, target, size) as big:
        started = time.perf_counter()
        big.go()
        seconds, errors = _time_until(call, big.done)
        window = time.perf_counter() - started
        big_problems = big.problems(ours)
        record = big.record()
    log_errors = target.process.errors_since(mark)
    milliseconds = [s * 1000 for s in seconds]
    return {
        "calls": len(seconds),
        "worst_ms": round(milliseconds[-1], 1) if milliseconds else 0.0,
        "p99_ms": round(percentile(milliseconds, 0.99), 1),
        "p50_ms": round(percentile(milliseconds, 0.50), 1),
        "window_seconds": round(window, 3),
        **record,
        "errors": errors[:20],
        "problems": big_problems,
        "log_errors": log_errors[:20],
        # A round with no timed call measured nothing: count it as a failure.
        "failures": len(errors) + len(big_problems) + len(log_errors) + (not seconds),
    }


def compare(case: StallCase, size: int, rounds: int, work: Path) -> dict[str, Any]:
    """All rounds of one case on every side, the order turned every round; each side's medians
    over the rounds, and how far ours are above the floor's worst."""
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for number in range(rounds):
        for side in SIDES if number % 2 == 0 else SIDES[::-1]:
            runs[side].append(measure(case, side, size, work))
    summaries = {side: _summarize(r) for side, r in runs.items()}
    floor_worst = summaries["floor"]["worst_ms"]
    return {
        "case": case.key,
        "title": case.title.format(size=size_text(size)),
        "method": case.method,
        "bytes": size,
        "sides": SIDES,
        **summaries,
        "worst_over_floor_ms": {
            side: round(summaries[side]["worst_ms"] - floor_worst, 1) for side in SIDES[1:]
        },
    }


def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    worst = [r["worst_ms"] for r in runs]
    return {
        "worst_ms": statistics.median(worst),
        "worst_min_ms": min(worst),
        "worst_max_ms": max(worst),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "calls": statistics.median(r["calls"] for r in runs),
        "big_seconds": statistics.median(r["big_seconds"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "rounds": runs,
    }


def size_text(size: int) -> str:
    """128 MiB, 64 KiB, or 1000 bytes."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"
