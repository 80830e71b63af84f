"""Raw-wire abuse and deadlines against `python -m server`, as a process.

Frames are written by hand with the `h2` package (an HTTP/2 state machine that sends whatever it
is told), so the server meets what no well-behaved client sends: random bytes as a request,
truncated and oversized length prefixes, a compressed flag with no encoding, unknown methods,
metadata no client library would let through, a client that resets halfway through a 20 MiB
Create; and on the HTTP listener, requests its parser refuses (folded or NUL-bearing headers,
request smuggling shapes, 100 KB lines). After each abuse a normal client still gets correct
answers, and the process log holds no traceback. Deadlines: Creates and Updates cancelled at
every stage leave either the whole change or none of it, on every backend (checked after a
restart for the persistent ones).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import socket
import struct
import urllib.request
from typing import TYPE_CHECKING

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from google.protobuf import message as protobuf_message
from grpc_health.v1 import health_pb2

from tests.support import health_stub, server_process

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from tests.support import ServerProcess

SERVICE = "/yandex.cloud.ai.files.v1.FileService/"
MIB = 1024 * 1024
OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 3, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL = 8, 12, 13
LEAKS = ("<class", "Error parsing", "Traceback", "google.protobuf", "DecodeError", "Exception")


def frame(message: bytes, *, length: int | None = None, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message; `length` may lie about the size."""
    size = len(message) if length is None else length
    return struct.pack(">BI", 1 if compressed else 0, size) + message


@dataclasses.dataclass
class Answer:
    headers: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    trailers: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    data: bytes = b""
    reset: int | None = None
    ended: bool = False

    @property
    def grpc_status(self) -> int | None:
        """From the trailers, or from the headers of a trailers-only answer."""
        value = self.trailers.get(b"grpc-status", self.headers.get(b"grpc-status"))
        return None if value is None else int(value)

    @property
    def grpc_message(self) -> str:
        value = self.trailers.get(b"grpc-message", self.headers.get(b"grpc-message", b""))
        return value.decode("utf-8", "replace")


class RawClient:
    """One HTTP/2 connection that sends exactly what it is told (no header validation)."""

    def __init__(self, address: str, timeout: float = 10) -> None:
        host, port = address.rsplit(":", 1)
        self.address = address
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                validate_inbound_headers=False,
            )
        )
        self.conn.initiate_connection()
        self.answers: dict[int, Answer] = {}
        self.closed = False
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(
        self, path: str, metadata: Sequence[tuple[bytes, bytes]] = (), content_type: bytes = b""
    ) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", self.address.encode()),
            (b"content-type", content_type or b"application/grpc"),
            (b"te", b"trailers"),
            *metadata,
        ]
        self.conn.send_headers(stream, headers)
        self.answers[stream] = Answer()
        self._flush()
        return stream

    def send(self, stream: int, data: bytes, end: bool = False) -> bool:
        """Sends within flow control; False if the server ended the stream first."""
        view = memoryview(data)
        while view:
            if self.answers[stream].ended or self.answers[stream].reset is not None:
                return False
            window = min(
                self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                self._receive()
                continue
            self.conn.send_data(stream, bytes(view[:window]))
            view = view[window:]
            self._flush()
        if end:
            self.conn.end_stream(stream)
            self._flush()
        return True

    def end(self, stream: int) -> None:
        self.conn.end_stream(stream)
        self._flush()

    def reset(self, stream: int) -> None:
        self.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        self._flush()

    def _receive(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            self.closed = True
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            answer = self.answers.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and answer:
                answer.headers.update(event.headers)
            elif isinstance(event, h2.events.TrailersReceived) and answer:
                answer.trailers.update(event.headers)
            elif isinstance(event, h2.events.DataReceived) and answer:
                answer.data += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and answer:
                answer.ended = True
            elif isinstance(event, h2.events.StreamReset) and answer:
                answer.reset = int(event.error_code)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.closed = True
        self._flush()

    def answer(self, stream: int) -> Answer:
        """Waits (up to the socket timeout) for the stream to end or be reset."""
        answer = self.answers[stream]
        while not (answer.ended or answer.reset is not None or self.closed):
            self._receive()
        return answer

    def call(self, path: str, body: bytes, metadata: Sequence[tuple[bytes, bytes]] = ()) -> Answer:
        stream = self.start(path, metadata)
        self.send(stream, body, end=True)
        return self.answer(stream)

    def abort(self) -> None:
        """Drops the connection with a TCP reset, as a crashed client would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def raw_client(address: str, timeout: float = 10) -> Iterator[RawClient]:
    client = RawClient(address, timeout)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    store = f"sqlite:///{tmp_path_factory.mktemp('wire')}/files.db"
    with server_process("--store", store) as running:
        yield running


@contextlib.contextmanager
def abuse(proc: ServerProcess) -> Iterator[None]:
    """After the block: the server still serves correctly, and logged no traceback meanwhile
    (checked only when the block itself passed, so a failure is reported once)."""
    mark = len(proc.log)
    yield
    assert_serving(proc)
    logged = "".join(proc.log[mark:])
    assert "Traceback" not in logged, logged


def assert_serving(proc: ServerProcess) -> None:
    """A well-behaved client gets correct answers: health, Create, Get, download, Delete."""
    with grpc.insecure_channel(proc.grpc_address) as channel:
        health = health_stub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        created = stub.Create(
            fs.CreateFileRequest(folder_id="canary", name="canary.txt", content=b"still here"),
            timeout=10,
        )
        assert stub.Get(fs.GetFileRequest(file_id=created.id), timeout=10) == created
        url = stub.GetUrl(fs.GetFileUrlRequest(file_id=created.id), timeout=10).url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"still here"
        stub.Delete(fs.DeleteFileRequest(file_id=created.id), timeout=10)


REQUESTS: dict[str, type[protobuf_message.Message]] = {
    "Create": fs.CreateFileRequest,
    "Get": fs.GetFileRequest,
    "GetUrl": fs.GetFileUrlRequest,
    "Update": fs.UpdateFileRequest,
    "Delete": fs.DeleteFileRequest,
    "List": fs.ListFilesRequest,
}
CRAFTED = [
    b"\xff",  # a tag that never ends
    b"\x0a\xff\xff\xff\xff\x0f",  # a string field claiming 4 GiB
    b"\x0a\x05ab",  # a string field cut short
    b"\x0a\x02\xff\xfe",  # field 1 (a string in every request) with bad UTF-8
    b"\x0a\x03\xed\xa0\x80",  # field 1 holding an encoded lone surrogate
    b"\x0b",  # a group start that never ends
    b"\x0c",  # a group end with no start
    b"\x08" + b"\xff" * 10 + b"\x01",  # a varint longer than 10 bytes
    b"\x0f",  # wire type 7 does not exist
    b"\x00",  # field number 0
    b"\x12\x80\x80\x80\x80\x10",  # a length past 2 GiB
]


def random_payloads(method: str, count: int = 24) -> list[bytes]:
    rng = random.Random(f"wire-{method}")
    return CRAFTED + [rng.randbytes(rng.randint(1, 200)) for _ in range(count)]


@pytest.mark.parametrize("method", sorted(REQUESTS))
def test_random_bytes_as_a_request(proc: ServerProcess, method: str) -> None:
    """A message that parses is answered by the rules; one that does not is INVALID_ARGUMENT
    (the servicer parses the bytes itself, so never gRPC's INTERNAL or UNKNOWN), with a message
    that shows nothing of the server's insides."""
    with abuse(proc), grpc.insecure_channel(proc.grpc_address) as channel:
        rpc = channel.unary_unary(
            SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        for payload in random_payloads(method):
            try:
                REQUESTS[method].FromString(payload)
            except protobuf_message.DecodeError:
                parses = False
            else:
                parses = True
            try:
                rpc(payload, timeout=10)
            except grpc.RpcError as e:
                code, details = e.code(), e.details() or ""
            else:
                code, details = grpc.StatusCode.OK, ""
            if parses:
                assert code in (
                    grpc.StatusCode.OK,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    grpc.StatusCode.NOT_FOUND,
                ), (payload, code, details)
            else:
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (payload, code, details)
                assert not any(leak in details for leak in LEAKS), (payload, details)


def test_truncated_message_with_a_deadline_ends_in_deadline_exceeded(proc: ServerProcess) -> None:
    """The prefix promises 1000 bytes, 10 come, then END_STREAM: the call cannot complete, and
    ends when its deadline does."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(
                SERVICE + "Get",
                frame(fs.GetFileRequest(file_id="abcdefgh").SerializeToString(), length=1000),
                [(b"grpc-timeout", b"500m")],
            )
        assert answer.grpc_status in (DEADLINE_EXCEEDED, INTERNAL), answer


def test_truncated_messages_without_a_deadline_block_nobody(proc: ServerProcess) -> None:
    """Without a deadline such a call stays open until its client goes (grpcio answers nothing):
    ten of them, held open, keep no one else from being served; then the clients vanish."""
    with abuse(proc):
        clients = [RawClient(proc.grpc_address) for _ in range(10)]
        try:
            for i, client in enumerate(clients):
                stream = client.start(SERVICE + ("Get" if i % 2 else "Create"))
                client.send(stream, frame(b"\x0a\x08abcdefgh", length=1000), end=i % 3 == 0)
            assert_serving(proc)
        finally:
            for client in clients:
                client.abort()


def test_empty_unary_request_with_a_deadline(proc: ServerProcess) -> None:
    """END_STREAM with no message at all for a unary method."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(SERVICE + "Get", b"", [(b"grpc-timeout", b"500m")])
        assert answer.grpc_status in (DEADLINE_EXCEEDED, INTERNAL, INVALID_ARGUMENT), answer


@pytest.mark.parametrize("length", [129 * MIB + 1, 200 * MIB, 2**32 - 1])
def test_oversized_length_prefix_is_resource_exhausted(proc: ServerProcess, length: int) -> None:
    """Refused from the prefix alone: the server does not wait for (or buffer) the bytes."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            stream = client.start(SERVICE + "Create")
            client.send(stream, frame(b"\x0a\x01f", length=length))
            answer = client.answer(stream)
        assert answer.grpc_status == RESOURCE_EXHAUSTED, answer


def test_compressed_flag_without_an_encoding(proc: ServerProcess) -> None:
    """The one malformed request answered INTERNAL: gRPC core refuses the frame before any
    bytes reach the servicer, which is where a request that does not parse is answered
    INVALID_ARGUMENT (test_random_bytes_as_a_request)."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(SERVICE + "Get", frame(b"\x0a\x01a", compressed=True))
        assert answer.grpc_status == INTERNAL, answer


@pytest.mark.parametrize("encoding", [b"nope", b"br"])
def test_an_unknown_grpc_encoding_is_internal(proc: ServerProcess, encoding: bytes) -> None:
    """gRPC core answers it before the servicer sees the call, as the README says."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(
                SERVICE + "Get",
                frame(b"\x0a\x01a", compressed=True),
                [(b"grpc-encoding", encoding)],
            )
        assert answer.grpc_status == INTERNAL, answer
        assert answer.headers[b"grpc-message"] == b"Error parsing 'grpc-encoding' metadata"


def test_a_corrupt_gzip_message_is_internal(proc: ServerProcess) -> None:
    """gRPC core fails to inflate it before the servicer sees the call, as the README says."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(
                SERVICE + "Get",
                frame(b"not gzip at all", compressed=True),
                [(b"grpc-encoding", b"gzip")],
            )
        assert answer.grpc_status == INTERNAL, answer


def test_two_messages_for_a_unary_method(proc: ServerProcess) -> None:
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            message = frame(fs.GetFileRequest(file_id="a").SerializeToString())
            answer = client.call(SERVICE + "Get", message * 2)
        assert answer.grpc_status in (NOT_FOUND, INTERNAL, INVALID_ARGUMENT), answer


@pytest.mark.parametrize(
    "path",
    [
        SERVICE + "Nope",
        SERVICE + "get",
        SERVICE,
        "/yandex.cloud.ai.files.v1.FileService",
        "/nope.Service/Get",
        "/",
        "/../../etc/passwd",
        "/yandex.cloud.ai.files.v1.FileService/Get/../Delete",
        "/grpc.health.v1.Health/Nope",
    ],
)
def test_unknown_methods_are_unimplemented(proc: ServerProcess, path: str) -> None:
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            answer = client.call(path, frame(b""))
        assert answer.grpc_status == UNIMPLEMENTED, answer


def test_unknown_method_through_grpc_itself(proc: ServerProcess) -> None:
    with abuse(proc):
        with grpc.insecure_channel(proc.grpc_address) as channel:
            rpc: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(SERVICE + "Nope")
            with pytest.raises(grpc.RpcError) as e:
                rpc(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    "content_type", [b"application/json", b"text/html", b"application/grpc-web", b"garbage"]
)
def test_not_grpc_content_types(proc: ServerProcess, content_type: bytes) -> None:
    """grpc-core (1.85) serves the call whatever the content-type says; a 415 would do too."""
    with abuse(proc):
        with raw_client(proc.grpc_address) as client:
            stream = client.start(SERVICE + "Get", content_type=content_type)
            client.send(stream, frame(b"\x0a\x01a"), end=True)
            answer = client.answer(stream)
        assert answer.headers.get(b":status") == b"415" or answer.grpc_status == NOT_FOUND, answer


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + random.Random(1).randbytes(64),
        random.Random(2).randbytes(256),
        b"\x00" * 1024,
    ],
    ids=["http1", "preface-then-noise", "noise", "zeros"],
)
def test_garbage_connections_are_dropped(proc: ServerProcess, garbage: bytes) -> None:
    with abuse(proc):
        host, port = proc.grpc_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(garbage)
            with contextlib.suppress(OSError):
                while sock.recv(1 << 16):
                    pass


def create_frame(size: int) -> bytes:
    request = fs.CreateFileRequest(folder_id="half-sent", name="half.bin", content=b"\x5a" * size)
    return frame(request.SerializeToString())


def assert_folder_empty(proc: ServerProcess, folder: str) -> None:
    with grpc.insecure_channel(proc.grpc_address) as channel:
        listed = file_service_pb2_grpc.FileServiceStub(channel).List(
            fs.ListFilesRequest(folder_id=folder), timeout=10
        )
    assert list(listed.files) == []


def test_client_vanishes_halfway_through_a_20_mib_create(proc: ServerProcess) -> None:
    with abuse(proc):
        body = create_frame(20 * MIB)
        for _ in range(3):
            client = RawClient(proc.grpc_address)
            stream = client.start(SERVICE + "Create")
            client.send(stream, body[: len(body) // 2])
            client.abort()
        assert_folder_empty(proc, "half-sent")


def test_client_resets_the_stream_halfway_and_goes_on(proc: ServerProcess) -> None:
    """RST_STREAM halfway through a 20 MiB Create; the same connection then makes a good call."""
    with abuse(proc):
        body = create_frame(20 * MIB)
        with raw_client(proc.grpc_address) as client:
            stream = client.start(SERVICE + "Create")
            client.send(stream, body[: len(body) // 2])
            client.reset(stream)
            answer = client.call(SERVICE + "List", frame(b"\x0a\x09half-sent"))
        assert answer.grpc_status == OK, answer
        assert answer.data == frame(b"")  # an empty ListFilesResponse: nothing was created
        assert_folder_empty(proc, "half-sent")


def test_request_id_that_is_no_valid_header_value(proc: ServerProcess) -> None:
    """grpc-core hands such metadata to the servicer; echoing it back as x-request-id must not
    turn a successful Create into INTERNAL (with the file created anyway) or log a traceback."""
    with abuse(proc):
        request = fs.CreateFileRequest(folder_id="bad-request-id", content=b"x")
        statuses = []
        for value in [b"a\x01b", b"a\x7fb", b"tab\there-and-\x1f"]:
            with raw_client(proc.grpc_address) as client:
                answer = client.call(
                    SERVICE + "Create",
                    frame(request.SerializeToString()),
                    [(b"x-request-id", value)],
                )
            statuses.append(answer.grpc_status)
        with grpc.insecure_channel(proc.grpc_address) as channel:
            listed = file_service_pb2_grpc.FileServiceStub(channel).List(
                fs.ListFilesRequest(folder_id="bad-request-id"), timeout=10
            )
        # Each answer tells the truth about whether its file exists.
        assert len(listed.files) == statuses.count(OK), statuses
        assert set(statuses) <= {OK, INVALID_ARGUMENT}, statuses


def test_metadata_that_is_not_utf8(proc: ServerProcess) -> None:
    """Latin-1 bytes in x-request-id and authorization: answered normally, no traceback."""
    with abuse(proc):
        for key in [b"x-request-id", b"authorization", b"x-custom"]:
            with raw_client(proc.grpc_address) as client:
                answer = client.call(
                    SERVICE + "Get",
                    frame(fs.GetFileRequest(file_id="nothing").SerializeToString()),
                    [(key, b"\xff\xfe caf\xe9")],
                )
            assert answer.grpc_status in (NOT_FOUND, INVALID_ARGUMENT), (key, answer)


# --------------------------------------------------------------------------------------------
# Deadlines: whatever moment a call is cancelled at, all of it happened or none of it.

TIMEOUTS = [0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
BIG = random.Random(20).randbytes(20 * MIB)


def _attempt_creates(address: str) -> dict[str, bool]:
    """One 20 MiB Create per timeout; which names the server acknowledged."""
    acknowledged = {}
    with grpc.insecure_channel(
        address,
        options=[("grpc.max_send_message_length", 64 * MIB)],
    ) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        stub.List(fs.ListFilesRequest(folder_id="deadline"), timeout=10)  # connected
        for timeout in TIMEOUTS:
            name = f"t{timeout}"
            try:
                stub.Create(
                    fs.CreateFileRequest(folder_id="deadline", name=name, content=BIG),
                    timeout=timeout,
                )
            except grpc.RpcError as e:
                assert e.code() in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.CANCELLED,
                ), e
                acknowledged[name] = False
            else:
                acknowledged[name] = True
    return acknowledged


def _attempt_updates(address: str, file_id: str) -> None:
    """Updates of name and a label together, each cancelled early: the two stay in step."""
    with grpc.insecure_channel(address) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        for i in range(40):
            with contextlib.suppress(grpc.RpcError):
                stub.Update(
                    fs.UpdateFileRequest(
                        file_id=file_id,
                        update_mask=field_mask_pb2.FieldMask(paths=["name", "labels.step"]),
                        name=f"step-{i}",
                        labels={"step": str(i)},
                    ),
                    timeout=0.0005 * (i % 8 + 1),
                )


def _check_consistent(address: str, acknowledged: dict[str, bool], file_id: str) -> None:
    with grpc.insecure_channel(
        address, options=[("grpc.max_receive_message_length", 64 * MIB)]
    ) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        files = list(stub.List(fs.ListFilesRequest(folder_id="deadline"), timeout=30).files)
        names = [f.name for f in files if f.id != file_id]
        assert len(names) == len(set(names)), names
        for name, acked in acknowledged.items():
            if acked:
                assert name in names, f"{name} was acknowledged but is gone"
        for file in files:
            if file.id == file_id:
                continue
            assert stub.Get(fs.GetFileRequest(file_id=file.id), timeout=10) == file
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id), timeout=10).url
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.read() == BIG, f"{file.name}: content is not whole"
        stepped = stub.Get(fs.GetFileRequest(file_id=file_id), timeout=10)
        step = stepped.labels["step"]
        assert stepped.name == f"step-{step}", (stepped.name, dict(stepped.labels))


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres"])
def test_cancelled_calls_leave_all_or_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "memory":
        store = "memory:"
    elif backend == "sqlite":
        store = f"sqlite:///{tmp_path / 'files.db'}"
    else:
        store = str(request.getfixturevalue("postgres_database"))
    with server_process("--store", store) as first:
        with grpc.insecure_channel(first.grpc_address) as channel:
            stepped = file_service_pb2_grpc.FileServiceStub(channel).Create(
                fs.CreateFileRequest(
                    folder_id="deadline", name="step-start", labels={"step": "start"}, content=b"x"
                ),
                timeout=10,
            )
        acknowledged = _attempt_creates(first.grpc_address)
        _attempt_updates(first.grpc_address, stepped.id)
        if backend == "memory":
            assert_serving(first)
            _check_consistent(first.grpc_address, acknowledged, stepped.id)
        log = first.log_text()
    # SIGTERM lets in-flight calls finish; what the store holds after a restart is what counts.
    if backend != "memory":
        with server_process("--store", store) as second:
            _check_consistent(second.grpc_address, acknowledged, stepped.id)
            assert_serving(second)
            log += second.log_text()
    assert "Traceback" not in log, log


# --------------------------------------------------------------------------------------------
# The HTTP listener, below the application: requests its parser refuses never reach our code,
# but the answer must still be a plain 4xx, and the log must stay free of tracebacks.

MALFORMED_HTTP = {
    "header folded onto a second line": b"X-Request-Id: a\r\n b\r\n",
    "NUL in a header value": b"X-Request-Id: a\x00b\r\n",
    "bare CR in a header value": b"X-Request-Id: a\rb\r\n",
    "DEL in a header value": b"X-Request-Id: a\x7fb\r\n",
    "Content-Length with Transfer-Encoding": (
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    ),
    "two Content-Lengths": b"Content-Length: 1\r\nContent-Length: 2\r\n",
    "a 100 KB header": b"X-Big: " + b"a" * 100_000 + b"\r\n",
}


def http_exchange(proc: ServerProcess, request: bytes) -> bytes:
    host, port = proc.http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(1 << 16):
                received += chunk
    return received


@pytest.mark.parametrize("headers", list(MALFORMED_HTTP.values()), ids=list(MALFORMED_HTTP))
def test_malformed_http_requests_are_400_without_a_traceback(
    proc: ServerProcess, headers: bytes
) -> None:
    with abuse(proc):
        answer = http_exchange(
            proc,
            b"GET /files/v1/files/abc HTTP/1.1\r\nHost: test\r\n"
            + headers
            + b"Connection: close\r\n\r\n",
        )
        assert answer.split(b" ", 2)[1:2] == [b"400"], answer[:300]


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /files/v1/files?folderId=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: t\r\n\r\n",
        b"POST /files/v1/files HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["100-KB-request-line", "no-method", "HTTP-9.9", "bad-chunk-size"],
)
def test_malformed_http_request_lines_are_4xx_without_a_traceback(
    proc: ServerProcess, request_bytes: bytes
) -> None:
    with abuse(proc):
        answer = http_exchange(proc, request_bytes)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]
