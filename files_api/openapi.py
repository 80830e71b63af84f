"""An OpenAPI 3.0 document of the REST face, generated from the services' `google.api.http` rules.

Generated, never written by hand: the operations are the transcoder's own routes
(`routes_for`), and the schemas walk the request and response descriptors, so the document
cannot drift from what the server accepts, and an RPC given an http rule appears here with no
new Python (the standalone gateway can describe a server it knows only by reflection the same
way). It follows the transcoder's reading of google/api/http.proto: path variables are path
parameters; `body: "*"` is a request body of every non-path field; a named body field is the
request body and every other field a query parameter; without a body, every non-path field is
a query parameter (nested fields dotted, `sub.field`). Schemas are the proto3 JSON mapping
(https://protobuf.dev/programming-guides/json/) that `json_format` speaks: lowerCamel names,
64-bit integers as decimal strings, enums by name, bytes as base64, the well-known types in
their special forms; errors are `google.rpc.Status`.

    routes = routes_for(file_service_pb2.DESCRIPTOR.services_by_name["FileService"])
    app.router.add_get("/openapi.json", openapi_handler(openapi_document(routes)))
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.rpc import status_pb2

from files_api.transcoder import FIELD_MASK

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from google.protobuf.descriptor import Descriptor, EnumDescriptor, MethodDescriptor

    from files_api.transcoder import Route

OPENAPI_VERSION = "3.0.3"
_OPENAPI_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
Schema = dict[str, Any]

_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
_INT32 = {"type": "integer", "format": "int32"}
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}


def _floating(fmt: str) -> Schema:
    # proto3 JSON writes the non-finite values as strings.
    special = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
    return {"oneOf": [{"type": "number", "format": fmt}, special]}


_SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: _floating("double"),
    FieldDescriptor.TYPE_FLOAT: _floating("float"),
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}

_WRAPPERS = {
    "google.protobuf.DoubleValue": FieldDescriptor.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FieldDescriptor.TYPE_FLOAT,
    "google.protobuf.Int64Value": FieldDescriptor.TYPE_INT64,
    "google.protobuf.UInt64Value": FieldDescriptor.TYPE_UINT64,
    "google.protobuf.Int32Value": FieldDescriptor.TYPE_INT32,
    "google.protobuf.UInt32Value": FieldDescriptor.TYPE_UINT32,
    "google.protobuf.BoolValue": FieldDescriptor.TYPE_BOOL,
    "google.protobuf.StringValue": FieldDescriptor.TYPE_STRING,
    "google.protobuf.BytesValue": FieldDescriptor.TYPE_BYTES,
}

# The well-known types whose JSON is not an object of their fields (the mapping's table).
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    FIELD_MASK: {
        "type": "string",
        "description": "A FieldMask: comma-separated lowerCamel field paths (`name,config.size`).",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    **{name: _SCALARS[kind] for name, kind in _WRAPPERS.items()},
}

_STATUS = cast("Descriptor", status_pb2.Status.DESCRIPTOR)

# A path variable (`{file_id}`, `{name=shelves/*}`), or a bare wildcard segment.
_TEMPLATE_PART = re.compile(r"\{([A-Za-z_][\w.]*)(?:=([^}]*))?\}|\*\*|\*")


def _component(full_name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{full_name}"}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _is_required(field: FieldDescriptor) -> bool:
    """Marked by `google.api.field_behavior = REQUIRED` or a boolean `required` option such as
    `yandex.cloud.required`: proto3 JSON itself makes every field optional."""
    for option, value in field.GetOptions().ListFields():
        if option.full_name == "google.api.field_behavior":
            if field_behavior_pb2.REQUIRED in value:
                return True
        elif option.is_extension and option.name == "required" and value is True:
            return True
    return False


class _Schemas:
    """`components/schemas`: every message and enum reached, keyed by its full proto name."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}

    def message(self, descriptor: Descriptor) -> Schema:
        """The message's JSON schema: a special form for well-known types, else a $ref."""
        special = _WELL_KNOWN.get(descriptor.full_name)
        if special is not None:
            return dict(special)
        if descriptor.full_name not in self.components:
            self.components[descriptor.full_name] = {}  # placeholder: recursive messages
            self.components[descriptor.full_name] = self.object(descriptor)
        return _component(descriptor.full_name)

    def object(self, descriptor: Descriptor, leave_out: frozenset[str] = frozenset()) -> Schema:
        """The message as a JSON object, without the fields named in `leave_out`."""
        fields = [f for f in descriptor.fields if f.name not in leave_out]
        schema: Schema = {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in fields},
            # json_format rejects unknown fields, so the REST face does too.
            "additionalProperties": False,
        }
        required = [f.json_name for f in fields if _is_required(f)]
        if required:
            schema["required"] = required
        return schema

    def enum(self, descriptor: EnumDescriptor) -> Schema:
        if descriptor.full_name == "google.protobuf.NullValue":
            return {"nullable": True, "enum": [None]}
        if descriptor.full_name not in self.components:
            self.components[descriptor.full_name] = {
                "type": "string",
                "enum": [value.name for value in descriptor.values],
            }
        return _component(descriptor.full_name)

    def single(self, field: FieldDescriptor) -> Schema:
        """One value of the field (an element, if it is repeated)."""
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self.enum(field.enum_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor) -> Schema:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.single(value)}
        if field.is_repeated:
            return {"type": "array", "items": self.single(field)}
        schema = self.single(field)
        if _is_required(field) and schema.get("type") == "string":
            # proto3 cannot tell an empty string from an unset one: required means non-empty.
            schema["minLength"] = 1
        return schema


def _resolve(descriptor: Descriptor, path: str) -> tuple[FieldDescriptor, str]:
    """The field a dotted proto path names, and its JSON path (`book.display_name` →
    `book.displayName`); ValueError if there is none."""
    current: Descriptor | None = descriptor
    field: FieldDescriptor | None = None
    names = []
    for name in path.split("."):
        field = current.fields_by_name.get(name) if current is not None else None
        if field is None:
            raise ValueError(f"{descriptor.full_name} has no field {path!r}")
        names.append(field.json_name)
        current = field.message_type
    assert field is not None
    return field, ".".join(names)


def _segments_pattern(inner: str) -> str:
    """The value a `{var=shelves/*}` variable takes, as a regex (grpc-gateway's openapiv2 way)."""
    parts = re.split(r"(\*\*|\*)", inner)
    pattern = "".join(
        ".+" if p == "**" else "[^/]+" if p == "*" else re.escape(p) for p in parts if p
    )
    return f"^{pattern}$"


def _binding_index(route: Route) -> int:
    """The route's place among its method's rule and additional_bindings."""
    options = route.method.GetOptions()
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]
    for index, binding in enumerate([rule, *rule.additional_bindings]):
        kind = binding.WhichOneof("pattern")
        template = binding.custom.path if kind == "custom" else getattr(binding, kind or "get")
        if template == route.template:
            return index
    return 0


class _Builder:
    def __init__(self) -> None:
        self.schemas = _Schemas()
        self.operation_ids: set[str] = set()

    def operation_id(self, method: MethodDescriptor) -> str:
        base = f"{method.containing_service.name}_{method.name}"
        candidate, n = base, 1
        while candidate in self.operation_ids:  # additional_bindings, or two packages
            candidate, n = f"{base}_{n}", n + 1
        self.operation_ids.add(candidate)
        return candidate

    def path(self, route: Route) -> tuple[str, list[Schema]]:
        """The OpenAPI path of a template, with a path parameter for each variable."""
        request = route.method.input_type
        parameters: list[Schema] = []
        wildcards = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal wildcards
            if match[1] is None:  # a bare `*` or `**`: matched, but fills no field
                wildcards += 1
                name = f"_segment{wildcards}"
                parameters.append(
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "description": "Any path segment; not a field of the request.",
                        "schema": {"type": "string"},
                    }
                )
                return "{" + name + "}"
            field, name = _resolve(request, match[1])
            schema = self.schemas.field(field)
            if schema.get("type") == "string":
                schema["minLength"] = 1  # a template variable matches one character or more
            inner = match[2]
            if inner and inner != "*":
                schema["pattern"] = _segments_pattern(inner)
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
            return "{" + name + "}"

        return _TEMPLATE_PART.sub(replace, route.template), parameters

    def query_parameters(
        self,
        descriptor: Descriptor,
        exclude: set[str],
        prefix: str = "",
        json_prefix: str = "",
        outer: frozenset[str] = frozenset(),
    ) -> list[Schema]:
        """Every field the transcoder reads from a query string: scalars, enums, FieldMasks,
        repeated ones as arrays (`?a=1&a=2`), and the fields of singular messages dotted."""
        parameters: list[Schema] = []
        outer |= {descriptor.full_name}
        for field in descriptor.fields:
            proto_path, json_path = prefix + field.name, json_prefix + field.json_name
            if proto_path in exclude or _is_map(field):
                continue
            message = field.message_type
            if message is not None and message.full_name == FIELD_MASK:
                schema = self.schemas.single(field)
            elif message is not None:
                if field.is_repeated or message.full_name in _WELL_KNOWN.keys() | outer:
                    continue  # only a body can carry these; a recursive one would never end
                parameters += self.query_parameters(
                    message, exclude, proto_path + ".", json_path + ".", outer
                )
                continue
            else:
                schema = self.schemas.field(field)
            parameter: Schema = {"name": json_path, "in": "query", "schema": schema}
            if _is_required(field) and not prefix:
                parameter["required"] = True
            parameters.append(parameter)
        return parameters

    def body_schema(self, route: Route) -> Schema:
        request = route.method.input_type
        if route.body != "*":
            return self.schemas.field(_resolve(request, route.body)[0])
        # The path fills these, so the body leaves them out (a nested path field stays: the
        # transcoder accepts it in the body when it agrees with the path).
        top_level = frozenset(v for v in route.variables if "." not in v)
        if not top_level:
            return self.schemas.message(request)
        return self.schemas.object(request, leave_out=top_level)

    def operation(self, route: Route, path_parameters: list[Schema]) -> Schema:
        method = route.method
        parameters = list(path_parameters)
        if route.body != "*":
            exclude = set(route.variables) | ({route.body} if route.body else set())
            parameters += self.query_parameters(method.input_type, exclude)
        operation: Schema = {
            "operationId": self.operation_id(method),
            "tags": [method.containing_service.name],
            "description": f"The RPC {method.containing_service.full_name}.{method.name}.",
        }
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            operation["requestBody"] = {
                "content": {"application/json": {"schema": self.body_schema(route)}}
            }
        operation["responses"] = {
            "200": {
                "description": f"{method.output_type.full_name}",
                "content": {
                    "application/json": {"schema": self.schemas.message(method.output_type)}
                },
            },
            "default": {
                "description": "The failure, as a google.rpc.Status: code, message, details.",
                "content": {"application/json": {"schema": self.schemas.message(_STATUS)}},
            },
        }
        return operation


def openapi_document(
    routes: Iterable[Route], *, title: str | None = None, version: str | None = None
) -> dict[str, Any]:
    """The OpenAPI document of these routes (those of `routes_for`, for one or more services).

    `title` defaults to the services' names and `version` to their package's last segment
    (`v1` for yandex.cloud.ai.files.v1).
    """
    # In the order of the services' methods and of each method's bindings, so the rule itself
    # gets the plain operationId and its additional bindings `_1`, `_2`, ...
    ordered = sorted(
        routes,
        key=lambda r: (r.method.containing_service.full_name, r.method.index, _binding_index(r)),
    )
    services = list(dict.fromkeys(r.method.containing_service for r in ordered))
    builder = _Builder()
    paths: dict[str, dict[str, Schema]] = {}
    for route in ordered:
        if route.http_method not in _OPENAPI_METHODS:
            continue  # a custom verb outside OpenAPI's fixed set cannot be described
        path, parameters = builder.path(route)
        item = paths.setdefault(path, {})
        if route.http_method not in item:  # one operation per path and verb: the first
            item[route.http_method] = builder.operation(route, parameters)
    packages = sorted({s.file.package for s in services})
    versions = {p.rsplit(".", 1)[-1] for p in packages}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title or ", ".join(s.name for s in services) or "REST",
            "version": version or (versions.pop() if len(versions) == 1 else "unversioned"),
            "description": (
                "Generated from the google.api.http rules of "
                + (", ".join(s.full_name for s in services) or "no service")
                + ". JSON is the proto3 JSON mapping: lowerCamel names, 64-bit integers as "
                "strings, enums by name, bytes as base64, RFC 3339 timestamps."
            ),
        },
        "tags": [{"name": s.name, "description": s.full_name} for s in services],
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.schemas.components.items()))},
    }


def openapi_handler(
    document: dict[str, Any],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler answering the document as JSON, encoded once."""
    body = json.dumps(document).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    return handle
