"""What every call leaves behind for operators: its context for log lines (request and trace
ids, in a contextvar), an access-log line, its metrics and its server span, each when asked
for. Instrumented at the edges, never in the domain: a grpc.aio server interceptor for gRPC,
the outermost aiohttp middleware for HTTP. When nothing is asked for, neither is installed.

gRPC goes through an interceptor rather than the servicer's per-call wrapper (`_rpc`) because
the series must cover every service on the listener (health and reflection too, as
go-grpc-prometheus does), and must see the code a call really ends with: the interceptor reads
it off the context after the handler returns or raises, so a call ended by
`context.abort_with_status` counts like any other (py-grpc-prometheus loses those, as the abort
leaves its wrapper as an exception it does not map). REST calls reach the servicer in process,
without the interceptor, and are counted once, by the HTTP middleware.
"""

from __future__ import annotations

import contextvars
import dataclasses
import inspect
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

import grpc
from aiohttp import web

from files_api.request_ids import REQUEST_ID, request_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from files_api.tracing import ServerSpans

access_log = logging.getLogger("files_api.access")


class Metrics(Protocol):
    """What the edges report to (files_api.metrics.PrometheusMetrics)."""

    def grpc_started(self, labels: tuple[str, str, str]) -> None: ...

    def grpc_handled(
        self, labels: tuple[str, str, str], code: str, seconds: float, received: int, sent: int
    ) -> None: ...

    def http_handled(
        self, face: str, method: str, route: str, status: int, seconds: float
    ) -> None: ...


# The spelling of Go's codes.Code.String(), which go-grpc-prometheus puts in `grpc_code`.
GO_CODES = {
    code: "".join(word.capitalize() for word in code.name.split("_")) for code in grpc.StatusCode
} | {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}


@dataclasses.dataclass(slots=True)
class Call:
    """One call as operators see it; the faces fill in what they learn as it runs."""

    face: str  # grpc, rest, pds, download, health
    method: str  # the gRPC method's full name, or the HTTP route template
    peer: str = ""
    request_id: str = ""
    trace_id: str = ""
    subject: str = ""
    folder: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    span: Any = None  # the call's server span and the token that made it current, if tracing
    token: object = None


CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar("call", default=None)


def call_request_id(given: str | None) -> str:
    """The `x-request-id` of the current call: the first face to ask decides it (by the rule in
    request_ids), later ones (REST's servicer, in process) get the same."""
    call = CURRENT.get()
    if call is None:
        return request_id(given)
    if not call.request_id:
        call.request_id = request_id(given)
    return call.request_id


def note_caller(subject: str, folder: str) -> None:
    call = CURRENT.get()
    if call is not None:
        call.subject = subject or call.subject
        call.folder = folder or call.folder


# Logs ------------------------------------------------------------------------------------


class _CallFields(logging.Filter):
    """Puts the current call's request and trace ids on every record logged inside it."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = CURRENT.get()
        if call is not None:
            record.request_id = call.request_id
            record.trace_id = call.trace_id
        return True


def rfc3339_ns(ns: int) -> str:
    seconds, nanos = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, nanoseconds, UTC), level, logger, message,
    the call's request_id and trace_id inside a call, an access line's fields, a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        ns = getattr(record, "created_ns", None) or int(record.created * 1e9)
        line: dict[str, Any] = {
            "time": rfc3339_ns(ns),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "trace_id"):
            if value := getattr(record, key, ""):
                line[key] = value
        line.update(getattr(record, "access", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(log_format: str, prefix: str = "") -> None:
    """The process's root handler on stderr, as text (the default) or JSON lines."""
    if log_format not in ("text", "json"):
        raise ValueError(f"--log-format is text or json, not {log_format!r}")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s %(name)s{prefix}: %(message)s")
        )
    handler.addFilter(_CallFields())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _log_access(call: Call, status: str, seconds: float) -> None:
    fields = {
        "face": call.face,
        "method": call.method,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "subject": call.subject,
        "folder": call.folder,
        "peer": call.peer,
        "request_id": call.request_id,
        "bytes_in": call.bytes_in,
        "bytes_out": call.bytes_out,
    }
    access_log.info(
        "%s %s %s %.3f ms subject=%s folder=%s peer=%s request_id=%s in=%d out=%d",
        call.face,
        call.method,
        status,
        fields["duration_ms"],
        call.subject or "-",
        call.folder or "-",
        call.peer or "-",
        call.request_id or "-",
        call.bytes_in,
        call.bytes_out,
        extra={"access": fields},
    )


# gRPC ------------------------------------------------------------------------------------


def _size(message: Any) -> int:
    if isinstance(message, bytes | bytearray | memoryview):
        return len(message)
    byte_size = getattr(message, "ByteSize", None)
    return int(byte_size()) if byte_size is not None else 0


class GrpcEdge(grpc.aio.ServerInterceptor):
    """Wraps every method's handler once (cached per method) to time and count its calls."""

    def __init__(
        self, metrics: Metrics | None, access: bool, spans: ServerSpans | None = None
    ) -> None:
        self._metrics = metrics
        self._access = access
        self._spans = spans
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = details.method
        wrapped = self._handlers.get(method)
        if wrapped is None:
            handler = await continuation(details)
            if handler is None:
                return None
            wrapped = self._handlers[method] = self._wrap(method, handler)
        return wrapped

    def _wrap(  # noqa: PLR0915 (one wrapper per kind of method, each short)
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        service, _, name = method.lstrip("/").rpartition("/")
        streams_in, streams_out = handler.request_streaming, handler.response_streaming
        kind = {
            (False, False): "unary",
            (True, False): "client_stream",
            (False, True): "server_stream",
            (True, True): "bidi_stream",
        }[(streams_in, streams_out)]
        labels = (kind, service, name)
        behavior: Any = (
            handler.unary_unary or handler.unary_stream or handler.stream_unary
        ) or handler.stream_stream
        metrics, access, spans = self._metrics, self._access, self._spans
        span_name = method.lstrip("/")  # semantic conventions: $package.$service/$method
        span_attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

        def begin(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Call, float]:
            call = Call("grpc", method, peer=context.peer() if access else "")
            CURRENT.set(call)
            if spans is not None:
                carrier = context.invocation_metadata() or ()
                call.span, call.token, call.trace_id = spans.start(
                    span_name, carrier, span_attributes
                )
            if metrics is not None:
                metrics.grpc_started(labels)
            return call, time.perf_counter()

        def end(  # noqa: PLR0917 (called in three places, always in this order)
            call: Call,
            started: float,
            context: grpc.aio.ServicerContext[Any, Any],
            failed: bool,
            received: int,
            sent: int,
        ) -> None:
            seconds = time.perf_counter() - started
            code = context.code()
            if code is None and failed and context.cancelled():
                code = grpc.StatusCode.CANCELLED
            elif code is None or isinstance(code, int):  # grpcio keeps a raw int in some paths
                code = _code_of(code, failed)
            status = GO_CODES.get(code, "Unknown")
            if metrics is not None:
                metrics.grpc_handled(labels, status, seconds, received, sent)
            if spans is not None:
                spans.end(
                    call.span,
                    call.token,
                    {"rpc.grpc.status_code": code.value[0], **_ids(call)},
                    code in SERVER_FAULTS,
                )
            if access:
                _log_access(call, status, seconds)

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, started = begin(context)
            if access:  # sizes cost a walk of the message: only for the access log
                call.bytes_in = _size(request)
            failed = True
            try:
                response = await behavior(request, context)
                if access:
                    call.bytes_out = _size(response)
                failed = False
                return response
            finally:
                end(call, started, context, failed, 1, 0 if failed else 1)

        async def requests_in(request: Any, call: Call, counts: list[int]) -> Any:
            if streams_in:
                return _counted(request, counts, call)
            counts[0], call.bytes_in = 1, _size(request)
            return request

        async def generator(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, started = begin(context)
            counts = [0, 0]
            failed = True
            try:
                async for message in behavior(await requests_in(request, call, counts), context):
                    counts[1] += 1
                    call.bytes_out += _size(message)
                    yield message
                failed = False
            finally:
                end(call, started, context, failed, counts[0], counts[1])

        async def coroutine(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call, started = begin(context)
            counts = [0, 0]
            failed = True
            try:
                response = await behavior(
                    await requests_in(request, call, counts), _Writes(context, counts, call)
                )
                if response is not None:
                    counts[1] += 1
                    call.bytes_out += _size(response)
                failed = False
                return response
            finally:
                end(call, started, context, failed, counts[0], counts[1])

        make = {
            "unary": grpc.unary_unary_rpc_method_handler,
            "client_stream": grpc.stream_unary_rpc_method_handler,
            "server_stream": grpc.unary_stream_rpc_method_handler,
            "bidi_stream": grpc.stream_stream_rpc_method_handler,
        }[kind]
        if kind == "unary":
            new_behavior: Any = unary
        elif inspect.isasyncgenfunction(behavior):
            new_behavior = generator
        else:
            new_behavior = coroutine
        return make(
            new_behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _Writes:
    """A call's context that counts the responses its handler sends with `write` (health's
    Watch answers that way, not by returning or yielding)."""

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any], counts: list[int], call: Call):
        self._context = context
        self._counts = counts
        self._call = call

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._counts[1] += 1
        self._call.bytes_out += _size(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


# The codes OpenTelemetry's semantic conventions count as a server span's error.
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _ids(call: Call) -> dict[str, str]:
    ids = {"files_api.request_id": call.request_id} if call.request_id else {}
    if call.folder:
        ids["files_api.folder_id"] = call.folder
    return ids


def _code_of(raw: int | None, failed: bool) -> grpc.StatusCode:
    if raw is None:
        return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
    for code in grpc.StatusCode:
        if code.value[0] == raw:
            return code
    return grpc.StatusCode.UNKNOWN


async def _counted(
    requests: AsyncIterator[Any], counts: list[int], call: Call
) -> AsyncIterator[Any]:
    async for message in requests:
        counts[0] += 1
        call.bytes_in += _size(message)
        yield message


# HTTP ------------------------------------------------------------------------------------

ROUTE: web.RequestKey[str] = web.RequestKey("route", str)  # a handler's own route template


def http_edge(
    metrics: Metrics | None,
    access: bool,
    faces: Callable[[web.Request], tuple[str, str]],
    spans: ServerSpans | None = None,
) -> Any:
    """The outermost middleware: `faces(request)` names the face and the route template
    (a handler may refine the template by setting `request[ROUTE]`, as REST does)."""

    @web.middleware
    async def observe(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        face, template = faces(request)
        call = Call(face, template, peer=request.remote or "")
        call.bytes_in = request.content_length or 0
        CURRENT.set(call)
        if spans is not None:
            attributes = {"http.request.method": request.method, "http.route": template}
            call.span, call.token, call.trace_id = spans.start(
                f"{request.method} {template}", request.headers.items(), attributes
            )
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            seconds = time.perf_counter() - started
            route = request.get(ROUTE, template)
            if metrics is not None:
                metrics.http_handled(face, request.method, route, status, seconds)
            if access or spans is not None:
                call_request_id(request.headers.get(REQUEST_ID))  # downloads have no other
            if spans is not None:
                call.span.update_name(f"{request.method} {route}")
                ended: dict[str, Any] = {"http.route": route, "http.response.status_code": status}
                spans.end(call.span, call.token, ended | _ids(call), status >= 500)
            if access:
                call.method = f"{request.method} {route}"
                if "response" in locals():
                    length = response.content_length  # body_length counts the headers too
                    call.bytes_out = response.body_length if length is None else length
                _log_access(call, str(status), seconds)

    return observe
