"""The generated OpenAPI document: valid to a real validator, true to the http rules, and a map
schemathesis fuzzes the live REST listener with (no answer may be a 5xx).

FileService has only the simplest rule kinds, so a second, made-up service (compiled here with
protoc) carries the rest: patterned and nested path variables, a named body, a bare wildcard,
additional bindings, a custom verb, every scalar and well-known type, maps and recursion.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc_tools
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_tools import protoc
from openapi_spec_validator import validate

from files_api.openapi import openapi_document
from files_api.transcoder import routes_for

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    from tests.conftest import Running

ROUTES = routes_for(fs.DESCRIPTOR.services_by_name["FileService"])
DOCUMENT = openapi_document(ROUTES)
SCHEMAS = DOCUMENT["components"]["schemas"]
FILES = "yandex.cloud.ai.files.v1."
INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
FIELD_MASK_DESCRIPTION = "A FieldMask: comma-separated lowerCamel field paths (`name,config.size`)."
STATUS = {"$ref": "#/components/schemas/google.rpc.Status"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId → (verb, path, operation)."""
    return {
        op["operationId"]: (verb, path, op)
        for path, item in document["paths"].items()
        for verb, op in item.items()
    }


def parameters(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["in"], p["name"]): p for p in operation.get("parameters", [])}


def body_schema(operation: dict[str, Any]) -> dict[str, Any]:
    return dict(operation["requestBody"]["content"]["application/json"]["schema"])


def test_the_document_is_valid_openapi() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.")
    assert DOCUMENT["info"]["version"] == "v1"


@pytest.mark.parametrize(
    ("operation_id", "verb", "path", "query", "body"),
    [
        ("FileService_Create", "post", "/files/v1/files", set(), ref(FILES + "CreateFileRequest")),
        ("FileService_Get", "get", "/files/v1/files/{fileId}", set(), None),
        ("FileService_GetUrl", "get", "/files/v1/files:getUrl", {"fileId"}, None),
        ("FileService_Update", "patch", "/files/v1/files/{fileId}", set(), "inline"),
        ("FileService_Delete", "delete", "/files/v1/files/{fileId}", set(), None),
        ("FileService_List", "get", "/files/v1/files", {"folderId", "pageSize", "pageToken"}, None),
    ],
)
def test_every_rule_of_file_service_is_an_operation(
    operation_id: str, verb: str, path: str, query: set[str], body: Any
) -> None:
    got_verb, got_path, operation = operations(DOCUMENT)[operation_id]
    assert (got_verb, got_path) == (verb, path)
    params = parameters(operation)
    assert {name for where, name in params if where == "query"} == query
    path_params = {name for where, name in params if where == "path"}
    assert path_params == ({"fileId"} if "{fileId}" in path else set())
    if body is None:
        assert "requestBody" not in operation
    elif body != "inline":
        assert body_schema(operation) == body
    assert operation["responses"]["default"]["content"]["application/json"]["schema"] == STATUS


def test_every_route_is_documented_once() -> None:
    documented = {(verb, path) for verb, path, _ in operations(DOCUMENT).values()}
    assert len(documented) == len(ROUTES) == 6


def test_update_takes_file_id_from_the_path_and_the_rest_from_the_body() -> None:
    _, _, update = operations(DOCUMENT)["FileService_Update"]
    assert parameters(update)[("path", "fileId")] == {
        "name": "fileId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
    }
    body = body_schema(update)
    assert "fileId" not in body["properties"]
    assert set(body["properties"]) == {
        "updateMask",
        "name",
        "description",
        "expirationConfig",
        "labels",
    }
    assert body["properties"]["updateMask"]["type"] == "string"  # a FieldMask is one string
    assert body["required"] == ["updateMask"]
    assert body["additionalProperties"] is False


@pytest.mark.parametrize(
    ("message", "field", "schema"),
    [
        ("File", "id", {"type": "string"}),
        ("File", "folderId", {"type": "string"}),
        ("File", "createdAt", {"type": "string", "format": "date-time"}),
        ("File", "labels", {"type": "object", "additionalProperties": {"type": "string"}}),
        (
            "File",
            "expirationConfig",
            ref("yandex.cloud.ai.common.ExpirationConfig"),
        ),
        ("CreateFileRequest", "content", {"type": "string", "format": "byte", "minLength": 1}),
        ("CreateFileRequest", "folderId", {"type": "string", "minLength": 1}),
        ("ListFilesResponse", "files", {"type": "array", "items": ref(FILES + "File")}),
        ("ListFilesResponse", "nextPageToken", {"type": "string"}),
        ("GetFileUrlResponse", "url", {"type": "string"}),
    ],
)
def test_schemas_are_the_proto3_json_mapping(
    message: str, field: str, schema: dict[str, Any]
) -> None:
    assert SCHEMAS[FILES + message]["properties"][field] == schema


def test_int64_enums_and_status_schemas() -> None:
    expiration = SCHEMAS["yandex.cloud.ai.common.ExpirationConfig"]
    assert expiration["properties"]["ttlDays"] == INT64
    policy = "yandex.cloud.ai.common.ExpirationConfig.ExpirationPolicy"
    assert expiration["properties"]["expirationPolicy"] == ref(policy)
    assert SCHEMAS[policy] == {
        "type": "string",
        "enum": ["EXPIRATION_POLICY_UNSPECIFIED", "STATIC", "SINCE_LAST_ACTIVE"],
    }
    status = SCHEMAS["google.rpc.Status"]["properties"]
    assert status["code"] == {"type": "integer", "format": "int32"}
    assert status["details"]["items"]["properties"] == {"@type": {"type": "string"}}
    assert status["details"]["items"]["required"] == ["@type"]
    assert SCHEMAS[FILES + "DeleteFileResponse"]["properties"] == {}
    # Only what an operation reaches: the Update body is inline, not a component.
    assert FILES + "UpdateFileRequest" not in SCHEMAS
    assert set(SCHEMAS) == {
        "google.rpc.Status",
        "yandex.cloud.ai.common.ExpirationConfig",
        policy,
        *(
            FILES + name
            for name in (
                "CreateFileRequest",
                "DeleteFileResponse",
                "File",
                "GetFileUrlResponse",
                "ListFilesResponse",
            )
        ),
    }


def test_list_query_parameters_are_typed() -> None:
    _, _, listing = operations(DOCUMENT)["FileService_List"]
    params = parameters(listing)
    assert params[("query", "folderId")]["required"] is True
    assert params[("query", "pageSize")]["schema"] == INT64
    assert "required" not in params[("query", "pageToken")]


# --- a service with every other rule kind and type ------------------------------------------

LIBRARY_PROTO = """
syntax = "proto3";
package library.v2;

import "google/api/annotations.proto";
import "google/api/field_behavior.proto";
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/empty.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";

service Library {
  rpc GetBook(GetBookRequest) returns (Book) {
    option (google.api.http) = {
      get: "/v2/{name=shelves/*/books/*}"
      additional_bindings {get: "/v2/books/{name}"}
    };
  }
  rpc UpdateBook(UpdateBookRequest) returns (Book) {
    option (google.api.http) = {patch: "/v2/{book.name=shelves/*/books/*}" body: "book"};
  }
  rpc ListBooks(ListBooksRequest) returns (ListBooksResponse) {
    option (google.api.http) = {get: "/v2/{parent=shelves/*}/books"};
  }
  rpc MoveBook(MoveBookRequest) returns (google.protobuf.Empty) {
    option (google.api.http) = {post: "/v2/*/books/{name}:move" body: "*"};
  }
  rpc Purge(google.protobuf.Empty) returns (google.protobuf.Empty) {
    option (google.api.http) = {custom: {kind: "PURGE" path: "/v2/cache"}};
  }
  rpc NoRule(google.protobuf.Empty) returns (google.protobuf.Empty);
}

enum Genre {
  GENRE_UNSPECIFIED = 0;
  FICTION = 1;
  HISTORY = 2;
}

message Author {
  string display_name = 1;
}

message Book {
  string name = 1;
  string title = 2 [(google.api.field_behavior) = REQUIRED];
  google.protobuf.Timestamp create_time = 3;
  google.protobuf.Duration loan_period = 4;
  google.protobuf.Struct extra = 5;
  google.protobuf.Value anything = 6;
  google.protobuf.ListValue list = 7;
  google.protobuf.Any attachment = 8;
  google.protobuf.Int64Value copies = 9;
  double rating = 10;
  float weight = 11;
  uint32 pages = 12;
  uint64 isbn = 13;
  sint64 offset = 14;
  fixed32 shelf_slot = 15;
  int32 edition = 16;
  bool in_print = 17;
  bytes cover = 18;
  map<int32, Author> authors_by_rank = 19;
  repeated Book related = 20;
  Genre genre = 21;
  repeated string keywords = 22;
  google.protobuf.NullValue nothing = 23;
  google.protobuf.BoolValue lent = 24;
}

message GetBookRequest {
  string name = 1;
}

message UpdateBookRequest {
  Book book = 1;
  google.protobuf.FieldMask update_mask = 2;
  bool allow_missing = 3;
}

message Node {
  string label = 1;
  Node child = 2;
}

message Window {
  int32 days = 1;
  google.protobuf.Timestamp start = 2;
}

message ListBooksRequest {
  string parent = 1;
  int32 page_size = 2;
  bool show_deleted = 3;
  repeated Genre genres = 4;
  repeated int64 ids = 5;
  Window window = 6;
  Node node = 7;
  map<string, string> tags = 8;
  google.protobuf.FieldMask read_mask = 9;
  repeated Window windows = 10;
  string filter = 11 [(google.api.field_behavior) = REQUIRED];
}

message ListBooksResponse {
  repeated Book books = 1;
  string next_page_token = 2;
}

message MoveBookRequest {
  string name = 1;
  string destination = 2;
}
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> ServiceDescriptor:
    root = tmp_path_factory.mktemp("library")
    (root / "library.proto").write_text(LIBRARY_PROTO)
    out = root / "library.binpb"
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"-I{sysconfig.get_paths()['purelib']}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            "library.proto",
        ]
    )
    assert code == 0
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return pool.FindServiceByName("library.v2.Library")


@pytest.fixture(scope="module")
def library_document(library: ServiceDescriptor) -> dict[str, Any]:
    return openapi_document(routes_for(library))


def test_the_library_document_is_valid_openapi(library_document: dict[str, Any]) -> None:
    validate(library_document)
    assert library_document["info"]["title"] == "Library"
    assert library_document["info"]["version"] == "v2"


def test_library_operations(library_document: dict[str, Any]) -> None:
    found = {op_id: (verb, path) for op_id, (verb, path, _) in operations(library_document).items()}
    assert found == {
        "Library_GetBook": ("get", "/v2/{name}"),
        "Library_GetBook_1": ("get", "/v2/books/{name}"),  # the additional binding
        "Library_UpdateBook": ("patch", "/v2/{book.name}"),
        "Library_ListBooks": ("get", "/v2/{parent}/books"),
        "Library_MoveBook": ("post", "/v2/{_segment1}/books/{name}:move"),
        # Purge's PURGE has no OpenAPI counterpart; NoRule has no http rule at all.
    }
    assert "/v2/cache" not in library_document["paths"]


def test_patterned_and_nested_path_variables(library_document: dict[str, Any]) -> None:
    ops = operations(library_document)
    name = parameters(ops["Library_GetBook"][2])[("path", "name")]
    assert name["schema"]["pattern"] == "^shelves/[^/]+/books/[^/]+$"
    assert "pattern" not in parameters(ops["Library_GetBook_1"][2])[("path", "name")]["schema"]
    update = ops["Library_UpdateBook"][2]
    assert parameters(update)[("path", "book.name")]["required"] is True
    # A named body: that field is the body, every other non-path field a query parameter.
    assert body_schema(update) == ref("library.v2.Book")
    assert {name for where, name in parameters(update) if where == "query"} == {
        "updateMask",
        "allowMissing",
    }
    move = ops["Library_MoveBook"][2]
    assert parameters(move)[("path", "_segment1")]["schema"] == {"type": "string"}
    assert body_schema(move)["properties"] == {"destination": {"type": "string"}}
    assert move["responses"]["200"]["content"]["application/json"]["schema"] == ref(
        "google.protobuf.Empty"
    )


def test_query_parameters_of_a_rule_without_body(library_document: dict[str, Any]) -> None:
    _, _, listing = operations(library_document)["Library_ListBooks"]
    query = {name: p for (where, name), p in parameters(listing).items() if where == "query"}
    # Maps, repeated messages and well-known messages other than FieldMask need a body; a
    # recursive message stops at the first repeat.
    assert {name: p["schema"] for name, p in query.items()} == {
        "pageSize": {"type": "integer", "format": "int32"},
        "showDeleted": {"type": "boolean"},
        "genres": {"type": "array", "items": ref("library.v2.Genre")},
        "ids": {"type": "array", "items": INT64},
        "window.days": {"type": "integer", "format": "int32"},
        "node.label": {"type": "string"},
        "readMask": {"type": "string", "description": FIELD_MASK_DESCRIPTION},
        "filter": {"type": "string", "minLength": 1},
    }
    assert query["filter"]["required"] is True
    assert parameters(listing)[("path", "parent")]["schema"]["pattern"] == "^shelves/[^/]+$"


UINT64 = {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"}
UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}


@pytest.mark.parametrize(
    ("field", "schema"),
    [
        ("name", {"type": "string"}),
        ("title", {"type": "string", "minLength": 1}),
        ("createTime", {"type": "string", "format": "date-time"}),
        ("loanPeriod", {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"}),
        ("extra", {"type": "object", "additionalProperties": True}),
        ("anything", {}),
        ("list", {"type": "array", "items": {}}),
        ("copies", INT64),
        ("lent", {"type": "boolean"}),
        (
            "rating",
            {
                "oneOf": [
                    {"type": "number", "format": "double"},
                    {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]},
                ]
            },
        ),
        ("pages", UINT32),
        ("isbn", UINT64),
        ("offset", INT64),
        ("shelfSlot", UINT32),
        ("edition", {"type": "integer", "format": "int32"}),
        ("inPrint", {"type": "boolean"}),
        ("cover", {"type": "string", "format": "byte"}),
        ("authorsByRank", {"type": "object", "additionalProperties": ref("library.v2.Author")}),
        ("related", {"type": "array", "items": ref("library.v2.Book")}),
        ("genre", ref("library.v2.Genre")),
        ("keywords", {"type": "array", "items": {"type": "string"}}),
        ("nothing", {"nullable": True, "enum": [None]}),
    ],
)
def test_every_type_in_proto3_json_form(
    library_document: dict[str, Any], field: str, schema: dict[str, Any]
) -> None:
    assert library_document["components"]["schemas"]["library.v2.Book"]["properties"][field] == (
        schema
    )


def test_library_components(library_document: dict[str, Any]) -> None:
    schemas = library_document["components"]["schemas"]
    assert schemas["library.v2.Book"]["required"] == ["title"]
    assert schemas["library.v2.Book"]["properties"]["attachment"]["required"] == ["@type"]
    assert schemas["library.v2.Genre"]["enum"] == ["GENRE_UNSPECIFIED", "FICTION", "HISTORY"]
    assert schemas["library.v2.Author"]["properties"] == {"displayName": {"type": "string"}}
    assert schemas["google.protobuf.Empty"]["properties"] == {}


# --- served, and fuzzed -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory"])
async def test_the_server_serves_the_document(running: Running) -> None:
    base = f"http://127.0.0.1:{running.server.http_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/openapi.json") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert await response.json() == json.loads(json.dumps(DOCUMENT))
        async with session.post(f"{base}/openapi.json") as response:
            assert response.status == 404  # not an RPC: REST's JSON answer
            assert "no route" in (await response.json())["message"]


# Per backend: rounds of 25 examples per operation until 15 s are spent (~50 s for the three
# backends). One round alone takes ~5 s but missed a planted 500 in 2 of 5 runs; 15 s caught
# it in 5 of 5.
MAX_EXAMPLES = 25
SECONDS = 15
SCHEMATHESIS_TIMEOUT = 120


async def test_schemathesis_finds_no_server_error(running: Running, tmp_path: Path) -> None:
    """Every phase (coverage, fuzzing, stateful through the links it infers) against the live
    listener, positive and negative data; the only check is that nothing answers 5xx."""
    base = f"http://127.0.0.1:{running.server.http_port}"
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{base}/openapi.json",
        "--checks=not_a_server_error",
        f"--max-examples={MAX_EXAMPLES}",
        f"--max-time={SECONDS}",
        "--request-timeout=10",
        # Hypothesis's own health checks (too slow, too much filtering) judge the generator on
        # a busy machine, not the server: only a 5xx or a failed request fails this test.
        "--suppress-health-check=all",
        "--generation-database=none",
        "--no-color",
        "--report=json",
        f"--report-json-path={report}",
        cwd=tmp_path,
        env={**env, "NO_PROXY": "*"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), SCHEMATHESIS_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    result = json.loads(report.read_text())
    assert (result["failures"], result["errors"]) == ([], []), text
    assert result["operations"]["tested"] == len(ROUTES), text
    assert result["test_cases"]["generated"] >= MAX_EXAMPLES * len(ROUTES), text
