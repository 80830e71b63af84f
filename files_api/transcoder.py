"""HTTP/JSON to gRPC transcoding, driven only by the `google.api.http` options of a service.

Follows google/api/http.proto: a path template's variables fill request fields; `body: "*"`
takes every other field from the JSON body (and no query parameters); `body: "field"` takes that
field from the body and the rest from the query; without a body every non-path field comes
from query parameters. JSON is protobuf's own proto3 mapping (`json_format`), except that
FieldMask paths are converted here so map keys survive exactly (see `mask_from_json`).

Nothing here knows FileService: routes come from descriptors, and calls go to an `Invoker`
(the servicer in process, or a remote server through a channel).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import parse_qsl, unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor

from files_api.masks import MalformedPath, quote_segment, split_path

if TYPE_CHECKING:
    from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
    from google.protobuf.message import Message
    from google.rpc import status_pb2

FIELD_MASK = "google.protobuf.FieldMask"


class BadRequest(Exception):
    """The HTTP request cannot be turned into a request message; the message says why."""


class RpcFailure(Exception):
    """The call failed with this status (already the client-facing one)."""

    def __init__(self, status: status_pb2.Status) -> None:
        super().__init__(status.message)
        self.status = status


class Invoker(Protocol):
    async def __call__(
        self,
        method: MethodDescriptor,
        request: Message,
        metadata: list[tuple[str, str | bytes]],
        peer: str = "",
    ) -> tuple[Message, list[tuple[str, str]]]:
        """The response and the response metadata; raises RpcFailure."""


@dataclasses.dataclass(frozen=True)
class Route:
    """One http rule of one method: its HTTP verb, compiled path template and body field."""

    http_method: str
    template: str
    pattern: re.Pattern[str]
    variables: tuple[str, ...]
    body: str
    method: MethodDescriptor

    @property
    def literal_length(self) -> int:
        """Templates with more fixed text win when two match (more specific first)."""
        return len(re.sub(r"\{[^}]*\}|\*", "", self.template))


def compile_template(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex for a path template (`/v1/{name=shelves/*}/books:get`) and its field paths."""
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    path, verb = template, ""
    last = template.rsplit("/", 1)[-1]
    if ":" in last and "}" not in last[last.index(":") :]:
        path, verb = template[: template.rindex(":")], template[template.rindex(":") :]
    variables: list[str] = []
    parts: list[str] = []
    pos = 0
    for match in re.finditer(r"\{([A-Za-z_][\w.]*)(?:=([^}]*))?\}", path):
        parts.append(_segments_regex(path[pos : match.start()]))
        field, inner = match[1], match[2]
        variables.append(field)
        parts.append(f"(?P<v{len(variables) - 1}>{_segments_regex(inner or '*')})")
        pos = match.end()
    parts.append(_segments_regex(path[pos:]))
    return re.compile("".join(parts) + re.escape(verb)), tuple(variables)


def _segments_regex(text: str) -> str:
    out = []
    for piece in re.split(r"(\*\*|\*)", text):
        if piece == "**":
            out.append(r"[^?#]*")
        elif piece == "*":
            out.append(r"[^/?#]+")
        else:
            out.append(re.escape(piece))
    return "".join(out)


def _rules(method: MethodDescriptor) -> list[http_pb2.HttpRule]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]
        return []
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]
    return [rule, *rule.additional_bindings]


def routes_for(service: ServiceDescriptor) -> list[Route]:
    """Every http rule of the service's methods, most specific template first."""
    routes = []
    for method in service.methods:
        for rule in _rules(method):
            kind = rule.WhichOneof("pattern")
            if kind is None:
                continue
            if kind == "custom":
                verb, template = rule.custom.kind.lower(), rule.custom.path
            else:
                verb, template = kind, getattr(rule, kind)
            pattern, variables = compile_template(template)
            routes.append(Route(verb, template, pattern, variables, rule.body, method))
    return sorted(routes, key=lambda r: -r.literal_length)


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto name or its lowerCamel JSON name."""
    if not _encodable(name):
        return None
    field = descriptor.fields_by_name.get(name)
    if field is not None:
        return field
    for candidate in descriptor.fields:
        if candidate.json_name == name:
            return candidate
    return None


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m[1].lower(), name)


def _snake_to_camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), name)


def _split_mask(text: str) -> list[str]:
    """Comma-separated paths; a comma inside a backticked map key does not split."""
    paths: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == "`":
            quoted = not quoted
        if char == "," and not quoted:
            paths.append("".join(current))
            current = []
        else:
            current.append(char)
    paths.append("".join(current))
    return [p for p in paths if p] if text else []


def mask_from_json(text: str, descriptor: Descriptor) -> list[str]:
    """proto3 JSON FieldMask (`"name,expirationConfig.ttlDays"`) to snake_case paths.

    protobuf's own converter also rewrites map keys (`labels.myKey` → `labels.my_key`) and
    rejects keys that are not identifiers; here field names are resolved against the message
    (lowerCamel or snake_case both accepted) and the segment after a map field is kept exactly,
    backticks and all, as AIP-161 writes it.
    """
    paths = []
    for path in _split_mask(text):
        try:
            segments = split_path(path)
        except MalformedPath:
            paths.append(path)  # the domain rejects it with the reason
            continue
        out: list[str] = []
        current: Descriptor | None = descriptor
        map_key_next = False
        for segment in segments:
            if map_key_next:
                out.append(quote_segment(segment))
                map_key_next, current = False, None
                continue
            field = _field(current, segment) if current is not None else None
            if field is None:
                out.append(quote_segment(_camel_to_snake(segment)))
                current = None
                continue
            out.append(field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                map_key_next, current = True, None
            else:
                current = field.message_type
        paths.append(".".join(out))
    return paths


def mask_to_json(paths: list[str], descriptor: Descriptor) -> str:
    """The inverse of mask_from_json: field names to lowerCamel, map keys untouched."""
    out = []
    for path in paths:
        try:
            segments = split_path(path)
        except MalformedPath:
            out.append(path)
            continue
        converted: list[str] = []
        current: Descriptor | None = descriptor
        map_key_next = False
        for segment in segments:
            field = None if map_key_next or current is None else _field(current, segment)
            if field is None:
                converted.append(quote_segment(segment) if map_key_next else segment)
                current, map_key_next = None, False
                continue
            converted.append(field.json_name)
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            current = None if is_map else field.message_type
            map_key_next = is_map
        out.append(".".join(converted))
    return ",".join(out)


def _convert_masks(data: dict[str, Any], descriptor: Descriptor) -> list[tuple[str, list[str]]]:
    """Takes the FieldMask fields out of a JSON object, to be set after ParseDict."""
    masks = []
    for key in list(data):
        field = _field(descriptor, key)
        if (
            field is None
            or field.message_type is None
            or field.message_type.full_name != FIELD_MASK
        ):
            continue
        value = data.pop(key)
        if not isinstance(value, str) or not _encodable(value):
            raise BadRequest(f"{key}: a FieldMask is a comma-separated string of paths")
        masks.append((field.name, mask_from_json(value, descriptor)))
    return masks


def _descriptor(message: Message) -> Descriptor:
    return cast("Descriptor", message.DESCRIPTOR)


_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _check_values(data: dict[str, Any], descriptor: Descriptor) -> None:
    """Stricter than json_format where it is lenient: it drops stray base64 characters,
    wraps out-of-range or fractional enum numbers (even `true`) into some value, takes a field
    given under both its names (the last wins) and an empty list for a message."""
    seen: dict[int, str] = {}
    for key, value in data.items():
        field = _field(descriptor, key)
        if field is None:
            continue
        if field.number in seen:
            raise BadRequest(f"{key}: given more than once (as {seen[field.number]} too)")
        seen[field.number] = key
        if (
            field.message_type is not None
            and not field.is_repeated
            and not field.message_type.full_name.startswith("google.protobuf.")  # own JSON forms
            and not (value is None or isinstance(value, dict))
        ):
            raise BadRequest(f"{key}: expected a JSON object, not {type(value).__name__}")
        if field.type == FieldDescriptor.TYPE_BYTES and isinstance(value, str):
            if not _BASE64.fullmatch(value) or len(value.rstrip("=")) % 4 == 1:
                raise BadRequest(f"{key}: not valid base64")
        elif field.type == FieldDescriptor.TYPE_ENUM and not field.is_repeated:
            number_ok = type(value) is int and -(2**31) <= value < 2**31
            if not (isinstance(value, str) or value is None or number_ok):
                raise BadRequest(
                    f"{key}: an enum is a value name or a 32-bit number, not {value!r}"
                )
        elif (
            field.message_type is not None
            and isinstance(value, dict)
            and not field.message_type.GetOptions().map_entry
        ):
            _check_values(value, field.message_type)


def _parse_into(data: object, message: Message) -> None:
    if not isinstance(data, dict):
        raise BadRequest(f"expected a JSON object for {_descriptor(message).name}")
    _check_values(data, _descriptor(message))
    masks = _convert_masks(data, _descriptor(message))
    try:
        json_format.ParseDict(data, message)
    except RecursionError:
        raise BadRequest("the body is nested too deeply") from None
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise BadRequest(str(e)) from None
    for name, paths in masks:
        getattr(message, name).paths.extend(paths)


def _form_into(parts: list[tuple[str, bytes]], message: Message) -> None:
    """A multipart/form-data body, for uploads too large for comfortable base64: a part for a
    `bytes` field is its raw bytes, a part for a string field its text as it is, and a part
    for any other field its proto3 JSON value (or, when it is not JSON, its text as a JSON
    string: `updateMask=name,description` and `ttlDays=3` both work). Then the same checks
    as a JSON body."""
    descriptor = _descriptor(message)
    data: dict[str, Any] = {}
    raw: list[tuple[FieldDescriptor, bytes]] = []
    seen: set[str] = set()
    for name, value in parts:
        field = _field(descriptor, name)
        if field is None:
            raise BadRequest(f"unknown form field {name!r} for {descriptor.name}")
        if field.name in seen and not (field.is_repeated and field.type == field.TYPE_BYTES):
            raise BadRequest(f"form field {name!r} is given more than once")
        seen.add(field.name)
        if field.type == field.TYPE_BYTES:
            raw.append((field, value))
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"form field {name!r} is not UTF-8 text") from None
        if field.type == field.TYPE_STRING and not field.is_repeated:
            data[field.json_name] = text
            continue
        try:
            data[field.json_name] = json.loads(text, object_pairs_hook=_no_duplicates)
        except RecursionError:
            raise BadRequest(f"form field {name!r} is nested too deeply") from None
        except ValueError as e:
            if text.lstrip()[:1] in ("{", "["):
                raise BadRequest(f"form field {name!r} is not valid JSON: {e}") from None
            data[field.json_name] = text
    _parse_into(data, message)
    for field, value in raw:
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)


def _set_path_field(message: Message, field_path: str, value: str) -> None:
    *parents, leaf = field_path.split(".")
    target = message
    for name in parents:
        target = getattr(target, name)
    field = _descriptor(target).fields_by_name[leaf]
    if field.type != FieldDescriptor.TYPE_STRING:
        _set_scalar(target, field, [value])
    else:
        setattr(target, leaf, value)


def _set_scalar(message: Message, field: FieldDescriptor, values: list[str]) -> None:
    def convert(value: str) -> Any:
        if field.type == FieldDescriptor.TYPE_BOOL:
            if value not in ("true", "false"):
                raise BadRequest(f"{field.json_name}: expected true or false, got {value!r}")
            return value == "true"
        return value

    repeated = field.is_repeated
    if not repeated and len(values) > 1:
        raise BadRequest(f"{field.json_name} is given more than once")
    converted = [convert(v) for v in values]
    try:
        json_format.ParseDict(
            {field.json_name: converted if repeated else converted[0]},
            message,
            ignore_unknown_fields=False,
        )
    except (json_format.ParseError, ValueError, TypeError) as e:
        raise BadRequest(str(e)) from None


def _query_into(message: Message, query: list[tuple[str, str]], exclude: set[str]) -> None:
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        target = message
        names = key.split(".")
        field: FieldDescriptor | None = None
        for i, name in enumerate(names):
            field = _field(_descriptor(target), name)
            if field is None:
                raise BadRequest(f"unknown query parameter {key!r}")
            if i < len(names) - 1:
                if field.message_type is None:
                    raise BadRequest(f"unknown query parameter {key!r}")
                target = getattr(target, field.name)
        assert field is not None
        dotted = ".".join(names)
        if field.name in exclude or dotted in exclude:
            raise BadRequest(f"{key!r} is set by the URL path, not a query parameter")
        if field.message_type is not None and field.message_type.full_name == FIELD_MASK:
            getattr(target, field.name).paths.extend(
                mask_from_json(",".join(values), _descriptor(target))
            )
        elif field.message_type is not None:
            raise BadRequest(f"{key!r} is a message: send it in a request body")
        else:
            _set_scalar(target, field, values)


def _encodable(text: str) -> bool:
    """False for a string holding an unpaired surrogate (JSON can spell one: "\\ud800")."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        if not _encodable(key):
            raise ValueError("a key holds an unpaired surrogate")
        result[key] = value
    return result


@dataclasses.dataclass
class HttpCall:
    """What the transport hands over: the parts of an HTTP request the transcoder reads."""

    raw_path: str
    query_string: str
    body: bytes
    content_type: str
    form: list[tuple[str, bytes]] | None = None
    """The parts of a multipart/form-data body, by name, instead of `body`."""


def _json_body(call: HttpCall) -> object:
    if not call.body.strip():
        return {}
    mime = call.content_type.split(";")[0].strip().lower()
    if mime != "application/json":
        raise BadRequest(f"the body must be application/json, not {mime or 'untyped'}")
    try:
        return json.loads(call.body, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not valid JSON: {e}") from None


def decode(route: Route, match: re.Match[str], call: HttpCall) -> Message:
    """The request message for an HTTP call that matched `route`; raises BadRequest."""
    message = message_factory.GetMessageClass(route.method.input_type)()
    query = parse_qsl(call.query_string, keep_blank_values=True)
    path_fields = set(route.variables)
    if not route.body:
        if call.form is not None or call.body.strip():
            raise BadRequest("this call takes no request body")
        _query_into(message, query, path_fields)
    else:
        target = message if route.body == "*" else getattr(message, route.body)
        if route.body == "*" and query:
            raise BadRequest("this call takes its fields from the body, not the query string")
        if call.form is not None:
            _form_into(call.form, target)
        else:
            _parse_into(_json_body(call), target)
        if route.body != "*":
            _query_into(message, query, path_fields | {route.body})
    for index, field_path in enumerate(route.variables):
        value = unquote(match[f"v{index}"])
        *parents, leaf = field_path.split(".")
        target = message
        for name in parents:
            target = getattr(target, name)
        already = getattr(target, leaf)
        if already not in ("", 0) and str(already) != value:
            raise BadRequest(f"{field_path} in the body differs from the one in the URL path")
        _set_path_field(message, field_path, value)
    return message


def encode(message: Message) -> bytes:
    """Compact proto3 JSON, newline-terminated (a terminal shows `curl` output cleanly)."""
    return json_format.MessageToJson(message, indent=None).encode() + b"\n"


def encode_status(status: status_pb2.Status) -> bytes:
    return encode(status)
