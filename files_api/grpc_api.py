"""The gRPC face: a thin FileService servicer, plus reflection and health for explorers."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import (
    file_pb2,
    file_service_pb2,
    file_service_pb2_grpc,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_status import rpc_status

from files_api.auth import Authenticator, Caller
from files_api.domain.naming import parse_mode
from files_api.domain.records import etag
from files_api.errors import INTERNAL_MESSAGE, DomainError, InvalidArgument, Unavailable
from files_api.observe import call_request_id, note_caller
from files_api.request_ids import REQUEST_ID

if TYPE_CHECKING:
    from files_api.domain import Files

log = logging.getLogger(__name__)

FILE_SERVICE = file_service_pb2.DESCRIPTOR.services_by_name["FileService"].full_name
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Method = Callable[[Any, Req, Caller, "dict[str, str]"], Awaitable[Resp]]
Handler = Callable[[Any, Req, Any], Awaitable[Resp]]
IF_MATCH = "if-match"
CHECK_NAME_MODE = "x-check-name-mode"


SHUTTING_DOWN = "the server is shutting down; nothing was done, try again"


class ShutdownGate:
    """Once shutdown begins, FileService calls are answered UNAVAILABLE instead of run.

    grpc.aio takes arriving calls off the transport one at a time, and `files_api.stop()` cancels
    every call that has arrived but has not been taken yet: under load, hundreds of calls sent
    before the signal would end CANCELLED, which a client cannot tell from its own
    cancellation and should not retry. Refused here they end UNAVAILABLE with nothing done,
    which clients retry. `last_call` tells `Server.stop()` when the backlog is through. The
    check sits in the per-call wrapper, so REST (which calls the servicer in process) is
    refused the same way, and costs no interceptor on every call.
    """

    def __init__(self) -> None:
        self.closed = False
        self.last_call = 0.0


@dataclasses.dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _with_metadata(status: status_pb2.Status, extra: list[tuple[str, str]]) -> grpc.Status:
    """The status as grpcio-status encodes it (details in grpc-status-details-bin), plus ours."""
    encoded = rpc_status.to_status(status)
    return _Status(encoded.code, encoded.details, (*encoded.trailing_metadata, *extra))


_SERVICE = file_service_pb2.DESCRIPTOR.services_by_name["FileService"]


def _parse(method_name: str, raw: bytes) -> Any:
    request_type = message_factory.GetMessageClass(_SERVICE.methods_by_name[method_name].input_type)
    split = _split_create(raw) if method_name == "Create" and len(raw) > SPLIT_BYTES else None
    try:
        if split is not None:
            rest, content = split
            return BigCreate(file_service_pb2.CreateFileRequest.FromString(rest), content)
        return request_type.FromString(raw)
    except DecodeError:
        raise InvalidArgument(
            f"the request is not a valid {request_type.DESCRIPTOR.full_name} message"
        ) from None


class BigCreate(NamedTuple):
    """A Create whose content was left in the received bytes rather than copied out."""

    request: file_service_pb2.CreateFileRequest  # without its content
    content: memoryview


SPLIT_BYTES = 1 << 20  # Creates bigger than this take `_split_create`'s path
_CONTENT = file_service_pb2.CreateFileRequest.DESCRIPTOR.fields_by_name["content"].number
_MAX_SPLIT_FIELDS = 4096  # a Create has a handful; more is for protobuf's parser to judge


def _split_create(raw: bytes) -> tuple[bytes, memoryview] | None:
    """The Create without its content field, and the content as a view into `raw`.

    Parsing copies a bytes field into the message and reading it copies it again: for 128 MiB
    that is ~0.1 s of memcpy on the event loop, which every other call waits for. So the
    top-level fields are walked here (tag, then a varint, 8 or 4 bytes, or a length) and only
    the small rest is parsed. The last content field wins, as in protobuf. Anything this walk
    does not expect gives None, and protobuf's parser decides about the whole message.
    """
    view = memoryview(raw)
    rest: list[memoryview] = []
    content = None
    at = 0
    try:
        while at < len(raw) and len(rest) < _MAX_SPLIT_FIELDS:
            start = at
            key, at = _varint(raw, at)
            wire = key & 7
            if wire == 0:
                _, at = _varint(raw, at)
            elif wire in (1, 5):
                at += 8 if wire == 1 else 4
            elif wire == 2:
                size, at = _varint(raw, at)
                at += size
                if key >> 3 == _CONTENT and at <= len(raw):
                    content = view[at - size : at]
                    continue
            else:
                return None
            rest.append(view[start:at])
    except IndexError:
        return None
    if at != len(raw) or content is None:
        return None
    return b"".join(rest), content


def _varint(raw: bytes, at: int) -> tuple[int, int]:
    """The base-128 varint at `at` and the offset after it; IndexError when it runs off."""
    value = shift = 0
    while shift < 64:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise IndexError("a varint longer than 10 bytes")


def _name_mode(metadata: dict[str, str]) -> str:
    """An extension: `x-check-name-mode` (PDS's check_name_mode) on Create and Update."""
    return parse_mode(metadata.get(CHECK_NAME_MODE), CHECK_NAME_MODE)


def _rpc(method: Method[Req, Resp]) -> Handler[Req, Resp]:
    """What every FileService call goes through, whether it came over gRPC or REST: authenticate,
    answer with the request id (and a File's etag) in the trailing metadata, map domain errors
    to their status with details and anything unexpected to a fixed INTERNAL (the traceback
    stays in the server log)."""

    @functools.wraps(method)
    async def handler(
        self: FileServicer, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        # Trailing metadata rides with the status the call ends with anyway: no extra frame.
        echo = [(REQUEST_ID, call_request_id(metadata.get(REQUEST_ID)))]
        gate = self.gate
        gate.last_call = time.monotonic()
        try:
            if gate.closed:
                raise Unavailable(SHUTTING_DOWN)
            if isinstance(request, bytes):  # from grpc: parsed here, so garbage is ours to answer
                request = _parse(method.__name__, request)
            caller = self.auth.authenticate(metadata.get("authorization"))
            caller = Caller(caller.subject, caller.folders, echo[0][1])
            note_caller(caller.subject, getattr(request, "folder_id", ""))
            response = await method(self, request, caller, metadata)
        except DomainError as e:
            if getattr(context, "passes_domain_errors", False):
                raise  # REST in process: the HTTP answer reads its status off the class
            await context.abort_with_status(_with_metadata(e.to_status(), echo))
        except Exception:
            log.exception("unexpected error in %s", method.__name__)
            status = status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)
            await context.abort_with_status(_with_metadata(status, echo))
        else:
            if isinstance(response, file_pb2.File):
                echo.append(("etag", etag(response)))
                note_caller("", response.folder_id)
            context.set_trailing_metadata(echo)
            return response
        raise AssertionError("abort_with_status returned")  # pragma: no cover

    return handler


class FileServicer(file_service_pb2_grpc.FileServiceServicer):
    """Decodes nothing itself: each RPC hands its request message and caller to the domain."""

    def __init__(
        self,
        files: Files,
        download_base_url: Callable[[], str],
        auth: Authenticator,
        gate: ShutdownGate | None = None,
    ) -> None:
        self._files = files
        self._download_base_url = download_base_url
        self.auth = auth
        self.gate = gate or ShutdownGate()

    @_rpc
    async def Create(
        self,
        request: file_service_pb2.CreateFileRequest | BigCreate,
        caller: Caller,
        md: dict[str, str],
    ) -> file_pb2.File:
        if isinstance(request, BigCreate):
            return await self._files.create(
                request.request, caller, _name_mode(md), request.content
            )
        return await self._files.create(request, caller, _name_mode(md))

    @_rpc
    async def Get(
        self, request: file_service_pb2.GetFileRequest, caller: Caller, _: dict[str, str]
    ) -> file_pb2.File:
        return await self._files.get(request, caller)

    @_rpc
    async def GetUrl(
        self, request: file_service_pb2.GetFileUrlRequest, caller: Caller, _: dict[str, str]
    ) -> file_service_pb2.GetFileUrlResponse:
        response, folder = await self._files.get_url(request, self._download_base_url(), caller)
        note_caller("", folder)
        return response

    @_rpc
    async def Update(
        self, request: file_service_pb2.UpdateFileRequest, caller: Caller, md: dict[str, str]
    ) -> file_pb2.File:
        return await self._files.update(request, caller, md.get(IF_MATCH), _name_mode(md))

    @_rpc
    async def Delete(
        self, request: file_service_pb2.DeleteFileRequest, caller: Caller, md: dict[str, str]
    ) -> file_service_pb2.DeleteFileResponse:
        note_caller("", await self._files.delete(request, caller, md.get(IF_MATCH)))
        return file_service_pb2.DeleteFileResponse()

    @_rpc
    async def List(  # type: ignore[override]  # the page goes out serialized already
        self, request: file_service_pb2.ListFilesRequest, caller: Caller, _: dict[str, str]
    ) -> bytes:
        return await self._files.list_page(request, caller)


def _register_reflection_v1_descriptor() -> None:
    """Puts grpc/reflection/v1/reflection.proto in the pool, so reflection can describe itself.

    The v1 protocol is the v1alpha one under a new package name (same messages, same field
    numbers); grpcio-reflection ships only v1alpha, so the v1 file is derived from it.
    """
    pool = descriptor_pool.Default()
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    old_prefix, new_prefix = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(old_prefix, new_prefix)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old_prefix, new_prefix)
            method.output_type = method.output_type.replace(old_prefix, new_prefix)
    try:
        pool.FindFileByName(proto.name)
    except KeyError:
        pool.Add(proto)


def _serialized(response: Message | bytes) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def add_services(server: grpc.aio.Server, servicer: FileServicer) -> Health:
    """FileService, health and reflection (v1alpha and v1) on one server; returns the health
    servicer so the caller can turn it NOT_SERVING on shutdown."""
    # The generated registration, except that requests arrive as bytes and are parsed in the
    # per-call wrapper: grpc's own parse failure would answer UNKNOWN with protobuf's words
    # and log a traceback. A response may be bytes already serialized (List's page).
    handlers: dict[str, grpc.RpcMethodHandler[bytes, Any]] = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name), response_serializer=_serialized
        )
        for method in _SERVICE.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FILE_SERVICE, handlers),))
    # As the generated code does: registered methods skip the generic handler lookup per call.
    server.add_registered_method_handlers(FILE_SERVICE, handlers)
    health_servicer = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _register_reflection_v1_descriptor()
    names = [
        FILE_SERVICE,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
        REFLECTION_V1,
    ]
    reflection_servicer = reflection.aio.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                REFLECTION_V1,
                {
                    "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                        reflection_servicer.ServerReflectionInfo,
                        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
                    )
                },
            )
        ]
    )
    return health_servicer


class _WatchContext:
    """A Watch call's context that reports when NOT_SERVING has gone out during shutdown."""

    def __init__(self, context: Any, health: Health) -> None:
        self._context = context
        self._health = health
        self.told_not_serving = asyncio.Event()

    async def write(self, response: health_pb2.HealthCheckResponse) -> None:
        await self._context.write(response)
        if self._health.stopping and response.status != health_pb2.HealthCheckResponse.SERVING:
            self.told_not_serving.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class Health(health.aio.HealthServicer):
    """The standard health service, except that a Watch stream ends once it has told its
    client NOT_SERVING during shutdown: left open, it would hold the server for the whole
    grace period, as `files_api.stop()` waits for every call."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = False

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        watch_context = _WatchContext(context, self)
        watching = asyncio.ensure_future(super().Watch(request, watch_context))  # type: ignore[arg-type]
        told = asyncio.ensure_future(watch_context.told_not_serving.wait())
        try:
            await asyncio.wait({watching, told}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watching, told):
                task.cancel()
            await asyncio.gather(watching, told, return_exceptions=True)


async def set_serving(health_servicer: Health, serving: bool) -> None:
    if not serving:
        health_servicer.stopping = True
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", FILE_SERVICE):
        await health_servicer.set(name, status)
