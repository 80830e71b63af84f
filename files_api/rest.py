"""REST over aiohttp: match a route, transcode, call an Invoker, answer JSON.

Two invokers: `ServicerInvoker` calls our servicer in process (no network hop, same loop) and
`ChannelInvoker` forwards to any gRPC server (the standalone gateway).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam
from google.protobuf import message_factory
from google.rpc import code_pb2, status_pb2

from files_api.auth import CHALLENGE
from files_api.bodies import MAX_FORM_PARTS, read_body, require_identity
from files_api.errors import INTERNAL_MESSAGE, MAX_MESSAGE_BYTES, DomainError, clip, http_status
from files_api.observe import ROUTE, call_request_id
from files_api.request_ids import REQUEST_ID
from files_api.transcoder import BadRequest, HttpCall, RpcFailure, decode, encode, encode_status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from google.protobuf.descriptor import MethodDescriptor
    from google.protobuf.message import Message

    from files_api.transcoder import Invoker, Route

log = logging.getLogger(__name__)

_STATUS_DETAILS = "grpc-status-details-bin"


def _status(code: int, message: str) -> status_pb2.Status:
    """A status of ours; its message may echo the request, so it is bounded as a domain
    error's is (and a lone surrogate from the JSON is written as its escape)."""
    return status_pb2.Status(code=code, message=clip(message, MAX_MESSAGE_BYTES))


def _status_from(
    code: grpc.StatusCode, details: str, trailing: Sequence[tuple[str, Any]]
) -> status_pb2.Status:
    for key, value in trailing:
        if key == _STATUS_DETAILS and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return _status(code.value[0], details)


class _InProcessContext:
    """The part of grpc.aio.ServicerContext our servicer uses, for calls that come over REST.

    A domain error passes through it as it is (`passes_domain_errors`), so the HTTP answer
    reads its status off the error's class instead of a `google.rpc.Status` packed into
    trailers and unpacked again.
    """

    passes_domain_errors = True

    def __init__(self, metadata: list[tuple[str, str | bytes]], peer: str) -> None:
        self._metadata = tuple(metadata)
        self._peer = peer
        self.response_metadata: list[tuple[str, str]] = []

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        return None

    def cancelled(self) -> bool:
        return False

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.response_metadata.extend(metadata)

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self.response_metadata.extend(
            (k, v) for k, v in metadata if isinstance(v, str) and not k.endswith("-bin")
        )

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()
    ) -> None:
        raise RpcFailure(_status_from(code, details, trailing_metadata))

    async def abort_with_status(self, status: grpc.Status) -> None:
        raise RpcFailure(_status_from(status.code, status.details, status.trailing_metadata))


class ServicerInvoker:
    """Calls a servicer's method directly, as grpc would, with an in-process context."""

    def __init__(self, servicers: dict[str, object]) -> None:
        self._servicers = servicers

    async def __call__(
        self,
        method: MethodDescriptor,
        request: Message,
        metadata: list[tuple[str, str | bytes]],
        peer: str = "",
    ) -> tuple[Message, list[tuple[str, str]]]:
        servicer = self._servicers[method.containing_service.full_name]
        context = _InProcessContext(metadata, peer)
        response: Message | bytes = await getattr(servicer, method.name)(request, context)
        if isinstance(response, bytes):  # serialized already, for gRPC (List's page)
            response = message_factory.GetMessageClass(method.output_type).FromString(response)
        return response, context.response_metadata


class ChannelInvoker:
    """Forwards each call over a gRPC channel, for servers found by reflection."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    async def __call__(
        self,
        method: MethodDescriptor,
        request: Message,
        metadata: list[tuple[str, str | bytes]],
        peer: str = "",
    ) -> tuple[Message, list[tuple[str, str]]]:
        output = message_factory.GetMessageClass(method.output_type)
        callable_: grpc.aio.UnaryUnaryMultiCallable[Message, Message] = self._channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=output.FromString,
        )
        call = callable_(request, metadata=metadata)
        try:
            response = await call
            metadata = [
                *(await call.initial_metadata() or ()),
                *(await call.trailing_metadata() or ()),
            ]
        except grpc.aio.AioRpcError as e:
            trailing = list(e.trailing_metadata() or ())
            raise RpcFailure(_status_from(e.code(), e.details() or "", trailing)) from None
        return response, [(k, v) for k, v in metadata if isinstance(v, str)]


def _forwarded_metadata(request: web.Request, call_id: str) -> list[tuple[str, str | bytes]]:
    """`Authorization`, `If-Match` and every `x-*` header become gRPC metadata: a `-bin` one
    as the bytes its base64 value carries, as gRPC sends binary metadata over HTTP/2. A
    header gRPC could not carry is the client's 400, not a failure in the channel."""
    metadata: list[tuple[str, str | bytes]] = []
    for key, value in request.headers.items():
        name = key.lower()
        if name == REQUEST_ID or not (name in ("authorization", "if-match") or name[:2] == "x-"):
            continue
        if not _METADATA_KEY.fullmatch(name):
            raise BadRequest(f"header {key!r}: gRPC metadata keys are [0-9a-z-_.]")
        if name.endswith("-bin"):
            try:
                metadata.append(
                    (name, base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
                )
            except binascii.Error:
                raise BadRequest(f"header {key}: a -bin value must be base64") from None
        elif _METADATA_VALUE.fullmatch(value):
            metadata.append((name, value))
        else:
            raise BadRequest(f"header {key}: gRPC metadata takes printable ASCII only")
    metadata.append((REQUEST_ID, call_id))
    return metadata


_METADATA_KEY = re.compile(r"[0-9a-z_.-]+")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")


def json_error(
    status: status_pb2.Status, call_id: str | None = None, http: int | None = None
) -> web.Response:
    """The status as JSON, with HTTP status `http` (by default the one its code maps to)."""
    headers = {REQUEST_ID: call_id} if call_id else {}
    if status.code == code_pb2.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = CHALLENGE
    return web.Response(
        body=encode_status(status),
        status=http_status(status.code) if http is None else http,
        content_type="application/json",
        headers=headers,
    )


def domain_error(error: DomainError, call_id: str | None = None) -> web.Response:
    return json_error(error.to_status(), call_id, error.http_status)


# What the framework's own error pages mean, for clients that only read JSON errors.
_FRAMEWORK_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
}


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error a handler or the framework raises answers as a JSON google.rpc.Status."""
    try:
        return await handler(request)
    except DomainError as e:
        return domain_error(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _FRAMEWORK_CODES.get(e.status, code_pb2.UNKNOWN)
        response = json_error(_status(code, e.reason), http=e.status)
        if "Allow" in e.headers:  # a 405 says what is allowed
            response.headers["Allow"] = e.headers["Allow"]
        return response
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return json_error(_status(code_pb2.INTERNAL, INTERNAL_MESSAGE))


# aiohttp warns of a client's malformed Content-Disposition and reads on without the part's
# name, which _read_form then refuses: the client's mistake is a 400, not a warning of ours.
for _category in (BadContentDispositionHeader, BadContentDispositionParam):
    warnings.filterwarnings("ignore", category=_category)


async def _read_form(request: web.Request, max_bytes: int) -> list[tuple[str, bytes]] | None:
    """The named parts of a multipart/form-data body (None for any other body), read as they
    arrive and no more than `max_bytes` in all: raw bytes, so an upload needs no base64."""
    if request.content_type != "multipart/form-data":
        return None
    require_identity(request)
    parts: list[tuple[str, bytes]] = []
    total = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("a form part cannot itself be multipart")
            if not part.name:
                raise BadRequest("every form part needs a name (Content-Disposition: form-data)")
            if len(parts) == MAX_FORM_PARTS:
                raise BadRequest(f"a form has at most {MAX_FORM_PARTS} parts")
            data = bytearray()
            while chunk := await part.read_chunk():
                total += len(chunk)
                if total > max_bytes:
                    raise web.HTTPRequestEntityTooLarge(max_size=max_bytes, actual_size=total)
                data += chunk
            parts.append((part.name, bytes(data)))
    except (HttpProcessingError, ValueError, AssertionError, RuntimeError, RuntimeWarning) as e:
        # aiohttp's several ways of saying a multipart body is broken
        raise BadRequest(f"the body is not valid multipart/form-data: {e}") from None
    return parts


def rest_handler(
    routes: list[Route],
    invoke: Invoker,
    max_body_bytes: int,
    authenticate: Callable[[str | None], object] | None = None,
) -> Any:
    """One aiohttp handler serving every route; unknown paths and verbs answer JSON too.
    `max_body_bytes` bounds a multipart body as the application's client_max_size bounds
    any other. `authenticate`, when given, checks the Authorization header before the body is
    read: a request without credentials costs no reading or parsing (the servicer checks it
    again, as it does every call's)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        call_id = call_request_id(request.headers.get(REQUEST_ID))
        raw_path = request.rel_url.raw_path
        matched = [(r, m) for r in routes if (m := r.pattern.fullmatch(raw_path))]
        if not matched:
            return json_error(_status(code_pb2.NOT_FOUND, f"no route for {raw_path}"), call_id)
        verb = request.method.lower()
        for route, match in matched:  # noqa: B007 (both used after the loop)
            if route.http_method == verb:
                break
        else:
            allowed = ", ".join(sorted({r.http_method.upper() for r, _ in matched}))
            request[ROUTE] = route.template
            response = json_error(
                _status(
                    code_pb2.UNIMPLEMENTED, f"{request.method} is not allowed here; use {allowed}"
                ),
                call_id,
                http=405,
            )
            response.headers["Allow"] = allowed
            return response
        request[ROUTE] = route.template
        try:
            if authenticate is not None:
                authenticate(request.headers.get("Authorization"))
            form = await _read_form(request, max_body_bytes)
            call = HttpCall(
                raw_path,
                request.rel_url.raw_query_string,
                b"" if form is not None else await read_body(request, max_body_bytes),
                request.headers.get("Content-Type", ""),
                form,
            )
            message = decode(route, match, call)
            reply, metadata = await invoke(
                route.method,
                message,
                _forwarded_metadata(request, call_id),
                request.remote or "",
            )
        except BadRequest as e:
            return json_error(_status(code_pb2.INVALID_ARGUMENT, str(e)), call_id)
        except DomainError as e:  # from our servicer, in process
            return domain_error(e, call_id)
        except RpcFailure as e:  # from another server, through the gateway
            return json_error(e.status, call_id)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, raw_path)
            return json_error(_status(code_pb2.INTERNAL, INTERNAL_MESSAGE), call_id)
        headers = {k: v for k, v in metadata if k != REQUEST_ID}
        headers[REQUEST_ID] = call_id
        return web.Response(body=encode(reply), content_type="application/json", headers=headers)

    return handle
