"""Domain errors and the one table that gives each its gRPC code and HTTP status.

The domain raises these; the gRPC servicer and the HTTP handlers turn them into a
`google.rpc.Status` with rich details, so every transport reports a failure the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

if TYPE_CHECKING:
    from collections.abc import Sequence


class DomainError(Exception):
    """A failure the caller caused or can act on; its message is safe to show to clients."""

    def __init__(self, message: str, *, violations: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.violations = tuple(violations)

    def to_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=GRPC_CODES[type(self)], message=self.message)
        if self.violations:
            detail = any_pb2.Any()
            detail.Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                        for f, d in self.violations
                    ]
                )
            )
            status.details.append(detail)
        return status


class InvalidArgument(DomainError):
    """The request is malformed; `violations` name the offending fields."""

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"{field}: {description}", violations=[(field, description)])


class NotFound(DomainError):
    pass


class PermissionDenied(DomainError):
    pass


class Unauthenticated(DomainError):
    pass


class ResourceExhausted(DomainError):
    pass


class AlreadyExists(DomainError):
    """The write would take a name another file holds (under `check_name_mode` refuse);
    `resource` is that file's id, sent as a `google.rpc.ResourceInfo` detail."""

    def __init__(self, message: str, *, resource: str) -> None:
        super().__init__(message)
        self.resource = resource

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ResourceInfo(
                resource_type=FILE_TYPE, resource_name=self.resource, description=self.message
            )
        )
        status.details.append(detail)
        return status


FILE_TYPE = "yandex.cloud.ai.files.v1.File"


class Aborted(DomainError):
    """A precondition of the caller's own (an If-Match etag) no longer holds."""


class Unavailable(DomainError):
    """The store cannot be reached just now (say, the database restarts); retrying may work."""


GRPC_CODES: dict[type[DomainError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    PermissionDenied: code_pb2.PERMISSION_DENIED,
    Unauthenticated: code_pb2.UNAUTHENTICATED,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    Unavailable: code_pb2.UNAVAILABLE,
    Aborted: code_pb2.ABORTED,
    AlreadyExists: code_pb2.ALREADY_EXISTS,
}

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
