"""`grpcurl` and `buf curl`, as a user runs them, against a real `python -m server` (SQLite).

Both tools learn the schema only from the server's reflection service, so these tests prove
reflection (v1alpha for grpcurl, v1 and v1alpha for buf) as well as the RPCs. Values are checked
against what the generated Python stub reads from the same server, so a timestamp that lost its
nanoseconds, a mask applied wrongly or a wrong status code fails here.
"""

from __future__ import annotations

import base64
import calendar
import dataclasses
import json
import re
import subprocess
import time
import urllib.request
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tests.support import VENV_BIN, server_process

if TYPE_CHECKING:
    from collections.abc import Iterator

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from tests.support import ServerProcess

SERVICE = "yandex.cloud.ai.files.v1.FileService"
METHODS = ("Create", "Delete", "Get", "GetUrl", "List", "Update")
SERVICES = {
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    SERVICE,
}
NS_PER_DAY = 86_400 * 10**9
TOOL_TIMEOUT = 30
# The exit status on a failed RPC: grpcurl adds 64 to the gRPC code, buf shifts it left by 3.
GRPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    store = tmp_path_factory.mktemp("explorers") / "files.db"
    with server_process("--store", f"sqlite:///{store}") as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[file_service_pb2_grpc.FileServiceStub]:
    """The generated Python stub: the reference the explorers' output is checked against."""
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield file_service_pb2_grpc.FileServiceStub(channel)


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(VENV_BIN / "grpcurl"), "-plaintext", *args])


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [str(VENV_BIN / "buf"), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    )


def grpcurl_call(server: ServerProcess, method: str, body: dict[str, Any]) -> dict[str, Any]:
    result = grpcurl("-d", json.dumps(body), server.grpc_address, f"{SERVICE}/{method}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def buf_call(server: ServerProcess, method: str, body: dict[str, Any]) -> dict[str, Any]:
    result = buf_curl("-d", json.dumps(body), f"http://{server.grpc_address}/{SERVICE}/{method}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def b64(content: bytes) -> str:
    return base64.b64encode(content).decode()


def rfc3339_ns(text: str) -> int:
    """Parses a protojson Timestamp ("2026-01-02T03:04:05.123456789Z") to nanoseconds."""
    assert text.endswith("Z"), text
    whole, _, fraction = text[:-1].partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    assert len(fraction) in (0, 3, 6, 9), text
    return seconds * 10**9 + int(fraction.ljust(9, "0"))


def protojson_timestamp(ns: int) -> str:
    """How protojson must print `ns`: 0, 3, 6 or 9 fraction digits, never fewer than needed."""
    seconds, nanos = divmod(ns, 10**9)
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos == 0:
        return f"{whole}Z"
    for digits, unit in ((3, 10**6), (6, 10**3)):
        if nanos % unit == 0:
            return f"{whole}.{nanos // unit:0{digits}d}Z"
    return f"{whole}.{nanos:09d}Z"


def assert_timestamps_exact(printed: dict[str, Any], reference: file_pb2.File, camel: bool) -> None:
    """Every timestamp the tool printed is the reference's, to the nanosecond."""
    for field in ("created_at", "updated_at", "expires_at"):
        key = _camel(field) if camel else field
        ns = getattr(reference, field).ToNanoseconds()
        assert printed[key] == protojson_timestamp(ns), (field, printed[key], ns)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def assert_sub_microsecond_precision(*printed: str) -> None:
    """With a nanosecond clock, at least one of these carries all nine digits (a truncating
    server would print at most six); a clock of coarser resolution cannot show this."""
    if time.get_clock_info("time").resolution >= 1e-6:
        return
    assert any(re.fullmatch(r".*\.[0-9]{9}Z", text) for text in printed), printed


# --- reflection and discovery ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", [None, "grpc-v1", "grpc-v1alpha"])
def test_buf_lists_services_and_methods_by_reflection(
    server: ServerProcess, protocol: str | None
) -> None:
    flags = ["--reflect-protocol", protocol] if protocol else []
    services = buf_curl(*flags, "--list-services", f"http://{server.grpc_address}")
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == SERVICES
    methods = buf_curl(*flags, "--list-methods", f"http://{server.grpc_address}")
    assert methods.returncode == 0, methods.stderr
    assert {f"{SERVICE}/{m}" for m in METHODS} <= set(methods.stdout.split())


@pytest.fixture
def v1alpha_only_server() -> Iterator[str]:
    """A bare grpcio server with only the v1alpha reflection grpcio-reflection ships."""
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), bare)
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, bare)
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        bare.stop(None)


def test_buf_reflect_protocol_flag_does_not_fall_back(v1alpha_only_server: str) -> None:
    """The control that gives the grpc-v1 case above its meaning: pinned to v1, buf fails on a
    server without v1 reflection instead of quietly using v1alpha."""
    url = f"http://{v1alpha_only_server}"
    assert buf_curl("--reflect-protocol", "grpc-v1alpha", "--list-services", url).returncode == 0
    assert buf_curl("--reflect-protocol", "grpc-v1", "--list-services", url).returncode != 0


def test_grpcurl_lists_services_by_reflection(server: ServerProcess) -> None:
    result = grpcurl(server.grpc_address, "list")
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_grpcurl_describes_file_service_with_its_http_rules(server: ServerProcess) -> None:
    result = grpcurl(server.grpc_address, "describe", SERVICE)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"{SERVICE} is a service:")
    package = ".yandex.cloud.ai.files.v1"
    for method, request, response, rule in [
        ("Create", "CreateFileRequest", "File", 'post:"/files/v1/files" body:"*"'),
        ("Get", "GetFileRequest", "File", 'get:"/files/v1/files/{file_id}"'),
        ("GetUrl", "GetFileUrlRequest", "GetFileUrlResponse", 'get:"/files/v1/files:getUrl"'),
        ("Update", "UpdateFileRequest", "File", 'patch:"/files/v1/files/{file_id}" body:"*"'),
        ("Delete", "DeleteFileRequest", "DeleteFileResponse", 'delete:"/files/v1/files/{file_id}"'),
        ("List", "ListFilesRequest", "ListFilesResponse", 'get:"/files/v1/files"'),
    ]:
        signature = f"rpc {method} ( {package}.{request} ) returns ( {package}.{response} ) {{"
        assert signature in text, signature
        after = text[text.index(signature) :]
        assert f"option (.google.api.http) = {{ {rule} " in after.splitlines()[1], method


def test_grpcurl_describes_the_required_option_on_update_request(server: ServerProcess) -> None:
    result = grpcurl(server.grpc_address, "describe", "yandex.cloud.ai.files.v1.UpdateFileRequest")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[:2] == [
        "yandex.cloud.ai.files.v1.UpdateFileRequest is a message:",
        "message UpdateFileRequest {",
    ]
    assert lines[2:8] == [
        "string file_id = 1 [(.yandex.cloud.required) = true];",
        ".google.protobuf.FieldMask update_mask = 2 [(.yandex.cloud.required) = true];",
        "string name = 3;",
        "string description = 4;",
        ".yandex.cloud.ai.common.ExpirationConfig expiration_config = 5;",
        "map<string, string> labels = 6;",
    ]


@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_check_by_both_tools(server: ServerProcess, service: str) -> None:
    body = json.dumps({"service": service})
    method = "grpc.health.v1.Health/Check"
    by_grpcurl = grpcurl("-d", body, server.grpc_address, method)
    by_buf = buf_curl("-d", body, f"http://{server.grpc_address}/{method}")
    for result in (by_grpcurl, by_buf):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"status": "SERVING"}


# --- grpcurl: Create, Update, Get, GetUrl ------------------------------------------------------


def test_grpcurl_create_update_get_with_object_form_masks(
    server: ServerProcess, stub: file_service_pb2_grpc.FileServiceStub
) -> None:
    created = grpcurl_call(
        server,
        "Create",
        {
            "folder_id": "explorers-grpcurl",
            "name": "notes.txt",
            "content": b64(b"hello, files!\n"),
            "labels": {"team.name": "ml", "env": "dev"},
        },
    )
    file_id = created["id"]
    reference = stub.Get(fs.GetFileRequest(file_id=file_id))
    assert {k: v for k, v in created.items() if not k.endswith("_at")} == {
        "id": reference.id,
        "folder_id": "explorers-grpcurl",
        "name": "notes.txt",
        "mime_type": "text/plain",
        "created_by": "anonymous",
        "updated_by": "anonymous",
        "expiration_config": {"expiration_policy": "SINCE_LAST_ACTIVE", "ttl_days": "7"},
        "labels": {"env": "dev", "team.name": "ml"},
    }
    assert_timestamps_exact(created, reference, camel=False)
    assert created["created_at"] == created["updated_at"]
    assert rfc3339_ns(created["expires_at"]) - rfc3339_ns(created["created_at"]) == 7 * NS_PER_DAY

    renamed = grpcurl_call(
        server,
        "Update",
        {
            "file_id": file_id,
            "update_mask": {"paths": ["name", "labels.`team.name`"]},
            "name": "notes-v2.txt",
            "labels": {"team.name": "search", "env": "ignored: not in the mask"},
        },
    )
    assert renamed["name"] == "notes-v2.txt"
    assert renamed["labels"] == {"env": "dev", "team.name": "search"}
    assert renamed["created_at"] == created["created_at"]
    assert rfc3339_ns(renamed["updated_at"]) > rfc3339_ns(created["updated_at"])

    extended = grpcurl_call(
        server,
        "Update",
        {
            "file_id": file_id,
            "update_mask": {"paths": ["labels.env", "expiration_config.ttl_days"]},
            "expiration_config": {"ttl_days": 30},
        },
    )
    assert extended["labels"] == {"team.name": "search"}
    assert extended["expiration_config"] == {
        "expiration_policy": "SINCE_LAST_ACTIVE",
        "ttl_days": "30",
    }
    assert (
        rfc3339_ns(extended["expires_at"]) - rfc3339_ns(extended["updated_at"]) == 30 * NS_PER_DAY
    )

    got = grpcurl_call(server, "Get", {"file_id": file_id})
    assert got == extended
    assert_timestamps_exact(got, stub.Get(fs.GetFileRequest(file_id=file_id)), camel=False)
    assert_sub_microsecond_precision(
        created["created_at"], renamed["updated_at"], extended["updated_at"]
    )


def test_grpcurl_get_url_link_downloads_the_content(server: ServerProcess) -> None:
    created = grpcurl_call(
        server,
        "Create",
        {"folder_id": "explorers-url", "name": "data.bin", "content": b64(b"\x00\x01binary")},
    )
    url = grpcurl_call(server, "GetUrl", {"file_id": created["id"]})["url"]
    assert url.startswith(f"http://{server.http_address}/files/v1/files/{created['id']}/content?")
    with urllib.request.urlopen(url, timeout=TOOL_TIMEOUT) as response:
        assert response.read() == b"\x00\x01binary"


# --- buf curl: Create, Get, Update (string-form masks), List, Delete ---------------------------


def test_buf_create_get_update_with_string_form_masks(
    server: ServerProcess, stub: file_service_pb2_grpc.FileServiceStub
) -> None:
    created = buf_call(
        server,
        "Create",
        {
            "folder_id": "explorers-buf",
            "name": "visits.csv",
            "mime_type": "text/csv",
            "content": b64(b"city,visits\nOslo,3\n"),
            "labels": {"env": "dev", "owner": "ann"},
            "expiration_config": {"expiration_policy": "STATIC", "ttl_days": 30},
        },
    )
    file_id = created["id"]
    reference = stub.Get(fs.GetFileRequest(file_id=file_id))
    # buf prints protojson's lowerCamelCase names.
    assert {k: v for k, v in created.items() if not k.endswith("At")} == {
        "id": reference.id,
        "folderId": "explorers-buf",
        "name": "visits.csv",
        "mimeType": "text/csv",
        "createdBy": "anonymous",
        "updatedBy": "anonymous",
        "expirationConfig": {"expirationPolicy": "STATIC", "ttlDays": "30"},
        "labels": {"env": "dev", "owner": "ann"},
    }
    assert_timestamps_exact(created, reference, camel=True)
    assert buf_call(server, "Get", {"file_id": file_id}) == created

    # The whole map is named: labels are replaced, not merged.
    replaced = buf_call(
        server,
        "Update",
        {
            "file_id": file_id,
            "update_mask": "name,labels",
            "name": "visits-2026.csv",
            "labels": {"env": "prod"},
            "description": "ignored: not in the mask",
        },
    )
    assert replaced["name"] == "visits-2026.csv"
    assert replaced["labels"] == {"env": "prod"}
    assert "description" not in replaced

    # protojson's string form takes lowerCamelCase paths and sends them as field names.
    described = buf_call(
        server,
        "Update",
        {
            "fileId": file_id,
            "updateMask": "description,expirationConfig.ttlDays",
            "description": "monthly",
            "expirationConfig": {"ttlDays": "90"},
        },
    )
    assert described["description"] == "monthly"
    assert described["expirationConfig"] == {"expirationPolicy": "STATIC", "ttlDays": "90"}
    # STATIC counts from creation, however recent the update.
    assert rfc3339_ns(described["expiresAt"]) - rfc3339_ns(created["createdAt"]) == 90 * NS_PER_DAY
    assert_timestamps_exact(described, stub.Get(fs.GetFileRequest(file_id=file_id)), camel=True)
    assert_sub_microsecond_precision(
        created["createdAt"], replaced["updatedAt"], described["updatedAt"]
    )


def test_buf_lists_newest_first_following_page_tokens(server: ServerProcess) -> None:
    folder = "explorers-paging"
    for name in ("a", "b", "c"):
        buf_call(server, "Create", {"folderId": folder, "name": name, "content": b64(b"x")})
    names: list[str] = []
    token = ""
    for _ in range(5):
        page = buf_call(server, "List", {"folderId": folder, "pageSize": "2", "pageToken": token})
        if not page.get("files"):
            assert "nextPageToken" not in page
            break
        names += [f["name"] for f in page["files"]]
        token = page["nextPageToken"]
    assert names == ["c", "b", "a"]


def test_buf_delete_then_the_file_is_gone(server: ServerProcess) -> None:
    created = buf_call(
        server, "Create", {"folderId": "explorers-delete", "name": "tmp", "content": b64(b"x")}
    )
    assert buf_call(server, "Delete", {"fileId": created["id"]}) == {}
    again = buf_curl(
        "-d", json.dumps({"fileId": created["id"]}), f"http://{server.grpc_address}/{SERVICE}/Get"
    )
    assert again.returncode == GRPC_CODES["NOT_FOUND"] << 3, again.stderr


# --- errors ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def victim(stub: file_service_pb2_grpc.FileServiceStub) -> file_pb2.File:
    """A file the failing calls aim at; they must leave it as it was."""
    return stub.Create(
        fs.CreateFileRequest(
            folder_id="explorers-errors", name="keep.txt", content=b"keep", labels={"env": "dev"}
        )
    )


@dataclasses.dataclass(frozen=True)
class Failing:
    """One call that must fail: `{id}` in the body stands for the victim file's id."""

    tool: str
    method: str
    body: dict[str, Any]
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.tool}-{self.method}-{self.code}-{self.message[:30]}"


ERRORS = [
    Failing("grpcurl", "Get", {"file_id": "missing"}, "NOT_FOUND", "file 'missing' not found"),
    Failing("grpcurl", "Delete", {"file_id": "missing"}, "NOT_FOUND", "file 'missing' not found"),
    Failing(
        "grpcurl",
        "Update",
        {"file_id": "{id}", "update_mask": {"paths": ["mime_type"]}},
        "INVALID_ARGUMENT",
        "invalid update_mask path 'mime_type': mime_type is output-only",
    ),
    Failing(
        "grpcurl",
        "Update",
        {"file_id": "{id}", "update_mask": {"paths": ["labels.`team.name"]}},
        "INVALID_ARGUMENT",
        "unterminated backtick",
    ),
    Failing(
        "grpcurl",
        "Update",
        {"file_id": "{id}", "update_mask": {"paths": ["name", "size"]}, "name": "x"},
        "INVALID_ARGUMENT",
        "File has no updatable field 'size'",
    ),
    Failing(
        "grpcurl",
        "Create",
        {"folder_id": "explorers-errors", "name": "empty"},
        "INVALID_ARGUMENT",
        "content: is required",
    ),
    Failing("buf", "Get", {"fileId": "missing"}, "NOT_FOUND", "file 'missing' not found"),
    Failing(
        "buf",
        "Update",
        {"fileId": "{id}", "updateMask": "labels.team.name", "labels": {"team.name": "x"}},
        "INVALID_ARGUMENT",
        "a label value is a string: name one key, in backticks if needed",
    ),
    Failing(
        "buf",
        "Update",
        {"fileId": "{id}", "updateMask": "createdAt"},
        "INVALID_ARGUMENT",
        "created_at is output-only",
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=str)
def test_explorers_report_errors_with_their_code(
    server: ServerProcess,
    stub: file_service_pb2_grpc.FileServiceStub,
    victim: file_pb2.File,
    case: Failing,
) -> None:
    request = json.dumps(case.body).replace("{id}", victim.id)
    code = GRPC_CODES[case.code]
    if case.tool == "grpcurl":
        result = grpcurl("-d", request, server.grpc_address, f"{SERVICE}/{case.method}")
        assert result.returncode == 64 + code, result.stderr
        assert result.stdout == ""
        shown = case.code.title().replace("_", "")  # NOT_FOUND -> NotFound
        assert f"Code: {shown}\n" in result.stderr
        message = next(line for line in result.stderr.splitlines() if "Message:" in line)
        assert case.message in message
        if case.code == "INVALID_ARGUMENT":
            assert '"@type":"type.googleapis.com/google.rpc.BadRequest"' in result.stderr
    else:
        result = buf_curl("-d", request, f"http://{server.grpc_address}/{SERVICE}/{case.method}")
        assert result.returncode == code << 3, result.stderr
        assert result.stdout == ""
        error = json.loads(result.stderr)
        assert error["code"] == case.code.lower()
        assert case.message in error["message"]
        if case.code == "INVALID_ARGUMENT":
            assert [d["type"] for d in error["details"]] == ["google.rpc.BadRequest"]
    assert stub.Get(fs.GetFileRequest(file_id=victim.id)) == victim
