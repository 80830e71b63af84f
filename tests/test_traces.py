"""OpenTelemetry traces from a real server process to an in-test OTLP receiver, over
HTTP/protobuf (a small aiohttp app) and gRPC (the trace service from opentelemetry-proto):
server spans continue the caller's `traceparent`, carry the semantic-convention attributes,
the request id and the folder, and have the store's work as children. Off, nothing is sent;
pointed at a closed port, calls still succeed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from aiohttp import web
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.support import server_process
from tests.test_workers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
REST_PARENT_ID = "00f067aa0ba902b8"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER


class Receiver:
    """The spans an OTLP receiver has been sent, as plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self.resources: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def take(self, raw: bytes) -> bytes:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(raw)
        with self._lock:
            self.requests += 1
            for resource_spans in request.resource_spans:
                self.resources.append(_attributes(resource_spans.resource.attributes))
                for scope in resource_spans.scope_spans:
                    self.spans.extend(
                        {
                            "name": span.name,
                            "kind": span.kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "attributes": _attributes(span.attributes),
                        }
                        for span in scope.spans
                    )
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["name"] == name]

    def wait_for(self, *names: str) -> None:
        deadline = time.monotonic() + 20  # batches go out every 100 ms here
        while not all(self.named(n) for n in names) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(self.named(n) for n in names), [s["name"] for s in self.spans]


def _attributes(pairs: Any) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@contextlib.contextmanager
def http_receiver() -> Iterator[tuple[Receiver, str]]:
    """POST /v1/traces with an ExportTraceServiceRequest, on a loop of its own."""
    receiver = Receiver()

    async def export(request: web.Request) -> web.Response:
        body = receiver.take(await request.read())
        return web.Response(body=body, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", export)
    runner = web.AppRunner(app)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.receiver.take(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def grpc_receiver() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _TraceService(receiver), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def _env(protocol: str, endpoint: str, exporter: str = "otlp") -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": exporter,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


RECEIVERS = {"http/protobuf": http_receiver, "grpc": grpc_receiver}
SERVICE = "yandex.cloud.ai.files.v1.FileService"
CREATE = f"{SERVICE}/Create"
REST_GET = "GET /files/v1/files/{file_id}"
DOWNLOAD = "GET /files/v1/files/{file_id}/content"


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_spans_continue_the_callers_trace(protocol: str) -> None:
    with (
        RECEIVERS[protocol]() as (receiver, endpoint),
        server_process("--store", "memory:", env=_env(protocol, endpoint)) as server,
    ):
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            made = stub.Create(
                fs.CreateFileRequest(folder_id="traced", name="t.txt", content=b"traced"),
                metadata=(
                    ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),
                    ("x-request-id", "traced-1"),
                ),
            )
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=made.id)).url
        request = urllib.request.Request(
            f"http://{server.http_address}/files/v1/files/{made.id}",
            headers={"traceparent": f"00-{TRACE_ID}-{REST_PARENT_ID}-01"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["id"] == made.id
        urllib.request.urlopen(url, timeout=10).close()
        receiver.wait_for(CREATE, REST_GET, DOWNLOAD, "store.create", "store.get")

    [create] = receiver.named(CREATE)
    assert (create["trace_id"], create["parent_id"], create["kind"]) == (
        TRACE_ID,
        PARENT_ID,
        SERVER_KIND,
    )
    assert create["attributes"] == {
        "rpc.system": "grpc",
        "rpc.service": "yandex.cloud.ai.files.v1.FileService",
        "rpc.method": "Create",
        "rpc.grpc.status_code": 0,
        "files_api.request_id": "traced-1",
        "files_api.folder_id": "traced",
    }
    [store_create] = receiver.named("store.create")
    assert (store_create["trace_id"], store_create["parent_id"]) == (TRACE_ID, create["span_id"])

    [rest] = receiver.named(REST_GET)
    assert (rest["trace_id"], rest["parent_id"], rest["kind"]) == (
        TRACE_ID,
        REST_PARENT_ID,
        SERVER_KIND,
    )
    assert rest["attributes"]["http.request.method"] == "GET"
    assert rest["attributes"]["http.route"] == "/files/v1/files/{file_id}"
    assert rest["attributes"]["http.response.status_code"] == 200
    assert rest["attributes"]["files_api.folder_id"] == "traced"
    assert rest["attributes"]["files_api.request_id"]
    rest_reads = [s for s in receiver.named("store.get") if s["parent_id"] == rest["span_id"]]
    assert rest_reads

    [download] = receiver.named(DOWNLOAD)
    assert download["parent_id"] == ""  # no traceparent: a trace of its own
    assert download["attributes"]["http.response.status_code"] == 200
    assert {r.get("service.name") for r in receiver.resources} == {"files-api"}


def test_every_face_names_the_folder_on_its_span() -> None:
    """Calls that name only a file (GetUrl, Delete, a download) carry the folder the file was
    found in; PDS calls carry their drive."""
    with (
        http_receiver() as (receiver, endpoint),
        server_process("--store", "memory:", env=_env("http/protobuf", endpoint)) as server,
    ):
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            made = stub.Create(fs.CreateFileRequest(folder_id="deep", content=b"x"))
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=made.id)).url
            urllib.request.urlopen(url, timeout=10).close()
            pds = urllib.request.Request(
                f"http://{server.http_address}/v2/file/get",
                data=json.dumps({"drive_id": "deep", "file_id": made.id}).encode(),
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(pds, timeout=10).close()
            stub.Delete(fs.DeleteFileRequest(file_id=made.id))
        names = [f"{SERVICE}/GetUrl", f"{SERVICE}/Delete", DOWNLOAD, "POST /v2/file/{operation}"]
        receiver.wait_for(*names)
    for name in names:
        [span] = receiver.named(name)
        assert span["attributes"]["files_api.folder_id"] == "deep", name


def test_no_span_when_tracing_is_off() -> None:
    with (
        http_receiver() as (receiver, endpoint),
        server_process("--store", "memory:", env=_env("http/protobuf", endpoint, "none")) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        for _ in range(5):
            stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
        time.sleep(1)  # ten batch intervals, had tracing been on
    assert receiver.requests == 0


@pytest.mark.parametrize("protocol", list(RECEIVERS))
def test_a_closed_collector_neither_fails_nor_holds_calls(protocol: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with (
        server_process("--store", "memory:", env=_env(protocol, closed)) as server,
        grpc.insecure_channel(server.grpc_address) as channel,
    ):
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        for n in range(50):
            # The bound is generous; an export in the call's path would wait for its timeout
            # (10 s) and retries.
            stub.Create(fs.CreateFileRequest(folder_id="f", content=b"%d" % n), timeout=5)
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
    assert "Traceback" not in server.log_text()
