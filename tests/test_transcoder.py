"""google.api.http transcoding: one table per rule kind, as python-api-core tests its templates."""

from __future__ import annotations

from typing import Any

import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import json_format

from files_api.transcoder import (
    BadRequest,
    HttpCall,
    compile_template,
    decode,
    mask_from_json,
    mask_to_json,
    routes_for,
)

SERVICE = fs.DESCRIPTOR.services_by_name["FileService"]
ROUTES = routes_for(SERVICE)


@pytest.mark.parametrize(
    ("template", "path", "captured"),
    [
        ("/files/v1/files", "/files/v1/files", {}),
        ("/files/v1/files/{file_id}", "/files/v1/files/abc", {"file_id": "abc"}),
        ("/files/v1/files/{file_id}", "/files/v1/files/a%2Fb", {"file_id": "a%2Fb"}),
        ("/files/v1/files:getUrl", "/files/v1/files:getUrl", {}),
        ("/v1/{name=shelves/*}", "/v1/shelves/7", {"name": "shelves/7"}),
        (
            "/v1/{name=shelves/*/books/*}:read",
            "/v1/shelves/1/books/2:read",
            {"name": "shelves/1/books/2"},
        ),
        ("/v1/{name=**}", "/v1/a/b/c", {"name": "a/b/c"}),
        ("/v1/*/x/{a.b}", "/v1/any/x/9", {"a.b": "9"}),
    ],
)
def test_path_templates_match_and_capture(
    template: str, path: str, captured: dict[str, str]
) -> None:
    pattern, variables = compile_template(template)
    match = pattern.fullmatch(path)
    assert match is not None
    assert {v: match[f"v{i}"] for i, v in enumerate(variables)} == captured


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/files/v1/files", "/files/v1/files/"),
        ("/files/v1/files/{file_id}", "/files/v1/files"),
        ("/files/v1/files/{file_id}", "/files/v1/files/a/b"),
        ("/files/v1/files:getUrl", "/files/v1/files"),
        ("/v1/{name=shelves/*}", "/v1/books/7"),
    ],
)
def test_path_templates_reject_other_paths(template: str, path: str) -> None:
    pattern, _ = compile_template(template)
    assert pattern.fullmatch(path) is None


def test_every_rule_of_the_service_becomes_a_route() -> None:
    assert {(r.http_method, r.template, r.method.name, r.body) for r in ROUTES} == {
        ("post", "/files/v1/files", "Create", "*"),
        ("get", "/files/v1/files/{file_id}", "Get", ""),
        ("get", "/files/v1/files:getUrl", "GetUrl", ""),
        ("patch", "/files/v1/files/{file_id}", "Update", "*"),
        ("delete", "/files/v1/files/{file_id}", "Delete", ""),
        ("get", "/files/v1/files", "List", ""),
    }


def call(
    verb: str, path: str, query: str = "", body: bytes = b"", content_type: str = "application/json"
) -> Any:
    """Decodes like the REST handler: the first route whose verb and path match."""
    for route in ROUTES:
        match = route.pattern.fullmatch(path)
        if match and route.http_method == verb:
            return json_format.MessageToDict(
                decode(route, match, HttpCall(path, query, body, content_type)),
                preserving_proto_field_name=True,
            )
    raise AssertionError(f"no route for {verb} {path}")


@pytest.mark.parametrize(
    ("verb", "path", "query", "body", "expected"),
    [
        # path variables
        ("get", "/files/v1/files/abc", "", b"", {"file_id": "abc"}),
        ("delete", "/files/v1/files/x%20y", "", b"", {"file_id": "x y"}),
        ("get", "/files/v1/files/..%2F..%2Fetc", "", b"", {"file_id": "../../etc"}),
        # body: "*" (every non-path field from the body)
        ("patch", "/files/v1/files/abc", "", b'{"name": "n"}', {"file_id": "abc", "name": "n"}),
        (
            "patch",
            "/files/v1/files/abc",
            "",
            b'{"fileId": "abc", "name": "n"}',
            {"file_id": "abc", "name": "n"},
        ),
        ("patch", "/files/v1/files/abc", "", b"", {"file_id": "abc"}),
        (
            "post",
            "/files/v1/files",
            "",
            b'{"folder_id": "f", "content": "aGk=", "expirationConfig": {"ttlDays": "3"}}',
            {"folder_id": "f", "content": "aGk=", "expiration_config": {"ttl_days": "3"}},
        ),
        # query parameters, lowerCamel or snake_case
        (
            "get",
            "/files/v1/files",
            "folderId=f&pageSize=5&pageToken=t",
            b"",
            {"folder_id": "f", "page_size": "5", "page_token": "t"},
        ),
        (
            "get",
            "/files/v1/files",
            "folder_id=f&page_size=5",
            b"",
            {"folder_id": "f", "page_size": "5"},
        ),
        ("get", "/files/v1/files:getUrl", "fileId=abc", b"", {"file_id": "abc"}),
        ("get", "/files/v1/files", "folderId=a%26b", b"", {"folder_id": "a&b"}),
    ],
)
def test_requests_are_decoded(
    verb: str, path: str, query: str, body: bytes, expected: dict[str, Any]
) -> None:
    assert call(verb, path, query, body) == expected


@pytest.mark.parametrize(
    ("verb", "path", "query", "body", "content_type", "message"),
    [
        ("get", "/files/v1/files", "folderId=f&nope=1", b"", "", "unknown query parameter 'nope'"),
        ("get", "/files/v1/files", "pageSize=abc", b"", "", "pageSize"),
        ("get", "/files/v1/files", "pageSize=1&pageSize=2", b"", "", "more than once"),
        ("get", "/files/v1/files/abc", "fileId=x", b"", "", "set by the URL path"),
        (
            "get",
            "/files/v1/files/abc",
            "",
            b'{"x": 1}',
            "application/json",
            "takes no request body",
        ),
        (
            "patch",
            "/files/v1/files/abc",
            "name=x",
            b"{}",
            "application/json",
            "not the query string",
        ),
        ("patch", "/files/v1/files/abc", "", b"{not json", "application/json", "not valid JSON"),
        (
            "patch",
            "/files/v1/files/abc",
            "",
            b"[1, 2]",
            "application/json",
            "expected a JSON object",
        ),
        ("patch", "/files/v1/files/abc", "", b'{"name": 5}', "application/json", "name"),
        ("patch", "/files/v1/files/abc", "", b'{"nmae": "x"}', "application/json", "nmae"),
        (
            "patch",
            "/files/v1/files/abc",
            "",
            b'{"name": "a", "name": "b"}',
            "application/json",
            "duplicate",
        ),
        (
            "patch",
            "/files/v1/files/abc",
            "",
            b'{"labels": {"k": "\\ud800"}}',
            "application/json",
            "surrogate",
        ),
        (
            "patch",
            "/files/v1/files/abc",
            "",
            b'{"updateMask": {"paths": ["name"]}}',
            "application/json",
            "FieldMask",
        ),
        ("patch", "/files/v1/files/abc", "", b'{"fileId": "other"}', "application/json", "differs"),
        ("patch", "/files/v1/files/abc", "", b'{"name": "n"}', "text/plain", "application/json"),
        ("patch", "/files/v1/files/abc", "", b'{"name": "n"}', "", "application/json"),
        ("post", "/files/v1/files", "", b'{"content": "***"}', "application/json", "base64"),
        ("post", "/files/v1/files", "", b'{"content": "aGk=x"}', "application/json", "base64"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    verb: str, path: str, query: str, body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(BadRequest) as e:
        call(verb, path, query, body, content_type)
    assert message in str(e.value)


UPDATE = fs.UpdateFileRequest.DESCRIPTOR

# (JSON form as a REST client writes it, snake_case paths as gRPC carries them)
MASKS = [
    ("name", ["name"]),
    ("name,description", ["name", "description"]),
    ("expirationConfig.ttlDays", ["expiration_config.ttl_days"]),
    ("expiration_config.expiration_policy", ["expiration_config.expiration_policy"]),
    ("labels.myKey", ["labels.myKey"]),
    ("labels.my_key", ["labels.my_key"]),
    ("labels.`My.Key`", ["labels.`My.Key`"]),
    ("labels.`a,b`,name", ["labels.`a,b`", "name"]),
    ("labels.`tick``s`", ["labels.`tick``s`"]),
    ("createdAt,nmae", ["created_at", "nmae"]),
    ("", []),
]


@pytest.mark.parametrize(("json_mask", "paths"), MASKS)
def test_field_mask_json_keeps_map_keys_exact(json_mask: str, paths: list[str]) -> None:
    assert mask_from_json(json_mask, UPDATE) == paths


@pytest.mark.parametrize(
    "paths",
    [p for _, p in MASKS if p and "created_at" not in p],
)
def test_field_mask_round_trips_through_json(paths: list[str]) -> None:
    assert mask_from_json(mask_to_json(paths, UPDATE), UPDATE) == paths


def test_mask_in_body_reaches_the_request_with_map_keys_intact() -> None:
    body = b'{"updateMask": "name,labels.`My.Key`,labels.myKey,expirationConfig.ttlDays"}'
    route = next(r for r in ROUTES if r.method.name == "Update")
    path = "/files/v1/files/abc"
    match = route.pattern.fullmatch(path)
    assert match is not None
    request = decode(route, match, HttpCall(path, "", body, "application/json; charset=utf-8"))
    assert list(request.update_mask.paths) == [  # type: ignore[attr-defined]
        "name",
        "labels.`My.Key`",
        "labels.myKey",
        "expiration_config.ttl_days",
    ]
