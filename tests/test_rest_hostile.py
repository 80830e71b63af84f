"""REST under hostile input, case by case: malformed JSON, wrong types, lone surrogates, deep
nesting, oversized bodies, path traversal in ids, header injection through names and MIME types.

Every answer is a 4xx with a JSON google.rpc.Status that says what is wrong, never a 5xx, and
nothing is logged at ERROR (tests/test_hostile.py generates such requests at random; this file
pins the cases one by one, so a regression names its case).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest
from google.rpc import code_pb2
from hypothesis import strategies as st

from files_api.bodies import MAX_BODY_BYTES
from tests.inprocess import Reply, ThreadedServer, threaded_server

if TYPE_CHECKING:
    from collections.abc import Iterator

CONTENT = base64.b64encode(b"hello").decode()
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(module_store_url: str) -> Iterator[ThreadedServer]:
    with threaded_server(module_store_url) as server:
        yield server


@pytest.fixture(autouse=True)
def start_clean(served: ThreadedServer) -> None:
    served.errors.take()


def quiet(served: ThreadedServer) -> None:
    """Nothing logged at ERROR, and no traceback, while the test ran."""
    assert served.errors.take() == []


def status_of(reply: Reply) -> dict[str, Any]:
    """The JSON google.rpc.Status of an error reply, checked for shape."""
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    body = reply.json()
    assert isinstance(body, dict) and isinstance(body.get("code"), int), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert body["code"] not in (code_pb2.INTERNAL, code_pb2.UNKNOWN), body
    return body


def create(served: ThreadedServer, **fields: Any) -> dict[str, Any]:
    reply = served.http_json(
        "POST", "/files/v1/files", {"folderId": "rest-hostile", "content": CONTENT, **fields}
    )
    assert reply.status == 200, reply.body
    return dict(reply.json())


# (name, raw JSON body of a Create, words the message must contain)
MALFORMED_CREATES = [
    ("truncated JSON", b'{"folderId": ', "not valid JSON"),
    ("trailing garbage", b'{"folderId": "f"} x', "not valid JSON"),
    ("single quotes", b"{'folderId': 'f'}", "not valid JSON"),
    ("not UTF-8", b'{"folderId": "\xff\xfe"}', "not valid JSON"),
    ("UTF-16 BOM", '{"folderId": "f"}'.encode("utf-16"), ""),
    ("an array", b"[]", "JSON object"),
    ("a string", b'"folderId"', "JSON object"),
    ("null", b"null", "JSON object"),
    ("a number", b"1", "JSON object"),
    ("duplicate keys", b'{"folderId": "a", "folderId": "b"}', "duplicate"),
    ("unknown field", b'{"folderId": "f", "content": "aGk=", "nope": 1}', "nope"),
    ("name is a number", b'{"folderId": "f", "content": "aGk=", "name": 5}', "name"),
    ("name is an object", b'{"folderId": "f", "content": "aGk=", "name": {}}', "name"),
    ("labels is a list", b'{"folderId": "f", "content": "aGk=", "labels": []}', "labels"),
    ("label value a number", b'{"folderId": "f", "content": "aGk=", "labels": {"a": 1}}', "labels"),
    ("label value null", b'{"folderId": "f", "content": "aGk=", "labels": {"a": null}}', "labels"),
    (
        "expirationConfig a string",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": "x"}',
        "expirationConfig",
    ),
    (
        "ttlDays not a number",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": "abc"}}',
        "ttlDays",
    ),
    (
        "ttlDays a fraction",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": 1.5}}',
        "ttlDays",
    ),
    (
        "ttlDays NaN",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": NaN}}',
        "ttlDays",
    ),
    (
        "ttlDays infinite",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": 1e400}}',
        "ttlDays",
    ),
    (
        "ttlDays past int64",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": "%d"}}' % 2**63,
        "ttlDays",
    ),
    (
        "ttlDays with 5000 digits",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"ttlDays": '
        + b"9" * 5000
        + b"}}",
        "",
    ),
    (
        "unknown policy name",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"expirationPolicy": "NOPE"}}',
        "expirationPolicy",
    ),
    # 2**32 + 2 must not wrap around to 2 (STATIC), nor 1.5 and true round down to 1.
    (
        "policy past int32",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"expirationPolicy": %d}}'
        % (2**32 + 2),
        "expirationPolicy",
    ),
    (
        "policy a fraction",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"expirationPolicy": 1.5}}',
        "expirationPolicy",
    ),
    (
        "policy a boolean",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"expirationPolicy": true}}',
        "expirationPolicy",
    ),
    (
        "unknown policy number",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": {"expirationPolicy": 99}}',
        "expiration_policy",
    ),
    ("content not base64", b'{"folderId": "f", "content": "!!"}', "base64"),
    ("content a number", b'{"folderId": "f", "content": 5}', "content"),
    ("content empty", b'{"folderId": "f", "content": ""}', "content"),
    ("folderId an object", b'{"folderId": {}, "content": "aGk="}', "folderId"),
    ("folderId missing", b'{"content": "aGk="}', "folder_id"),
    # Lone surrogates only exist in JSON (a proto string cannot hold one).
    ("surrogate in folderId", b'{"folderId": "\\ud800", "content": "aGk="}', "folderId"),
    ("surrogate in name", b'{"folderId": "f", "content": "aGk=", "name": "a\\udfff"}', "name"),
    (
        "surrogate in a label key",
        b'{"folderId": "f", "content": "aGk=", "labels": {"\\udfff": "a"}}',
        "unpaired surrogate",
    ),
    (
        "surrogate in a label value",
        b'{"folderId": "f", "content": "aGk=", "labels": {"a": "\\ud800"}}',
        "labels",
    ),
    # Echoed in the message, which must still encode: the surrogate as its escape.
    (
        "labels a lone surrogate",
        b'{"folderId": "f", "content": "aGk=", "labels": "\\ud800"}',
        "\\ud800",
    ),
    ("surrogate as a field name", b'{"\\ud800": 1, "folderId": "f", "content": "aGk="}', ""),
    ("NUL in the name", b'{"folderId": "f", "content": "aGk=", "name": "a\\u0000b"}', "name"),
    ("CR LF in the name", b'{"folderId": "f", "content": "aGk=", "name": "a\\r\\nb"}', "name"),
    # One field under both of its spellings: protobuf's parser calls it given more than once.
    (
        "folder under both spellings",
        b'{"folderId": "a", "folder_id": "b", "content": "aGk="}',
        "more than once",
    ),
    (
        "expirationConfig a list",
        b'{"folderId": "f", "content": "aGk=", "expirationConfig": []}',
        "expected a JSON object",
    ),
    ("deeply nested arrays", b"[" * 100_000, ""),
    ("deeply nested objects", b'{"labels": ' * 50_000, ""),
    (
        "deeply nested field value",
        b'{"folderId": "f", "content": "aGk=", "labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "",
    ),
]


@pytest.mark.parametrize(
    ("body", "words"),
    [pytest.param(body, words, id=name) for name, body, words in MALFORMED_CREATES],
)
def test_malformed_create_is_400_with_a_clear_message(
    served: ThreadedServer, body: bytes, words: str
) -> None:
    reply = served.http("POST", "/files/v1/files", body, JSON)
    assert reply.status == 400, reply.body[:300]
    status = status_of(reply)
    assert status["code"] == code_pb2.INVALID_ARGUMENT
    assert words in status["message"], status
    quiet(served)


def test_wrong_content_type_is_400(served: ThreadedServer) -> None:
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""]:
        reply = served.http(
            "POST",
            "/files/v1/files",
            b'{"folderId": "f", "content": "aGk="}',
            {"Content-Type": content_type} if content_type else {},
        )
        assert reply.status == 400, reply.body
        assert "application/json" in status_of(reply)["message"]
    quiet(served)


@pytest.fixture(scope="module")
def target(served: ThreadedServer) -> str:
    return f"/files/v1/files/{create(served, name='patched.txt')['id']}"


POLICY_MASK = "expirationConfig.expirationPolicy"
# (name, PATCH body, words the message must contain)
MALFORMED_PATCHES = [
    ("mask a list", {"updateMask": ["name"]}, "FieldMask"),
    ("mask a number", {"updateMask": 5}, "FieldMask"),
    ("mask with a surrogate", {"updateMask": "\ud800"}, ""),
    ("mask key with a surrogate", {"updateMask": "labels.`\ud800`"}, ""),
    ("mask output-only", {"updateMask": "createdAt"}, "created_at"),
    ("mask unknown", {"updateMask": "nmae"}, "nmae"),
    ("mask unterminated backtick", {"updateMask": "labels.`a"}, "update_mask"),
    ("file id differs from the path", {"updateMask": "name", "fileId": "other"}, "file_id"),
    (
        "policy a fraction",
        {"updateMask": POLICY_MASK, "expirationConfig": {"expirationPolicy": 1.5}},
        "expirationPolicy",
    ),
    (
        "policy a boolean",
        {"updateMask": POLICY_MASK, "expirationConfig": {"expirationPolicy": True}},
        "expirationPolicy",
    ),
    (
        "policy past int32",
        {"updateMask": POLICY_MASK, "expirationConfig": {"expirationPolicy": 2**32 + 2}},
        "expirationPolicy",
    ),
    ("labels null values", {"updateMask": "labels", "labels": {"a": None}}, "labels"),
    ("name with CR LF", {"updateMask": "name", "name": "x\r\nSet-Cookie: a=b"}, "name"),
]


@pytest.mark.parametrize(
    ("body", "words"),
    [pytest.param(body, words, id=name) for name, body, words in MALFORMED_PATCHES],
)
def test_malformed_patch_is_400_and_changes_nothing(
    served: ThreadedServer, target: str, body: dict[str, Any], words: str
) -> None:
    before = served.http("GET", target).json()
    reply = served.http_json("PATCH", target, body)
    assert reply.status == 400, reply.body[:300]
    status = status_of(reply)
    assert status["code"] == code_pb2.INVALID_ARGUMENT
    assert words in status["message"], status
    assert served.http("GET", target).json() == before
    quiet(served)


# (name, target, expected HTTP status)
ODD_TARGETS = [
    ("traversal, encoded slashes", "/files/v1/files/..%2F..%2Fetc%2Fpasswd", 400),
    ("traversal, encoded dots", "/files/v1/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
    ("traversal, backslashes", "/files/v1/files/..%5C..%5Cetc%5Cpasswd", 400),
    ("traversal, raw", "/files/v1/files/../../etc/passwd", 404),
    ("traversal, the store file", "/files/v1/files/files.db", 400),
    ("traversal, absolute", "/files/v1/files/%2Fetc%2Fpasswd", 400),
    ("traversal on getUrl", "/files/v1/files:getUrl?fileId=..%2F..%2Fetc%2Fpasswd", 400),
    ("traversal on download", "/files/v1/files/..%2F..%2Fetc%2Fpasswd/content", 403),
    ("double slash", "//etc/passwd", 404),
    ("NUL in the id", "/files/v1/files/a%00b", 400),
    ("CR LF in the id", "/files/v1/files/a%0D%0ASet-Cookie:%20x", 404),  # no route matches it
    ("bad percent escape", "/files/v1/files/%ZZ", 400),
    ("encoded surrogate", "/files/v1/files/%ED%A0%80", 400),
    ("long id", "/files/v1/files/" + "a" * 5000, 400),
    ("negative page size", "/files/v1/files?folderId=f&pageSize=-1", 400),
    ("page size not a number", "/files/v1/files?folderId=f&pageSize=abc", 400),
    ("page size past int64", "/files/v1/files?folderId=f&pageSize=9223372036854775808", 400),
    ("page size twice", "/files/v1/files?folderId=f&pageSize=1&pageSize=2", 400),
    ("forged page token", "/files/v1/files?folderId=f&pageToken=WyJmIiwwLCJhIl0", 400),
    ("page token with NUL", "/files/v1/files?folderId=f&pageToken=%00", 400),
    ("unknown query parameter", "/files/v1/files?folderId=f&debug=1", 400),
    ("no folder", "/files/v1/files", 400),
    ("folder with NUL", "/files/v1/files?folderId=a%00", 400),
]


@pytest.mark.parametrize(
    ("target", "expected"),
    [pytest.param(target, expected, id=name) for name, target, expected in ODD_TARGETS],
)
def test_odd_paths_and_queries_answer_json(
    served: ThreadedServer, target: str, expected: int
) -> None:
    reply = served.http("GET", target)
    assert reply.status == expected, reply.body
    message = status_of(reply)["message"]
    if expected == 400 and "%2F" in target.upper():  # an id with a slash in it, said plainly
        assert "is not a file id" in message, message
    assert b"root:" not in reply.body  # nothing of /etc/passwd, or any other file, comes back
    quiet(served)


def test_unknown_verbs_and_bodies_where_none_belong(served: ThreadedServer) -> None:
    reply = served.http("PUT", "/files/v1/files", b"{}", JSON)
    assert reply.status == 405 and reply.headers["Allow"], reply.body
    status_of(reply)
    reply = served.http("GET", "/files/v1/files/abc", b'{"fileId": "abc"}', JSON)
    assert reply.status == 400, reply.body
    assert "no request body" in status_of(reply)["message"]
    quiet(served)


def test_oversized_body_is_413_json(served: ThreadedServer) -> None:
    """More than the largest Create can be (128 MiB of base64 and room) is refused with 413
    before the body is parsed; the server answers and keeps serving."""
    size = MAX_BODY_BYTES + 1024
    with socket.create_connection(("127.0.0.1", served.http_port), timeout=60) as sock:
        sock.sendall(
            b"POST /files/v1/files HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
        )
        chunk, sent = b" " * (1 << 20), 0
        try:
            while sent < size:
                sent += sock.send(chunk[: size - sent])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the client has sent everything
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read(int(response.headers["Content-Length"]))
    assert response.status == 413, body
    assert json.loads(body)["code"] == code_pb2.RESOURCE_EXHAUSTED
    assert served.http("GET", "/files/v1/files?folderId=f").status == 200
    quiet(served)


DISPOSITION = re.compile(r"attachment; filename=\"([ !#-\[\]-~]*)\"; filename\*=UTF-8''([^\s;\"]*)")


@pytest.mark.parametrize(
    "name",
    [
        'evil"; filename="evil.exe',
        'quote" backslash\\ semicolon; comma, equals=',
        "отчёт 2024.pdf",
        "\u202etxt.exe",  # RTL override: shown reversed, so escaped in both forms
        "emoji \U0001f600 and 𐍈.txt",
        "../../etc/passwd",
        "%0d%0aSet-Cookie: x=1",
        "a" * 300,
    ],
)
def test_download_names_are_quoted_safely(served: ThreadedServer, name: str) -> None:
    file = create(served, name=name)
    link = served.http("GET", f"/files/v1/files:getUrl?fileId={file['id']}").json()["url"]
    parts = urllib.parse.urlsplit(link)
    reply = served.http("GET", f"{parts.path}?{parts.query}")
    assert (reply.status, reply.body) == (200, b"hello")
    disposition = reply.headers["Content-Disposition"]
    match = DISPOSITION.fullmatch(disposition)
    assert match, disposition
    assert urllib.parse.unquote(match[2], errors="strict") == name
    quiet(served)


@pytest.mark.parametrize(
    "name",
    ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "tab\there"],
)
def test_create_refuses_control_characters_in_names(served: ThreadedServer, name: str) -> None:
    reply = served.http_json(
        "POST", "/files/v1/files", {"folderId": "rest-hostile", "content": CONTENT, "name": name}
    )
    assert reply.status == 400, reply.body
    assert status_of(reply)["message"].startswith("name")
    quiet(served)


@pytest.mark.parametrize(
    "mime_type",
    [
        "text/plain\r\nSet-Cookie: x=1",
        "text/plain\r\n;x=1",
        "text/plain\n;x=1",
        "text/plain\x0b;x=1",
        "text/plain\x0c;x=1",
        "text/plain\x1c;x=1",
        "text/pl\u0430in",  # a Cyrillic a: not a token character of RFC 6838
        "text/plain;\u0085x",
    ],
)
def test_create_refuses_mime_types_that_cannot_be_a_header(
    served: ThreadedServer, mime_type: str
) -> None:
    """A MIME type goes out as the download's Content-Type header, so it must be printable
    ASCII: an accepted CR or LF would break every later download of the file."""
    reply = served.http_json(
        "POST",
        "/files/v1/files",
        {"folderId": "rest-hostile", "content": CONTENT, "mimeType": mime_type},
    )
    assert reply.status == 400, reply.body
    assert "mime_type" in status_of(reply)["message"]
    quiet(served)


FIELD_NAMES = ["folderId", "folder_id", "name", "content", "labels", "expirationConfig", "x", ""]


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    body = b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (boundary.encode(), name.encode(), value)
        for name, value in parts
    )
    return body + b"--%s--\r\n" % boundary.encode()


@hypothesis.settings(
    max_examples=120, deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
@hypothesis.given(
    parts=st.lists(
        st.tuples(
            st.sampled_from(FIELD_NAMES),
            st.one_of(
                st.binary(max_size=64),
                st.sampled_from([b"f1", b'{"a": "b"}', b"{", b"[1]", b'"s"', b"\xed\xa0\x80"]),
            ),
        ),
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=400),
    content_type=st.sampled_from(
        ["multipart/form-data; boundary=b0undary", "multipart/form-data", "multipart/mixed"]
    ),
)
def test_any_multipart_body_is_ok_or_a_json_4xx(
    served: ThreadedServer, parts: list[tuple[str, bytes]], cut: int, content_type: str
) -> None:
    body = multipart(parts)
    body = body[: len(body) - cut] if cut < len(body) else body  # often truncated
    reply = served.http("POST", "/files/v1/files", body, {"Content-Type": content_type})
    assert reply.status == 200 or 400 <= reply.status < 500, reply.body[:300]
    if reply.status != 200:
        status_of(reply)
    quiet(served)
