"""A .proto file's wire contract as plain JSON-ready data, and the differences between two.

Pure protobuf, so both environments can import it: `official_descriptors.py` describes the
official `yandexcloud` stubs in .venv-clients, `test_contract.py` describes ours in .venv, and the
two results are compared key by key. What a client depends on is kept: messages (nested ones too),
fields with their numbers, types, labels, JSON names and options, oneofs, enums, services and
methods with their options (the `google.api.http` rule, `[yandex.cloud.required]`). File-level
options (java_package, go_package) and comments are left out: they differ between the two builds
and no client sees them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, text_format

Described = dict[str, Any]

_TYPE_NAMES = descriptor_pb2.FieldDescriptorProto.Type


def describe_file(file: Any) -> Described:
    """`file` is a FileDescriptor, e.g. `file_service_pb2.DESCRIPTOR`."""
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    messages: Described = {}
    enums: Described = {}
    for message in file.message_types_by_name.values():
        _collect_message(message, messages, enums)
    for enum in file.enum_types_by_name.values():
        enums[enum.full_name] = _describe_enum(enum)
    return {
        "package": file.package,
        "syntax": proto.syntax,
        "edition": proto.edition,
        "messages": messages,
        "enums": enums,
        "services": {s.full_name: _describe_service(s) for s in file.services_by_name.values()},
        "extensions": {
            e.full_name: describe_extension(e) for e in file.extensions_by_name.values()
        },
    }


def describe_extension(extension: Any) -> Described:
    """`extension` is the FieldDescriptor of an `extend` declaration."""
    return {
        "name": extension.name,
        "full_name": extension.full_name,
        "extendee": extension.containing_type.full_name,
        **_describe_field(extension),
    }


def _options(descriptor: Any) -> str:
    # Extensions (`[google.api.http] {...}`, `[yandex.cloud.required]: true`) print by name
    # because the modules that declare them are imported with the files that use them.
    return text_format.MessageToString(descriptor.GetOptions(), as_one_line=True)


def _collect_message(message: Any, messages: Described, enums: Described) -> None:
    messages[message.full_name] = {
        "map_entry": message.GetOptions().map_entry,
        "options": _options(message),
        "nested_messages": sorted(m.full_name for m in message.nested_types),
        "nested_enums": sorted(e.full_name for e in message.enum_types),
        "oneofs": {o.name: [f.name for f in o.fields] for o in message.oneofs},
        "fields": {f.name: _describe_field(f) for f in message.fields},
    }
    for nested in message.nested_types:
        _collect_message(nested, messages, enums)
    for enum in message.enum_types:
        enums[enum.full_name] = _describe_enum(enum)


def _describe_field(field: Any) -> Described:
    if field.is_repeated:
        label = "LABEL_REPEATED"
    elif field.is_required:
        label = "LABEL_REQUIRED"
    else:
        label = "LABEL_OPTIONAL"
    referenced = field.message_type or field.enum_type
    return {
        "number": field.number,
        "type": _TYPE_NAMES.Name(field.type),
        "label": label,
        "type_name": f".{referenced.full_name}" if referenced else "",
        "json_name": field.json_name,
        "has_presence": field.has_presence,
        "oneof": field.containing_oneof.name if field.containing_oneof else None,
        "options": _options(field),
    }


def _describe_enum(enum: Any) -> Described:
    return {
        "options": _options(enum),
        "values": {v.name: {"number": v.number, "options": _options(v)} for v in enum.values},
    }


def _describe_service(service: Any) -> Described:
    return {
        "options": _options(service),
        "methods": {
            m.name: {
                "input_type": m.input_type.full_name,
                "output_type": m.output_type.full_name,
                "client_streaming": m.client_streaming,
                "server_streaming": m.server_streaming,
                "options": _options(m),
            }
            for m in service.methods
        },
    }


def differences(ours: Any, official: Any, where: str = "") -> list[str]:
    """Every place where two descriptions disagree, one readable line each (empty if none)."""
    if isinstance(ours, dict) and isinstance(official, dict):
        found: list[str] = []
        for key in sorted(set(ours) | set(official), key=str):
            here = f"{where} > {key}" if where else str(key)
            if key not in ours:
                found.append(f"{here}: missing from ours (official: {official[key]!r})")
            elif key not in official:
                found.append(f"{here}: not in the official API (ours: {ours[key]!r})")
            else:
                found.extend(differences(ours[key], official[key], here))
        return found
    if ours != official:
        return [f"{where}: ours {ours!r}, official {official!r}"]
    return []
