"""Hostile and broken input, generated: every FileService request and field, over gRPC and REST.

Hypothesis builds the requests (random FieldMask paths, label maps, unicode with NUL, RTL marks
and 4-byte characters, strings around and past every limit, int64 extremes, unknown enum
numbers, unknown fields, random bytes) and each example checks one property:

* the answer is OK or exactly the code a small model of the README's rules predicts
  (INVALID_ARGUMENT, NOT_FOUND, ...), never INTERNAL or UNKNOWN, and nothing is logged at ERROR;
* a rejected Update leaves the file exactly as it was; an accepted one changes exactly what its
  mask names, as the README's Update table says (the model below is written from that table,
  not from the server's code);
* over REST, random methods, paths, query strings and JSON bodies (lone surrogates included,
  which only JSON can carry) never get a 5xx, and every error is a JSON google.rpc.Status.

One server per backend serves the whole module (a thread of its own, see tests/inprocess.py),
and examples are derandomized, so a run is reproducible and bounded: EXAMPLES below is how many
each test runs per backend.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import urllib.parse
from typing import TYPE_CHECKING, Any, NamedTuple

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2, text_format
from google.protobuf import message as protobuf_message
from google.rpc import code_pb2, error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from files_api.auth import add_key
from files_api.errors import http_status
from tests.inprocess import ThreadedServer, threaded_server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXAMPLES = 200
NS_PER_DAY = 86_400 * 10**9
SERVICE = "/yandex.cloud.ai.files.v1.FileService/"

HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# --------------------------------------------------------------------------------------------
# The model: the README's rules, written out independently of files_api/domain/.

STATIC = common_pb2.ExpirationConfig.STATIC
SINCE_LAST_ACTIVE = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE
UPDATABLE = ("name", "description", "labels", "expiration_config")
OUTPUT_ONLY = (
    "id",
    "folder_id",
    "mime_type",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "expires_at",
)
LABEL_KEY = re.compile(r"[a-z][-_./\\@0-9a-z]*")
LABEL_VALUE = re.compile(r"[-_./\\@0-9a-z]*")
BARE_SEGMENT = re.compile(r"[A-Za-z0-9_]+")
FILE_ID = re.compile(r"[a-z][a-z0-9]{19}")
FILE_ID_CHARS = re.compile(r"[A-Za-z0-9_-]+")


class State(NamedTuple):
    """What an Update may change."""

    name: str
    description: str
    labels: dict[str, str]
    policy: int
    ttl_days: int


def state_of(file: file_pb2.File) -> State:
    config = file.expiration_config
    return State(
        file.name, file.description, dict(file.labels), config.expiration_policy, config.ttl_days
    )


def has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def value_violations(state: State) -> list[str]:
    """The fields of a File that break the value rules (the same for Create and Update)."""
    bad = []
    if len(state.name.encode()) > 1024 or has_control(state.name):
        bad.append("name")
    if len(state.description) > 1024:
        bad.append("description")
    if len(state.labels) > 64 or any(
        not (1 <= len(k) <= 63 and LABEL_KEY.fullmatch(k))
        or not (len(v) <= 63 and LABEL_VALUE.fullmatch(v))
        for k, v in state.labels.items()
    ):
        bad.append("labels")
    if state.policy not in (STATIC, SINCE_LAST_ACTIVE) or not 1 <= state.ttl_days <= 3650:
        bad.append("expiration_config")
    return bad


def with_defaults(policy: int, ttl_days: int) -> tuple[int, int]:
    return policy or SINCE_LAST_ACTIVE, ttl_days or 7


def segments(path: str) -> list[str] | None:
    """AIP-161 as the README words it: dotted segments, `[A-Za-z0-9_]+` bare, anything else in
    backticks with a literal backtick doubled; None for a malformed path."""
    out: list[str] = []
    i = 0
    while True:
        if path.startswith("`", i):
            i += 1
            chars = []
            while True:
                if i == len(path):
                    return None
                if path.startswith("``", i):
                    chars.append("`")
                    i += 2
                elif path[i] == "`":
                    i += 1
                    break
                else:
                    chars.append(path[i])
                    i += 1
            out.append("".join(chars))
        else:
            bare = BARE_SEGMENT.match(path, i)
            if bare is None:
                return None
            out.append(bare.group())
            i = bare.end()
        if i == len(path):
            return out
        if path[i] != ".":
            return None
        i += 1


def quoted(key: str) -> str:
    return key if BARE_SEGMENT.fullmatch(key) else "`" + key.replace("`", "``") + "`"


MASK_ERROR = "update_mask"


def expected_update(state: State, request: fs.UpdateFileRequest) -> State | str:
    """The README's Update table: the new state, or MASK_ERROR, or the first bad field."""
    paths = list(request.update_mask.paths)
    whole: set[str] = set(UPDATABLE) if not paths or "*" in paths else set()
    label_keys: list[str] = []
    expiration: set[str] = set()
    for path in paths:
        if path == "*":
            continue
        parts = segments(path)
        if parts is None:
            return MASK_ERROR
        if len(parts) == 1 and parts[0] in UPDATABLE:
            whole.add(parts[0])
        elif len(parts) == 2 and parts[0] == "labels":
            label_keys.append(parts[1])
        elif (
            len(parts) == 2
            and parts[0] == "expiration_config"
            and parts[1] in ("expiration_policy", "ttl_days")
        ):
            expiration.add(parts[1])
        else:
            return MASK_ERROR  # output-only, immutable, unknown, or a subfield of a string
    name, description, labels, policy, ttl_days = state
    config = request.expiration_config
    if "name" in whole:
        name = request.name
    if "description" in whole:
        description = request.description
    if "labels" in whole:
        labels = dict(request.labels)
    labels = dict(labels)
    for key in label_keys:
        if key in request.labels:
            labels[key] = request.labels[key]
        else:
            labels.pop(key, None)
    if "expiration_config" in whole or "expiration_policy" in expiration:
        policy = with_defaults(config.expiration_policy, 0)[0]
    if "expiration_config" in whole or "ttl_days" in expiration:
        ttl_days = with_defaults(0, config.ttl_days)[1]
    new = State(name, description, labels, policy, ttl_days)
    bad = value_violations(new)
    return bad[0] if bad else new


def file_id_is_malformed(value: str) -> bool:
    """Not an id the server could have made (letters, digits, '-' and '_', at most 128): the
    README says INVALID_ARGUMENT, so `../../etc/passwd` is refused, not looked up."""
    return len(value) > 128 or not FILE_ID_CHARS.fullmatch(value)


def id_is_odd(value: str) -> bool:
    """Ids past what any id looks like; the README leaves the answer open (INVALID_ARGUMENT
    or NOT_FOUND both fit), the property only demands one of them."""
    return len(value) > 128 or has_control(value)


# --------------------------------------------------------------------------------------------
# Strategies.

NASTY = [
    "\x00", "\x01", "\x1f", "\x7f", "\x85", "\r", "\n", "\r\n", "\t",  # controls
    "\u202e", "\u200f", "\u2028", "\ufeff",  # RTL override and mark, line separator, BOM
    "\U0001f600", "\U00010348", "\u0130", "é",  # 4-byte, and ones that change under case
    "`", "``", ".", ",", "*", "\\", '"', "'", ";", " ", "%2F", "../",  # syntax of masks and paths
]  # fmt: skip
# 1, 2, 3 and 4 bytes of UTF-8: a limit in bytes and one in characters fall apart.
FILLERS = ["a", "é", "€", "\U0001f600"]


def hostile_text(max_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.characters(codec="utf-8"), st.sampled_from(NASTY))
    return st.lists(piece, max_size=max_size).map("".join)


def repeated(counts: list[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.sampled_from(FILLERS), st.sampled_from(counts))


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """Three times in four a valid value, so that whole requests are often valid too."""
    return st.integers(0, 3).flatmap(lambda i: hostile if i == 0 else valid)


VALID_KEY = st.from_regex(r"[a-z][-_./\\@0-9a-z]{0,20}", fullmatch=True)
VALID_VALUE = st.from_regex(r"[-_./\\@0-9a-z]{0,20}", fullmatch=True)
LABEL_KEYS = st.one_of(
    VALID_KEY,
    hostile_text(8),
    st.sampled_from(["", "A", "a" * 63, "a" * 64, "1a", "-a", "a b", "team.name", "é", "a`b"]),
)
LABEL_VALUES = st.one_of(
    VALID_VALUE, hostile_text(8), st.sampled_from(["", "A", "v" * 63, "v" * 64, "é"])
)
LABEL_MAPS = st.one_of(
    st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=5),
    st.builds(lambda n: {f"k{i}": "v" for i in range(n)}, st.integers(60, 70)),
)
VALID_LABELS = st.dictionaries(VALID_KEY, VALID_VALUE, max_size=4)

INT64 = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 7, 3650, 3651, 2**31 - 1, 2**31, 2**63 - 1, -(2**63)]),
)
ENUM = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 2, 3, -1]))

# Each field of a request is drawn valid or hostile; a request has at most two hostile fields,
# so most examples are one broken field away from valid and each rule gets tested on its own.
VALID_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=30)
HOSTILE_NAMES = st.one_of(
    hostile_text(30), repeated([255, 256, 257, 341, 342, 512, 513, 1024, 1025])
)
HOSTILE_DESCRIPTIONS = st.one_of(
    hostile_text(30), repeated([1023, 1024, 1025]), st.just("\U0001f600" * 100_000)
)
VALID_FOLDERS = st.sampled_from(["hostile", "b1g-hostile"])
FOLDERS = mostly(VALID_FOLDERS, st.one_of(hostile_text(12), repeated([128, 129]), st.just("")))
NAMES = mostly(VALID_NAMES, HOSTILE_NAMES)
GOOD_MIME = ["text/plain", "application/json", "text/csv; charset=utf-8", "image/png"]
HOSTILE_MIME = st.one_of(
    hostile_text(20).map(lambda s: "text/" + s),
    hostile_text(20),
    st.sampled_from(
        [
            "text/plain\r\nX-Injected: 1",
            "text/plain\r\n;x=1",
            "text/plain\x0b;x",
            "text/pl\u0430in",
            'text/plain; name="a"\r\nSet-Cookie: x=1',
            "a/b;" + "x" * 300,
        ]
    ),
)
MIME_TYPES = mostly(st.sampled_from(["", *GOOD_MIME]), HOSTILE_MIME)
VALID_CONFIGS = st.one_of(
    st.none(),
    st.builds(
        common_pb2.ExpirationConfig,
        expiration_policy=st.sampled_from([0, STATIC, SINCE_LAST_ACTIVE]),
        ttl_days=st.integers(0, 3650),
    ),
)
HOSTILE_CONFIGS = st.builds(common_pb2.ExpirationConfig, expiration_policy=ENUM, ttl_days=INT64)
# field: (valid values, hostile values)
CREATE_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "folder_id": (VALID_FOLDERS, st.one_of(hostile_text(12), repeated([128, 129]), st.just(""))),
    "name": (VALID_NAMES, HOSTILE_NAMES),
    "description": (st.text(max_size=30), HOSTILE_DESCRIPTIONS),
    "mime_type": (st.sampled_from(["", *GOOD_MIME]), HOSTILE_MIME),
    "content": (st.binary(min_size=1, max_size=64), st.just(b"")),
    "labels": (VALID_LABELS, LABEL_MAPS),
    "expiration_config": (VALID_CONFIGS, HOSTILE_CONFIGS),
}
FIELD_PATHS = [
    "name",
    "description",
    "labels",
    "expiration_config",
    "expiration_config.expiration_policy",
    "expiration_config.ttl_days",
]
BROKEN_PATHS = [
    "", "nmae", "NAME", "Name", "name.x", " name", "name ", ".name", "name.", "..",
    "labels.", "labels.a.b", "labels.team.name", "labels.*", "*.name", "name,description",
    "`", "``", "```", "labels.`open", "labels.`team.name`x", "labels.\u202e",
    "expiration_config.nope", "expiration_config.ttl_days.x",
    "expirationConfig", "expirationConfig.ttlDays",  # JSON names are not gRPC mask paths
    # Valid after all: a backticked segment stands for itself.
    "`name`", "`labels`.env", "labels.`a``b`", "labels.`é`", "labels.`\x00`",
]  # fmt: skip
VALID_PATHS = st.one_of(
    st.sampled_from([*FIELD_PATHS, "*"]), VALID_KEY.map(lambda k: "labels." + quoted(k))
)
HOSTILE_PATHS = st.one_of(
    st.sampled_from(OUTPUT_ONLY),
    st.sampled_from(BROKEN_PATHS),
    LABEL_KEYS.map(lambda k: "labels." + quoted(k)),
    hostile_text(12),
)
MASK_PATHS = mostly(VALID_PATHS, HOSTILE_PATHS)
MASKS = st.one_of(st.none(), st.lists(MASK_PATHS, max_size=4))


@st.composite
def create_requests(draw: st.DrawFn) -> fs.CreateFileRequest:
    hostile = draw(st.sets(st.sampled_from(sorted(CREATE_FIELDS)), max_size=2), label="hostile")
    values = {
        field: draw(strategies[1] if field in hostile else strategies[0], label=field)
        for field, strategies in CREATE_FIELDS.items()
    }
    return fs.CreateFileRequest(**{k: v for k, v in values.items() if v is not None})


@st.composite
def update_requests(draw: st.DrawFn, file_id: str) -> fs.UpdateFileRequest:
    request = fs.UpdateFileRequest(file_id=file_id)
    mask = draw(MASKS, label="mask")
    if mask is not None:
        request.update_mask.SetInParent()
        request.update_mask.paths.extend(mask)
    hostile = draw(
        st.sets(st.sampled_from(["name", "description", "labels", "expiration_config"]), max_size=2)
    )
    for field in ("name", "description"):
        if draw(st.booleans()):
            valid, bad = CREATE_FIELDS[field]
            setattr(request, field, draw(bad if field in hostile else valid, label=field))
    labels = draw(LABEL_MAPS if "labels" in hostile else VALID_LABELS, label="labels")
    # Give the keys the mask names a value now and then, so `labels.<key>` also sets.
    for path in mask or ():
        parts = segments(path)
        if parts and len(parts) == 2 and parts[0] == "labels" and draw(st.booleans()):
            labels[parts[1]] = draw(LABEL_VALUES if "labels" in hostile else VALID_VALUE)
    request.labels.update(labels)
    config = draw(HOSTILE_CONFIGS if "expiration_config" in hostile else VALID_CONFIGS)
    if config is not None:
        request.expiration_config.CopyFrom(config)
    return request


# --------------------------------------------------------------------------------------------
# The server and small helpers.


@pytest.fixture(scope="module")
def served(module_store_url: str) -> Iterator[ThreadedServer]:
    with threaded_server(module_store_url) as server:
        yield server


class Answer(NamedTuple):
    code: grpc.StatusCode
    reply: Any
    error: grpc.RpcError | None


def call(rpc: Callable[..., Any], request: Any) -> Answer:
    try:
        return Answer(grpc.StatusCode.OK, rpc(request, timeout=60), None)
    except grpc.RpcError as e:
        return Answer(e.code(), None, e)


def violations(answer: Answer) -> list[str]:
    """The fields named by the answer's google.rpc.BadRequest detail."""
    assert answer.error is not None
    status = rpc_status.from_call(answer.error)  # type: ignore[arg-type]
    assert status is not None, "an INVALID_ARGUMENT without a google.rpc.Status"
    fields = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            fields += [v.field for v in bad_request.field_violations]
    return fields


def quiet(server: ThreadedServer) -> None:
    """Nothing logged at ERROR, and no traceback, anywhere in the process during the example
    (each example starts by discarding what earlier ones logged)."""
    assert server.errors.take() == []


def url_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def check_download(server: ThreadedServer, file: file_pb2.File, content: bytes) -> None:
    """The bytes come back with the file's type and a Content-Disposition that carries the
    exact name as RFC 8187 UTF-8 behind a printable-ASCII fallback."""
    link = server.stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id), timeout=60).url
    reply = server.http("GET", url_path(link))
    assert (reply.status, reply.body) == (200, content)
    assert reply.headers["Content-Type"] == file.mime_type
    disposition = reply.headers["Content-Disposition"]
    match = re.fullmatch(
        r"attachment; filename=\"([ !#-\[\]-~]*)\"; filename\*=UTF-8''(\S*)", disposition
    )
    assert match, disposition
    assert urllib.parse.unquote(match[2], errors="strict") == (file.name or file.id)


def header_safe(mime_type: str) -> bool:
    return all(" " <= c <= "~" for c in mime_type)


# --------------------------------------------------------------------------------------------
# gRPC.


@HYPOTHESIS
@given(request=create_requests())
def test_create_answers_as_the_rules_say(
    served: ThreadedServer, request: fs.CreateFileRequest
) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    policy, ttl_days = with_defaults(
        request.expiration_config.expiration_policy, request.expiration_config.ttl_days
    )
    state = State(request.name, request.description, dict(request.labels), policy, ttl_days)
    definite = value_violations(state)
    if not request.folder_id:
        definite.append("folder_id")
    if not request.content:
        definite.append("content")
    open_question = id_is_odd(request.folder_id) or (request.mime_type not in ("", *GOOD_MIME))

    note(f"request: {text_format.MessageToString(request, as_one_line=True)[:2000]}")

    answer = call(served.stub.Create, request)
    event(f"Create: {answer.code.name}")

    if definite:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (definite, answer)
        # Each violation named is a field that is bad, or one the README leaves open.
        suspects = {*definite, "folder_id", "mime_type"} if open_question else set(definite)
        named = {v.split("[")[0].split(".")[0] for v in violations(answer)}
        assert named and named <= suspects, (named, definite)
    elif open_question:
        assert answer.code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), answer
    else:
        assert answer.code == grpc.StatusCode.OK, answer
    if answer.code == grpc.StatusCode.OK:
        file = answer.reply
        assert FILE_ID.fullmatch(file.id)
        assert state_of(file) == state
        assert (file.folder_id, file.created_by, file.updated_by) == (
            request.folder_id,
            "anonymous",
            "anonymous",
        )
        if request.mime_type:
            assert file.mime_type == request.mime_type
        # A type that reaches a Content-Type header must be printable ASCII (no CR, LF, VT).
        assert header_safe(file.mime_type), file.mime_type
        assert file.updated_at == file.created_at
        created = file.created_at.ToNanoseconds()
        assert file.expires_at.ToNanoseconds() == created + ttl_days * NS_PER_DAY
        assert served.stub.Get(fs.GetFileRequest(file_id=file.id), timeout=60) == file
        check_download(served, file, request.content)
    quiet(served)


@HYPOTHESIS
@given(
    initial=st.builds(
        State,
        name=st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), max_size=20),
        description=st.text(max_size=20),
        labels=VALID_LABELS,
        policy=st.sampled_from([STATIC, SINCE_LAST_ACTIVE]),
        ttl_days=st.integers(1, 3650),
    ),
    data=st.data(),
)
def test_update_changes_exactly_what_the_mask_names(
    served: ThreadedServer, initial: State, data: st.DataObject
) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    created = served.stub.Create(
        fs.CreateFileRequest(
            folder_id="updates",
            name=initial.name,
            description=initial.description,
            labels=initial.labels,
            content=b"x",
            expiration_config=common_pb2.ExpirationConfig(
                expiration_policy=initial.policy,  # type: ignore[arg-type]
                ttl_days=initial.ttl_days,
            ),
        ),
        timeout=60,
    )
    file_id = data.draw(
        mostly(st.just(created.id), st.one_of(hostile_text(10), st.just(""), repeated([129]))),
        label="file_id",
    )
    request = data.draw(update_requests(file_id), label="request")
    before = served.stub.Get(fs.GetFileRequest(file_id=created.id), timeout=60)
    note(f"request: {text_format.MessageToString(request, as_one_line=True)[:2000]}")

    answer = call(served.stub.Update, request)
    event(f"Update: {answer.code.name}")

    after = served.stub.Get(fs.GetFileRequest(file_id=created.id), timeout=60)
    expected = expected_update(initial, request)
    if file_id != created.id:
        if not file_id or file_id_is_malformed(file_id):
            assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
        elif expected == MASK_ERROR:
            assert answer.code in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
            ), answer
        else:
            assert answer.code == grpc.StatusCode.NOT_FOUND, answer
        assert after == before
    elif isinstance(expected, str):
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, (expected, answer)
        fields = violations(answer)
        assert any(
            f == expected or f.startswith((f"{expected}.", f"{expected}[")) for f in fields
        ), (
            expected,
            fields,
        )
        assert after == before  # nothing changed, not even updated_at or expires_at
    else:
        assert answer.code == grpc.StatusCode.OK, (expected, answer)
        assert answer.reply == after
        assert state_of(after) == expected
        for field in ("id", "folder_id", "mime_type", "created_at", "created_by"):
            assert getattr(after, field) == getattr(before, field), field
        assert after.updated_by == "anonymous"
        updated = after.updated_at.ToNanoseconds()
        assert updated >= before.updated_at.ToNanoseconds()
        start = before.created_at.ToNanoseconds() if expected.policy == STATIC else updated
        assert after.expires_at.ToNanoseconds() == start + expected.ttl_days * NS_PER_DAY
    quiet(served)


@pytest.fixture(scope="module")
def known_file(served: ThreadedServer) -> file_pb2.File:
    return served.stub.Create(
        fs.CreateFileRequest(folder_id="lookups", name="known.txt", content=b"known"), timeout=60
    )


FILE_IDS = st.one_of(
    hostile_text(20),
    st.just(""),
    repeated([128, 129]),
    st.from_regex(r"[a-z][a-z0-9]{19}", fullmatch=True),
)


@HYPOTHESIS
@given(file_id=FILE_IDS, known=st.booleans(), mutate=st.sampled_from(["", " ", "\x00", "A", "/"]))
def test_lookups_by_id_answer_ok_not_found_or_invalid(
    served: ThreadedServer, known_file: file_pb2.File, file_id: str, known: bool, mutate: str
) -> None:
    """Get and GetUrl with random ids, and with the id of a real file, bare or with a suffix."""
    served.errors.take()  # start clean: what an earlier example logged is its own
    if known:
        file_id = known_file.id + mutate
    lookups: list[tuple[Callable[..., Any], protobuf_message.Message]] = [
        (served.stub.Get, fs.GetFileRequest(file_id=file_id)),
        (served.stub.GetUrl, fs.GetFileUrlRequest(file_id=file_id)),
    ]
    for rpc, request in lookups:
        answer = call(rpc, request)
        if file_id == known_file.id:
            assert answer.code == grpc.StatusCode.OK, answer
        elif not file_id or file_id_is_malformed(file_id):
            assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
        else:
            assert answer.code == grpc.StatusCode.NOT_FOUND, answer
    quiet(served)


@HYPOTHESIS
@given(file_id=FILE_IDS, existing=st.booleans())
def test_delete_removes_exactly_one_file(
    served: ThreadedServer, known_file: file_pb2.File, file_id: str, existing: bool
) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    if existing:
        file_id = served.stub.Create(
            fs.CreateFileRequest(folder_id="deletes", content=b"gone"), timeout=60
        ).id
    answer = call(served.stub.Delete, fs.DeleteFileRequest(file_id=file_id))
    if existing:
        assert answer.code == grpc.StatusCode.OK, answer
        again = call(served.stub.Delete, fs.DeleteFileRequest(file_id=file_id))
        assert again.code == grpc.StatusCode.NOT_FOUND, again
        gone = call(served.stub.Get, fs.GetFileRequest(file_id=file_id))
        assert gone.code == grpc.StatusCode.NOT_FOUND, gone
    elif not file_id or file_id_is_malformed(file_id):
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    else:
        assert answer.code == grpc.StatusCode.NOT_FOUND, answer
    # The file other tests look up is still there, untouched.
    assert served.stub.Get(fs.GetFileRequest(file_id=known_file.id), timeout=60) == known_file
    quiet(served)


class Listing(NamedTuple):
    folder: str
    ids: list[str]
    token: str
    other_token: str


@pytest.fixture(scope="module")
def listing(served: ThreadedServer) -> Listing:
    ids = [
        served.stub.Create(
            fs.CreateFileRequest(folder_id="listed", name=f"{i}", content=b"x"), timeout=60
        ).id
        for i in range(3)
    ]
    first = served.stub.List(fs.ListFilesRequest(folder_id="listed", page_size=1), timeout=60)
    served.stub.Create(fs.CreateFileRequest(folder_id="other", content=b"x"), timeout=60)
    other = served.stub.List(fs.ListFilesRequest(folder_id="other", page_size=1), timeout=60)
    return Listing("listed", ids[::-1], first.next_page_token, other.next_page_token)


def tampered(token: str, position: int) -> str:
    if not token:
        return "x"
    i = position % len(token)
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


@HYPOTHESIS
@given(
    folder=mostly(st.just("listed"), st.one_of(FOLDERS, hostile_text(8))),
    page_size=mostly(st.integers(0, 5), INT64),
    token_kind=st.sampled_from(["none", "valid", "other-folder", "tampered", "random"]),
    position=st.integers(0, 200),
    random_token=hostile_text(40),
)
def test_list_pages_sizes_and_tokens(
    served: ThreadedServer,
    listing: Listing,
    folder: str,
    page_size: int,
    token_kind: str,
    position: int,
    random_token: str,
) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    token = {
        "none": "",
        "valid": listing.token,
        "other-folder": listing.other_token,
        "tampered": tampered(listing.token, position),
        "random": random_token,
    }[token_kind]
    answer = call(
        served.stub.List,
        fs.ListFilesRequest(folder_id=folder, page_size=page_size, page_token=token),
    )
    event(f"List: {answer.code.name}")
    issued_for = {"valid": listing.folder, "other-folder": "other"}.get(token_kind)
    bad_token = bool(token) and issued_for != folder  # tampered and random ones included
    if not folder or page_size < 0 or bad_token:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    elif id_is_odd(folder):
        assert answer.code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), answer
    else:
        assert answer.code == grpc.StatusCode.OK, answer
    if answer.code == grpc.StatusCode.OK:
        files = answer.reply.files
        assert len(files) <= min(page_size or 100, 1000)
        assert all(f.folder_id == folder for f in files)
        if folder == listing.folder:
            skip = 1 if token_kind == "valid" else 0
            assert [f.id for f in files] == listing.ids[skip : skip + len(files)]
            assert len(files) == min(page_size or 100, len(listing.ids) - skip)
    quiet(served)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def unknown_fields(draw: st.DrawFn) -> bytes:
    """Fields with numbers the messages do not have, of every wire type."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        number = draw(st.integers(20, 2**29 - 1).filter(lambda n: not 19000 <= n <= 19999))
        kind = draw(st.sampled_from([0, 1, 2, 5]))
        out += _varint(number << 3 | kind)
        if kind == 0:
            out += _varint(draw(st.integers(0, 2**64 - 1)))
        elif kind == 1:
            out += draw(st.binary(min_size=8, max_size=8))
        elif kind == 2:
            payload = draw(st.binary(max_size=20))
            out += _varint(len(payload)) + payload
        else:
            out += draw(st.binary(min_size=4, max_size=4))
    return out


def raw_call(server: ThreadedServer, method: str, payload: bytes) -> Answer:
    rpc = server.channel.unary_unary(
        SERVICE + method,
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    return call(rpc, payload)


@HYPOTHESIS
@given(
    extra=unknown_fields(),
    name=st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=10),
)
def test_unknown_fields_are_ignored(served: ThreadedServer, extra: bytes, name: str) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    request = fs.CreateFileRequest(folder_id="unknown-fields", name=name, content=b"x")
    answer = raw_call(served, "Create", request.SerializeToString() + extra)
    assert answer.code == grpc.StatusCode.OK, answer
    file = file_pb2.File.FromString(answer.reply)
    assert (file.folder_id, file.name) == ("unknown-fields", name)
    quiet(served)


METHODS: dict[str, type[protobuf_message.Message]] = {
    "Create": fs.CreateFileRequest,
    "Get": fs.GetFileRequest,
    "GetUrl": fs.GetFileUrlRequest,
    "Update": fs.UpdateFileRequest,
    "Delete": fs.DeleteFileRequest,
    "List": fs.ListFilesRequest,
}
LEAKS = ("<class", "Error parsing", "Traceback", "google.protobuf", "DecodeError", "Exception")


@HYPOTHESIS
@given(method=st.sampled_from(sorted(METHODS)), payload=st.binary(max_size=64))
def test_random_bytes_as_a_request(served: ThreadedServer, method: str, payload: bytes) -> None:
    """A message that parses is answered by the rules; one that does not is INVALID_ARGUMENT
    (the servicer parses the bytes itself, so never gRPC's INTERNAL or UNKNOWN), with a message
    that shows nothing of the server's insides, and no traceback in the log."""
    served.errors.take()  # start clean: what an earlier example logged is its own
    try:
        METHODS[method].FromString(payload)
    except protobuf_message.DecodeError:
        parses = False
    else:
        parses = True
    answer = raw_call(served, method, payload)
    if parses:
        assert answer.code in (
            grpc.StatusCode.OK,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        ), answer
    else:
        assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
        assert answer.error is not None
        details = answer.error.details() or ""
        assert not any(leak in details for leak in LEAKS), details
    quiet(served)


# --------------------------------------------------------------------------------------------
# REST: random requests of every route, and PATCH against the same rules.

SURROGATES = st.characters(categories=["Cs"])
JSON_TEXT = st.lists(
    st.one_of(st.characters(codec="utf-8"), st.sampled_from(NASTY), SURROGATES), max_size=12
).map("".join)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    INT64,
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    JSON_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(JSON_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)
REST_FIELDS = {
    "folderId": FOLDERS,
    "fileId": FILE_IDS,
    "name": NAMES,
    "description": JSON_TEXT,
    "mimeType": MIME_TYPES,
    "content": st.one_of(
        st.binary(min_size=1, max_size=20).map(lambda b: base64.b64encode(b).decode()),
        st.sampled_from(["", "!!", "a", "ab=c", "aGVsbG8", "aGVsbG8=="]),
    ),
    "labels": st.one_of(LABEL_MAPS, st.dictionaries(JSON_TEXT, JSON_TEXT, max_size=3), JSON_VALUES),
    "expirationConfig": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "expirationPolicy": st.one_of(
                    ENUM, st.sampled_from(["STATIC", "SINCE_LAST_ACTIVE", "NOPE", "static"])
                ),
                "ttlDays": st.one_of(INT64, INT64.map(str), st.sampled_from(["1e3", "7.0", ""])),
            },
        ),
        JSON_VALUES,
    ),
    "updateMask": st.one_of(
        st.lists(MASK_PATHS, max_size=3).map(",".join),
        JSON_TEXT,
        st.sampled_from(["expirationConfig.ttlDays", "labels.`team.name`", "*", ",", "createdAt"]),
        JSON_VALUES,
    ),
    "pageSize": st.one_of(INT64, INT64.map(str), JSON_VALUES),
    "pageToken": JSON_TEXT,
}
BODIES = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={k: mostly(v, JSON_VALUES) for k, v in REST_FIELDS.items()}),
    JSON_VALUES,
)
PATH_IDS = st.one_of(
    FILE_IDS.map(lambda s: urllib.parse.quote(s, safe="")),
    st.sampled_from(["..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%00", "%ZZ", "%ED%A0%80", "a%2Fb"]),
)
QUERY_KEYS = st.sampled_from(
    ["folderId", "pageSize", "pageToken", "fileId", "updateMask", "name", "labels", "x", ""]
)
QUERIES = st.lists(st.tuples(QUERY_KEYS, JSON_TEXT), max_size=3).map(
    lambda pairs: urllib.parse.urlencode(pairs, errors="surrogatepass")
)


@st.composite
def rest_targets(draw: st.DrawFn) -> tuple[str, str]:
    verb = draw(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]))
    path = draw(
        st.sampled_from(
            [
                "/files/v1/files",
                "/files/v1/files/{id}",
                "/files/v1/files:getUrl",
                "/files/v1/files/{id}/content",
                "/files/v1/{id}",
                "/{id}",
            ]
        )
    ).replace("{id}", draw(PATH_IDS))
    query = draw(QUERIES)
    return verb, f"{path}?{query}" if query else path


def check_json_status(reply: Any) -> None:
    """Not a 5xx; an error is a JSON google.rpc.Status under its code's HTTP status."""
    assert reply.status < 500, (reply.status, reply.body[:500])
    body = reply.json()
    assert isinstance(body, dict), body
    if reply.status != 200:
        assert isinstance(body.get("code"), int) and isinstance(body.get("message"), str), body
        assert body["code"] not in (code_pb2.INTERNAL, code_pb2.UNKNOWN), body
        assert reply.status in (http_status(body["code"]), 405, 413), (reply.status, body)


@HYPOTHESIS
@given(target=rest_targets(), body=BODIES)
def test_rest_never_answers_5xx(
    served: ThreadedServer, target: tuple[str, str], body: object
) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    verb, path = target
    note(f"{verb} {path} {body!r}")
    reply = served.http_json(verb, path, body)
    event(f"HTTP {reply.status}")
    check_json_status(reply)
    quiet(served)


@HYPOTHESIS
@given(
    body=st.fixed_dictionaries(
        {"updateMask": REST_FIELDS["updateMask"]},
        optional={
            k: mostly(REST_FIELDS[k], JSON_VALUES)
            for k in ("name", "description", "labels", "expirationConfig")
        },
    )
)
def test_rest_patch_is_all_or_nothing(served: ThreadedServer, body: dict[str, Any]) -> None:
    served.errors.take()  # start clean: what an earlier example logged is its own
    created = served.http_json(
        "POST",
        "/files/v1/files",
        {"folderId": "rest-patch", "content": "eA==", "labels": {"keep": "me"}},
    )
    assert created.status == 200, created.body
    target = f"/files/v1/files/{created.json()['id']}"
    before = served.http("GET", target).json()
    note(f"PATCH {body!r}")
    reply = served.http_json("PATCH", target, body)
    check_json_status(reply)
    after = served.http("GET", target).json()
    if reply.status == 200:
        assert reply.json() == after
    else:
        assert after == before
    quiet(served)


# --------------------------------------------------------------------------------------------
# Credentials: with --auth-keys every answer is also exactly UNAUTHENTICATED, PERMISSION_DENIED
# or NOT_FOUND as the README's "Authentication and folders" says.


class Keyed(NamedTuple):
    server: ThreadedServer
    keys: dict[str, str]  # alice may use the folder "team"; root every folder
    secret_id: str  # a file in the folder "secret"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    path = tmp_path_factory.mktemp("keys") / "keys.toml"
    keys = {"alice": add_key(path, "alice", ["team"]), "root": add_key(path, "root", ["*"])}
    with threaded_server("memory:", str(path)) as server:
        secret = server.stub.Create(
            fs.CreateFileRequest(folder_id="secret", content=b"s"),
            metadata=(("authorization", f"Api-Key {keys['root']}"),),
            timeout=60,
        )
        yield Keyed(server, keys, secret.id)


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
HEADER_BYTES = st.binary(max_size=30).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F)  # no CR, LF, NUL: not injection
)


def _grpc_code(answer: Answer) -> int:
    return int(answer.code.value[0])


def _perform(
    keyed: Keyed, transport: str, op: str, folder: str, authorization: bytes | None
) -> int:
    """One call; its status code as a number (0 for OK)."""
    if transport == "grpc":
        metadata = () if authorization is None else (("authorization", authorization.decode()),)
        stub = keyed.server.stub
        if op == "Create":
            request: Any = fs.CreateFileRequest(folder_id=folder, content=b"x")
            return _grpc_code(
                call(lambda r, **kw: stub.Create(r, metadata=metadata, **kw), request)
            )
        if op == "List":
            request = fs.ListFilesRequest(folder_id=folder)
            return _grpc_code(call(lambda r, **kw: stub.List(r, metadata=metadata, **kw), request))
        request = fs.GetFileRequest(file_id=keyed.secret_id)
        return _grpc_code(call(lambda r, **kw: stub.Get(r, metadata=metadata, **kw), request))
    headers: dict[str, str | bytes] = (
        {} if authorization is None else {"Authorization": authorization}
    )
    if op == "Create":
        body = {"folderId": folder, "content": "eA=="}
        reply = keyed.server.http_json("POST", "/files/v1/files", body, headers)
    elif op == "List":
        query = urllib.parse.urlencode({"folderId": folder})
        reply = keyed.server.http("GET", f"/files/v1/files?{query}", headers=headers)
    else:
        reply = keyed.server.http("GET", f"/files/v1/files/{keyed.secret_id}", headers=headers)
    check_json_status(reply)
    code = 0 if reply.status == 200 else int(reply.json()["code"])
    if code == code_pb2.UNAUTHENTICATED:
        assert "WWW-Authenticate" in reply.headers
    return code


@HYPOTHESIS
@given(
    transport=st.sampled_from(["grpc", "rest"]),
    op=st.sampled_from(["Create", "List", "Get a file in another folder"]),
    folder=mostly(st.sampled_from(["team", "other", "secret"]), FOLDERS),
    who=st.sampled_from(["nobody", "alice", "root", "stranger"]),
    scheme=mostly(
        st.sampled_from(["Api-Key", "Bearer", "api-key", "BEARER"]),
        st.sampled_from(["Basic", "Api-Key:", "", "ApiKey", "Token"]),
    ),
    garbage=st.one_of(HEADER_TEXT.map(str.encode), HEADER_BYTES),
)
def test_credentials_and_folders_answer_precisely(
    keyed: Keyed, transport: str, op: str, folder: str, who: str, scheme: str, garbage: bytes
) -> None:
    keyed.server.errors.take()
    if who == "nobody":
        authorization = None
    elif who == "stranger":
        authorization = f"{scheme} ".encode() + garbage
        if transport == "grpc":  # gRPC metadata is printable ASCII, or the client refuses it
            authorization = bytes(c for c in authorization if 0x20 <= c < 0x7F)
    else:
        authorization = f"{scheme} {keyed.keys[who]}".encode()
    note(f"{transport} {op} folder={folder!r} authorization={authorization!r}")
    code = _perform(keyed, transport, op, folder, authorization)
    event(f"{op}: {code_pb2.Code.Name(code)}")

    known = who in keyed.keys and scheme.lower() in ("api-key", "bearer")
    if not known:
        assert code == code_pb2.UNAUTHENTICATED
    elif op.startswith("Get"):
        assert code == (code_pb2.OK if who == "root" else code_pb2.NOT_FOUND)
    elif not folder:
        assert code == code_pb2.INVALID_ARGUMENT
    else:
        allowed = who == "root" or folder == "team"
        expected = code_pb2.OK if allowed else code_pb2.PERMISSION_DENIED
        if id_is_odd(folder):
            assert code in (expected, code_pb2.INVALID_ARGUMENT)
        else:
            assert code == expected
    quiet(keyed.server)


@pytest.mark.parametrize(
    "paths",
    [["*", "nmae"], ["*", "created_at"], ["*", "labels.a.b"], ["name", "*", "`"]],
    ids=["unknown", "output-only", "too-deep", "bad-backtick"],
)
def test_star_does_not_excuse_a_bad_path(served: ThreadedServer, paths: list[str]) -> None:
    """README: a bad path fails the whole call, `*` beside it or not."""
    served.errors.take()
    file = served.stub.Create(
        fs.CreateFileRequest(folder_id="star", name="keep", content=b"x"), timeout=60
    )
    answer = call(
        served.stub.Update,
        fs.UpdateFileRequest(
            file_id=file.id, update_mask=field_mask_pb2.FieldMask(paths=paths), name="changed"
        ),
    )
    assert answer.code == grpc.StatusCode.INVALID_ARGUMENT, answer
    assert "update_mask" in violations(answer)
    assert served.stub.Get(fs.GetFileRequest(file_id=file.id), timeout=60) == file
    quiet(served)
