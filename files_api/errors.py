"""Domain errors, each carrying its gRPC code, its HTTP status and its PDS code.

The domain raises these; every face reads its own answer off the class (python-api-core's
style): the gRPC servicer a `google.rpc.Status` with rich details, REST the same status as JSON
with `http_status`, the PDS face `{"code": pds_code}` with `pds_status`. No face decides a
status of its own for a domain error. `HTTP_STATUS` is the generic google/api/http.proto
mapping, for statuses that come from elsewhere (the gateway forwarding to any gRPC server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

if TYPE_CHECKING:
    from collections.abc import Sequence


# HTTP status for each gRPC code, as google/api/http.proto's transcoding convention maps them.
HTTP_STATUS: dict[int, int] = {
    code_pb2.OK: 200,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.FAILED_PRECONDITION: 400,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.ABORTED: 409,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.CANCELLED: 499,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DEADLINE_EXCEEDED: 504,
}


def http_status(code: int) -> int:
    return HTTP_STATUS.get(code, 500)


INTERNAL_MESSAGE = "internal error"
"""All a client learns of an unexpected exception; the traceback goes to the server log."""


# Messages and violations echo client input. gRPC sends them twice, in `grpc-message`
# (percent-encoded: up to 3 bytes per byte) and in `grpc-status-details-bin` (base64), and a
# stock client refuses trailing metadata over 8 KiB: it would see RESOURCE_EXHAUSTED instead of
# the error. These bounds keep the worst case near 6 KiB.
MAX_MESSAGE_BYTES = 512
MAX_FIELD_BYTES = 128
MAX_DESCRIPTION_BYTES = 256
MAX_VIOLATION_BYTES = 2048  # all violations together; the rest are counted in the message


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, ending in an ellipsis when cut; a lone
    surrogate (JSON can carry one, UTF-8 cannot) is written as its escape."""
    encoded = text.encode(errors="backslashreplace")
    if len(encoded) <= limit:
        return encoded.decode()
    return encoded[: limit - 3].decode(errors="ignore") + "\u2026"


def _within_budget(violations: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    kept: list[tuple[str, str]] = []
    total = 0
    for given_field, given_description in violations:
        field = clip(given_field, MAX_FIELD_BYTES)
        description = clip(given_description, MAX_DESCRIPTION_BYTES)
        total += len(field.encode()) + len(description.encode()) + 8  # and the framing
        if total > MAX_VIOLATION_BYTES:
            break
        kept.append((field, description))
    return tuple(kept)


class DomainError(Exception):
    """A failure the caller caused or can act on; its message is safe to show to clients.

    A subclass sets `grpc_code` and `pds_code`; `http_status` follows from the gRPC code
    unless the class says otherwise, and `pds_status` from `http_status`.
    """

    grpc_code: ClassVar[int] = code_pb2.UNKNOWN
    http_status: ClassVar[int] = 500
    pds_code: ClassVar[str] = "InternalError"
    pds_status: ClassVar[int] = 500

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "http_status" not in cls.__dict__:
            cls.http_status = http_status(cls.grpc_code)
        if "pds_status" not in cls.__dict__:
            cls.pds_status = cls.http_status

    def __init__(self, message: str, *, violations: Sequence[tuple[str, str]] = ()) -> None:
        kept = _within_budget(violations)
        message = clip(message, MAX_MESSAGE_BYTES)
        if len(kept) < len(violations):
            message += f" ({len(violations) - len(kept)} more violations not shown)"
        super().__init__(message)
        self.message = message
        self.violations = kept

    def to_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.grpc_code, message=self.message)
        if self.violations:
            _attach(
                status,
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.violations
                    ]
                ),
            )
        return status


def _attach(
    status: status_pb2.Status, detail: error_details_pb2.BadRequest | error_details_pb2.ResourceInfo
) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)


class InvalidArgument(DomainError):
    """The request is malformed; `violations` name the offending fields."""

    grpc_code = code_pb2.INVALID_ARGUMENT
    pds_code = "InvalidParameter"

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"{field}: {description}", violations=[(field, description)])


class NotFound(DomainError):
    grpc_code = code_pb2.NOT_FOUND
    pds_code = "NotFound.File"


class PermissionDenied(DomainError):
    grpc_code = code_pb2.PERMISSION_DENIED
    pds_code = "Forbidden"


class Unauthenticated(DomainError):
    grpc_code = code_pb2.UNAUTHENTICATED
    pds_code = "AccessTokenInvalid"


class ResourceExhausted(DomainError):
    """Content over the size limit. PDS says so as HTTP 413, its EntityTooLarge."""

    grpc_code = code_pb2.RESOURCE_EXHAUSTED
    pds_code = "EntityTooLarge"
    pds_status = 413


FILE_TYPE = "yandex.cloud.ai.files.v1.File"


class AlreadyExists(DomainError):
    """The write would take a name another file holds (under `check_name_mode` refuse);
    `resource` is that file's id, sent as a `google.rpc.ResourceInfo` detail."""

    grpc_code = code_pb2.ALREADY_EXISTS
    pds_code = "AlreadyExist.File"

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        _attach(
            status,
            error_details_pb2.ResourceInfo(
                resource_type=FILE_TYPE, resource_name=self.resource, description=self.message
            ),
        )
        return status


class PreconditionFailed(DomainError):
    """The caller's own condition (an `if-match` etag) no longer holds: ABORTED, as AIP-154
    has it for a stale etag, and HTTP 412 as RFC 9110 section 13.1.1 has it for If-Match."""

    grpc_code = code_pb2.ABORTED
    http_status = 412
    pds_code = "PreconditionFailed"


class Aborted(DomainError):
    """A write lost its race with other writers of the same file too many times in a row (the
    store's optimistic Update gives up rather than loop): nothing was written, and the whole
    call may be retried, as AIP-194 has it for ABORTED."""

    grpc_code = code_pb2.ABORTED
    pds_code = "Conflict"


class Unavailable(DomainError):
    """The store cannot be reached just now (say, the database restarts); retrying may work."""

    grpc_code = code_pb2.UNAVAILABLE
    pds_code = "ServiceUnavailable"


ERRORS: tuple[type[DomainError], ...] = (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    AlreadyExists,
    PreconditionFailed,
    Aborted,
    Unavailable,
)
"""Every error class a client can see, for the test that walks each through every face."""
