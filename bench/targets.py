"""The servers under test as the driver sees them, and their set-up.

`Target` is one server over gRPC (the floor, ours, a replica), `RestTarget` one HTTP listener
(the bare aiohttp floor, ours), `Replicas` several targets loaded side by side as one side. Each
gives h2load a `Load` (URL, payload file, headers) and checks itself with a few real calls
(`probe`); `Endpoint` and `Side` are the protocols the measurement uses. `set_up_ours` makes the
files the scenarios read and update; `serving_targets` starts processes and wraps them as targets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import re
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import timestamp_pb2

from bench import h2load, workload
from bench.processes import running

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from google.protobuf.message import Message

    from bench.processes import ServerProcess
    from bench.scenarios import Scenario
    from bench.workload import RestCall

PROBES = 5


@dataclasses.dataclass(frozen=True)
class Load:
    """What h2load sends one server in a scenario."""

    url: str
    payload: Path | None
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

    def __init__(
        self, process: ServerProcess, address: str, payload_dir: Path, name: str = ""
    ) -> None:
        self.process = process
        self.name = name or process.name
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
        if call.method == "GET":  # h2load's default method, with no body
            return Load(f"http://{self.address}{call.path}", None, (), http1=True)
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
                    if call.method == "GET":
                        connection.request("GET", call.path)
                    else:
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
                widest = max(widest, len(body) if call.method == "GET" else _widest_json(body))
        finally:
            connection.close()
        return {"ok": PROBES - len(errors), "errors": errors, "frames": bodies, "widest": widest}

    def close(self) -> None:
        pass


class Replicas:
    """Several replicas as one side: h2load runs against each at once, with the connections
    split between them, and their counts and rates add up.

    Members may share a server: `own_files` makes a member per connection, each on a file of
    its own."""

    def __init__(self, name: str, members: list[Target]) -> None:
        self.name = name
        self.members: list[Endpoint] = list(members)

    def close(self) -> None:
        for member in self.members:
            member.close()


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


def own_files(name: str, servers: list[Target], file_ids: list[str]) -> Replicas:
    """A side whose every connection updates and reads a file of its own: one member per file,
    dealt round-robin to the servers (`make_files` makes the files).

    h2load sends every connection of one run the same request, and a gRPC request names its
    file in the body, not in the URL; so each member is one h2load with one connection (`-c 1`,
    its streams as asked), all running at once, their rates added up as replicas' are. Each is
    a process of its own, which costs the client side a little more CPU than one h2load with as
    many connections: the same for every side measured this way."""
    members = []
    for number, file_id in enumerate(file_ids):
        server = servers[number % len(servers)]
        member = Target(server.process, server.address, server.payload_dir, f"{name} {number}")
        member.ids = {"update": file_id, "update_label": file_id, "get": file_id}
        members.append(member)
    return Replicas(name, members)


def make_files(target: Target, count: int) -> list[str]:
    """The ids of `count` new files made through `target`, as the scenarios' files are."""
    return [target.call("Create", workload.create_request()).id for _ in range(count)]  # type: ignore[attr-defined]


def set_up_ours(target: Target) -> None:
    """The files the scenarios read and update, and a folder with more than a page of files."""
    for key in ("update", "update_label", "get"):
        created = target.call("Create", workload.create_request())
        target.ids[key] = created.id  # type: ignore[attr-defined]
    for number in range(workload.LIST_PAGE_SIZE + 20):
        target.call(
            "Create", workload.create_request(folder_id=workload.LIST_FOLDER_ID, name=f"{number}")
        )


@contextlib.contextmanager
def serving_targets(processes: list[ServerProcess], payload_dir: Path) -> Iterator[list[Target]]:
    """The processes serving, as targets; all stopped, their channels closed, on the way out."""
    with running(*processes) as addresses:
        targets = [Target(p, a, payload_dir) for p, a in zip(processes, addresses, strict=True)]
        try:
            yield targets
        finally:
            for target in targets:
                target.close()
