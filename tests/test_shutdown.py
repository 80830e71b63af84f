"""SIGTERM under load: NOT_SERVING, new calls refused, in-flight writes finish and stay written.

The signal goes out as soon as the first call of the load is answered, with Creates of a few
MiB and Updates still queued or running. Every call must then end acknowledged (and be there
after a restart), or be refused with UNAVAILABLE and have done nothing: a call the server had
started is never cut off within the grace period, and nothing ends CANCELLED.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2_grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2

from files_api.grpc_api import FILE_SERVICE, SHUTTING_DOWN
from tests.support import health_stub, server_process

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


GRACE = 20.0
CHANNELS = 4
CREATES = 12
CREATE_BYTES = 4 * 1024 * 1024
UPDATES = 24
FOLDER = "drain"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
File = file_pb2.File
Stub = file_service_pb2_grpc.FileServiceStub


@dataclasses.dataclass
class Call:
    """One call of the load, and when the client saw it end."""

    request: fs.CreateFileRequest | fs.UpdateFileRequest
    future: Any
    answered: threading.Event  # set by the first call of the load to end
    done_at: float | None = None

    def __post_init__(self) -> None:
        self.future.add_done_callback(self._done)

    def _done(self, _: object) -> None:
        self.done_at = time.monotonic()
        self.answered.set()

    def outcome(self) -> file_pb2.File | None:
        """The acknowledged File, or None for a call refused with nothing done."""
        try:
            return self.future.result(timeout=GRACE)  # type: ignore[no-any-return]
        except grpc.RpcError as e:
            assert_refused(e)
            return None


def assert_refused(error: grpc.RpcError) -> None:
    """UNAVAILABLE, from our refusal or from a listener that is gone: safe to retry."""
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    details = error.details() or ""
    assert details == SHUTTING_DOWN or "connect" in details.lower(), details


def assert_new_calls_refused(
    grpc_address: str, http_address: str, stub: Stub, file_id: str
) -> None:
    """A call on a connection in use, one on a new connection, and one over REST."""
    with grpc.insecure_channel(grpc_address) as channel:
        new_stub = file_service_pb2_grpc.FileServiceStub(channel)
        call: Callable[[], File]
        for call in (
            lambda: stub.Get(fs.GetFileRequest(file_id=file_id), timeout=10),
            lambda: new_stub.Create(fs.CreateFileRequest(folder_id=FOLDER, content=b"late")),
        ):
            try:
                call()
            except grpc.RpcError as e:
                assert_refused(e)
            else:
                raise AssertionError("a call after NOT_SERVING was served")
    body = json.dumps({"folderId": FOLDER, "content": "bGF0ZQ=="}).encode()
    rest = urllib.request.Request(
        f"http://{http_address}/files/v1/files",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(rest, timeout=10).close()
    except urllib.error.HTTPError as e:
        assert e.code == 503
        assert json.load(e)["message"] == SHUTTING_DOWN
    except urllib.error.URLError as e:  # the HTTP listener is already closed
        assert isinstance(e.reason, ConnectionRefusedError), e
    else:
        raise AssertionError("a REST call after NOT_SERVING was served")


def start_load(
    stubs: list[Stub], shared_id: str, rng: random.Random, answered: threading.Event
) -> list[Call]:
    """Creates of a few MiB and Updates of one label each, spread over the channels."""
    calls: list[Call] = []
    for i in range(max(CREATES, UPDATES)):
        stub = stubs[i % len(stubs)]
        if i < CREATES:
            create = fs.CreateFileRequest(
                folder_id=FOLDER, name=f"big-{i}", content=rng.randbytes(CREATE_BYTES)
            )
            calls.append(Call(create, stub.Create.future(create, timeout=GRACE), answered))
        if i < UPDATES:
            update = fs.UpdateFileRequest(
                file_id=shared_id,
                update_mask=field_mask_pb2.FieldMask(paths=[f"labels.k{i}"]),
                labels={f"k{i}": f"v{i}"},
            )
            calls.append(Call(update, stub.Update.future(update, timeout=GRACE), answered))
    return calls


def check_after_restart(
    store: str, shared_id: str, calls: list[Call], results: list[File | None]
) -> None:
    """Every acknowledged write is there as acknowledged; a refused one left nothing."""
    acknowledged = {
        result.id: call.request
        for call, result in zip(calls, results, strict=True)
        if result is not None and isinstance(call.request, fs.CreateFileRequest)
    }
    answers = {r.id: r for r in results if r is not None and r.id != shared_id}
    with server_process("--store", store) as again, grpc.insecure_channel(again.grpc_address) as ch:
        stub = file_service_pb2_grpc.FileServiceStub(ch)
        listed = stub.List(fs.ListFilesRequest(folder_id=FOLDER, page_size=1000)).files
        assert {f.id for f in listed} == {shared_id, *acknowledged}  # refused: nothing made
        for file in listed:
            if file.id == shared_id:
                continue
            assert file == answers[file.id]
            url = stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id)).url
            with urllib.request.urlopen(url, timeout=30) as response:
                assert response.read() == acknowledged[file.id].content
        labels = stub.Get(fs.GetFileRequest(file_id=shared_id)).labels
    for call, result in zip(calls, results, strict=True):
        if isinstance(call.request, fs.UpdateFileRequest):
            ((key, value),) = call.request.labels.items()
            # Acknowledged: there. Refused: nothing done.
            assert labels.get(key) == (value if result is not None else None), key


# Replicas restart one at a time on PostgreSQL, a lone server on SQLite: both must drain.
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigterm_drains_in_flight_writes_and_refuses_new_calls(
    backend: str, store_url: str
) -> None:
    rng = random.Random(7)
    with server_process("--store", store_url, "--shutdown-grace", str(GRACE)) as server:
        channels = [grpc.insecure_channel(server.grpc_address) for _ in range(CHANNELS)]
        try:
            stub = file_service_pb2_grpc.FileServiceStub(channels[0])
            shared = stub.Create(fs.CreateFileRequest(folder_id=FOLDER, content=b"shared"))
            shared_id = shared.id
            watch = health_stub(channels[0]).Watch(
                health_pb2.HealthCheckRequest(service=FILE_SERVICE), timeout=60
            )
            assert next(watch).status == SERVING

            stubs = [file_service_pb2_grpc.FileServiceStub(c) for c in channels]
            answered = threading.Event()
            calls = start_load(stubs, shared_id, rng, answered)
            assert answered.wait(timeout=GRACE)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            assert next(watch).status == NOT_SERVING
            watch.cancel()  # an open Watch would hold the drain for the whole grace period
            assert_new_calls_refused(server.grpc_address, server.http_address, stub, shared_id)
            results = [call.outcome() for call in calls]
        finally:
            for channel in channels:
                channel.close()
        assert server.process.wait(timeout=GRACE + 10) == 0
        stopped_after = time.monotonic() - signalled

    log = server.log_text()
    assert "stopped" in log
    assert "Traceback" not in log
    assert stopped_after < GRACE
    if backend == "sqlite":
        # The last connection to close folds the WAL back into the database: a clean close.
        assert not Path(f"{store_url.removeprefix('sqlite:///')}-wal").exists()

    drained = [
        c
        for c, result in zip(calls, results, strict=True)
        if result is not None and c.done_at is not None and c.done_at > signalled
    ]
    assert drained, "every call was answered before the signal: nothing was left to drain"
    refused = results.count(None)
    print(
        f"\n{len(calls)} calls: {len(calls) - refused} acknowledged, {len(drained)} of them"
        f" after SIGTERM; {refused} refused; stopped {stopped_after:.2f}s after the signal"
    )

    check_after_restart(store_url, shared_id, calls, results)


def test_a_call_still_running_when_the_grace_period_ends_is_cut_off() -> None:
    """The grace period bounds the drain: a call that would never end does not keep the
    process alive past it."""
    grace = 1.0
    with server_process("--store", "memory:", "--shutdown-grace", str(grace)) as server:
        release = threading.Event()

        def never_sent() -> Iterator[fs.CreateFileRequest]:
            # The call's headers go out at once; its message never does.
            release.wait(timeout=60)
            yield from ()

        with grpc.insecure_channel(server.grpc_address) as channel:
            create = channel.stream_unary(
                f"/{FILE_SERVICE}/Create",
                request_serializer=fs.CreateFileRequest.SerializeToString,
                response_deserializer=file_pb2.File.FromString,
            )
            stalled = create.future(never_sent(), timeout=60)
            # A round trip on the same connection, after the stalled call's headers: the
            # server has taken that call by the time this one is answered.
            health_stub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert server.process.wait(timeout=grace + 10) == 0
            stopped_after = time.monotonic() - signalled
            release.set()
            try:
                stalled.result(timeout=10)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            else:
                raise AssertionError("the stalled call succeeded")
    assert grace <= stopped_after < grace + 3
    assert "stopped" in server.log_text()
    assert "Traceback" not in server.log_text()
