"""Authentication and folder isolation: the key ring, the domain's rules, the real server."""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import aiohttp
import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from files_api.app import Server, Settings
from files_api.auth import ANONYMOUS, Caller, KeyRing, add_key
from files_api.domain import Core, Files
from files_api.errors import NotFound, PermissionDenied, Unauthenticated
from files_api.store import open_store
from tests.support import health_stub, run_client, run_server_command, server_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable
    from pathlib import Path

TEAM = Caller("alice", frozenset({"team"}))


def test_a_key_authenticates_as_its_subject_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    alice = add_key(path, "alice", ["f1", "f2"])
    root = add_key(path, "root", ["*"])
    assert alice not in path.read_text()
    assert root not in path.read_text()
    ring = KeyRing.load(path)
    assert ring.authenticate(f"Api-Key {alice}") == Caller("alice", frozenset({"f1", "f2"}))
    assert ring.authenticate(f"Bearer {alice}") == ring.authenticate(f"api-key  {alice} ")
    assert ring.authenticate(f"Bearer {root}") == Caller("root", None)
    assert ring.authenticate(f"Bearer {root}").may_use("anything")


@pytest.mark.parametrize(
    ("header", "word"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Api-Key", "must be"),
        ("Basic dXNlcjpwYXNz", "must be"),
        ("Api-Key wrong", "unknown"),
        ("Bearer  ", "must be"),
    ],
)
def test_bad_credentials_are_unauthenticated(tmp_path: Path, header: str | None, word: str) -> None:
    add_key(tmp_path / "keys.toml", "alice", ["f1"])
    with pytest.raises(Unauthenticated, match=word):
        KeyRing.load(tmp_path / "keys.toml").authenticate(header)


SALT = "salt = '00ff'\n"
SHA = "'" + "ab" * 32 + "'"


def key_entry(**values: str) -> str:
    """A [[key]] table: a valid key's TOML values, but for those given ('' leaves one out)."""
    fields = {"subject": "'a'", "folders": "['f']", "sha256": SHA, **values}
    return "[[key]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v)


# (the file, what its error says after the file's name)
MALFORMED = [
    (
        SALT + key_entry(subject="'ok'") + key_entry(folders="'team'"),
        "[[key]] #2 (subject 'a'): 'folders' must be a non-empty list of folder ids",
    ),
    (SALT + key_entry(folders="[]"), "[[key]] #1 (subject 'a'): 'folders'"),
    (SALT + key_entry(folders="['f', 1]"), "[[key]] #1 (subject 'a'): 'folders'"),
    (SALT + key_entry(folders="['']"), "[[key]] #1 (subject 'a'): 'folders'"),
    (SALT + key_entry(subject=""), "[[key]] #1: 'subject' must be a non-empty string"),
    (SALT + key_entry(subject="7"), "[[key]] #1: 'subject'"),
    (SALT + key_entry(sha256=""), "[[key]] #1 (subject 'a'): 'sha256' must be 64 hex"),
    (SALT + key_entry(sha256="'zz'"), "[[key]] #1 (subject 'a'): 'sha256'"),
    (SALT + key_entry(sha256="'abcd'"), "[[key]] #1 (subject 'a'): 'sha256'"),
    (SALT + key_entry(folder="['f']"), "[[key]] #1 (subject 'a'): unknown field 'folder'"),
    (
        SALT + key_entry(added="'2026-11-23T17:25:47Z'"),
        "[[key]] #1 (subject 'a'): 'added' must be a time with its offset, unquoted:"
        " 2026-11-23T17:25:47Z, got '2026-11-23T17:25:47Z'",
    ),
    (SALT + key_entry(added="2026-11-23T17:25:47"), "'added' must be a time with its offset"),
    (SALT + key_entry(added="2026-11-23"), "'added' must be a time with its offset"),
    (SALT + "key = 'a'\n", "'key' must be [[key]] tables"),
    (SALT + "[[key]\n", "(at line 2"),
    (key_entry(), "'salt' must be a non-empty hex string, got None"),
    ("salt = 'zz'\n", "'salt' must be a non-empty hex string, got 'zz'"),
    ("salt = ''\n", "'salt' must be"),
    ("salt = 12\n", "'salt' must be"),
    (SALT + "pepper = 1\n", "unknown top-level setting 'pepper'"),
]


@pytest.mark.parametrize(("text", "error"), MALFORMED, ids=[error for _, error in MALFORMED])
def test_a_malformed_keys_file_is_refused_naming_the_file_and_entry(
    tmp_path: Path, text: str, error: str
) -> None:
    """A key read as something its author did not mean (`folders = "team"` as the folders t, e,
    a and m) grants the wrong access: the whole file is refused, in one line."""
    path = tmp_path / "keys.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        KeyRing.load(path)
    message = str(e.value)
    assert message.startswith(f"cannot read the keys file {path}: ")
    assert error in message
    assert "\n" not in message


def test_a_malformed_keys_file_stops_the_server_and_keys_add(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(SALT + key_entry(folders="'team'"))
    result = run_server_command("--store", "memory:", "--auth-keys", str(path))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.endswith(
        f"cannot start: cannot read the keys file {path}: [[key]] #1 (subject 'a'):"
        " 'folders' must be a non-empty list of folder ids (or ['*']), got 'team'"
    )
    added = run_server_command(
        "keys", "add", "--subject", "b", "--folders", "f", "--file", str(path)
    )
    assert (added.returncode, added.stdout) == (1, "")
    assert path.read_text() == SALT + key_entry(folders="'team'")


async def test_another_folder_is_forbidden_and_its_files_invisible(files: Files) -> None:
    theirs = await files.create(fs.CreateFileRequest(folder_id="other", content=b"x"))
    call: Awaitable[object]
    for call in (
        files.create(fs.CreateFileRequest(folder_id="other", content=b"x"), TEAM),
        files.list(fs.ListFilesRequest(folder_id="other"), TEAM),
    ):
        with pytest.raises(PermissionDenied):
            await call
    for call in (
        files.get(fs.GetFileRequest(file_id=theirs.id), TEAM),
        files.update(fs.UpdateFileRequest(file_id=theirs.id), TEAM),
        files.delete(fs.DeleteFileRequest(file_id=theirs.id), TEAM),
        files.get_url(fs.GetFileUrlRequest(file_id=theirs.id), "http://h", TEAM),
    ):
        with pytest.raises(NotFound) as e:
            await call
        assert e.value.message == f"file {theirs.id!r} not found"
    assert await files.get(fs.GetFileRequest(file_id=theirs.id), ANONYMOUS) == theirs


async def test_own_folder_works_and_records_the_subject(files: Files) -> None:
    mine = await files.create(fs.CreateFileRequest(folder_id="team", content=b"x"), TEAM)
    assert mine.created_by == mine.updated_by == "alice"
    bob = Caller("bob", frozenset({"team"}))
    updated = await files.update(fs.UpdateFileRequest(file_id=mine.id, name="n"), bob)
    assert (updated.created_by, updated.updated_by) == ("alice", "bob")
    listed = await files.list(fs.ListFilesRequest(folder_id="team"), TEAM)
    assert [f.id for f in listed.files] == [mine.id]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "keys.toml"
    return {
        "path": str(path),
        "alice": add_key(path, "alice", ["team"]),
        "root": add_key(path, "root", ["*"]),
    }


def test_the_server_authenticates_grpc_and_rest_alike(tmp_path: Path, keys: dict[str, str]) -> None:
    store = f"sqlite:///{tmp_path / 'f.db'}"
    with server_process("--store", store, "--auth-keys", keys["path"]) as server:
        channel = grpc.insecure_channel(server.grpc_address)
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        alice = (("authorization", f"Api-Key {keys['alice']}"),)
        root = (("authorization", f"Bearer {keys['root']}"),)
        with pytest.raises(grpc.RpcError) as e:
            stub.List(fs.ListFilesRequest(folder_id="team"))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            stub.Create(fs.CreateFileRequest(folder_id="elsewhere", content=b"x"), metadata=alice)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        hidden = stub.Create(
            fs.CreateFileRequest(folder_id="elsewhere", content=b"x"), metadata=root
        )
        with pytest.raises(grpc.RpcError) as e:
            stub.Get(fs.GetFileRequest(file_id=hidden.id), metadata=alice)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        mine = stub.Create(fs.CreateFileRequest(folder_id="team", content=b"mine"), metadata=alice)
        assert mine.created_by == "alice"
        url = stub.GetUrl(fs.GetFileUrlRequest(file_id=mine.id), metadata=alice).url

        # Health and reflection reveal no data and stay open.
        health = health_stub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        # types-grpcio-reflection types this attribute as binascii.Incomplete, an exception.
        [answer] = reflection.ServerReflectionInfo(  # type: ignore[operator]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        assert "yandex.cloud.ai.files.v1.FileService" in {
            s.name for s in answer.list_services_response.service
        }
        channel.close()

        # The signed link is its own credential.
        with urllib.request.urlopen(url) as response:
            assert response.read() == b"mine"
        rest = f"http://{server.http_address}/files/v1/files"
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(f"{rest}/{mine.id}")
        assert http_error.value.code == 401
        assert "Api-Key" in http_error.value.headers["WWW-Authenticate"]
        assert json.loads(http_error.value.read())["code"] == 16
        http_error.value.close()
        request = urllib.request.Request(
            f"{rest}/{mine.id}", headers={"Authorization": f"Api-Key {keys['alice']}"}
        )
        with urllib.request.urlopen(request) as response:
            assert json.loads(response.read())["createdBy"] == "alice"
        request = urllib.request.Request(
            f"{rest}/{hidden.id}", headers={"Authorization": f"Api-Key {keys['alice']}"}
        )
        with pytest.raises(urllib.error.HTTPError) as http_error:
            urllib.request.urlopen(request)
        assert http_error.value.code == 404
        http_error.value.close()


@pytest.fixture
async def keyed_server(keys: dict[str, str]) -> AsyncIterator[Server]:
    settings = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        store="memory:",
        auth_keys=keys["path"],
        drain_quiet_seconds=0,
        shutdown_grace_seconds=1,
    )
    server = Server(settings, Core(open_store(settings.store)))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_writes_to_another_folder_look_like_a_missing_file_over_the_wire(
    keyed_server: Server, keys: dict[str, str]
) -> None:
    """Update, Delete, GetUrl and the history of a file in a folder the key may not use answer as
    for an id that does not exist (so no one learns which ids exist elsewhere) and change
    nothing."""
    alice = (("authorization", f"Api-Key {keys['alice']}"),)
    root = (("authorization", f"Api-Key {keys['root']}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{keyed_server.grpc_port}") as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        hidden = await stub.Create(
            fs.CreateFileRequest(folder_id="elsewhere", content=b"x"), metadata=root
        )
        missing = "nosuchfile0000000000"
        mask = field_mask_pb2.FieldMask(paths=["name"])
        for file_id in (hidden.id, missing):
            for call in (
                stub.Update(
                    fs.UpdateFileRequest(file_id=file_id, update_mask=mask, name="taken"),
                    metadata=alice,
                ),
                stub.Delete(fs.DeleteFileRequest(file_id=file_id), metadata=alice),
                stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id), metadata=alice),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await call
                assert e.value.code() == grpc.StatusCode.NOT_FOUND
                assert e.value.details() == f"file {file_id!r} not found"

        rest = f"http://127.0.0.1:{keyed_server.http_port}/files/v1/files"
        headers = {"Authorization": f"Api-Key {keys['alice']}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for file_id in (hidden.id, missing):
                for method, url, body in (
                    ("PATCH", f"{rest}/{file_id}", {"updateMask": "name", "name": "taken"}),
                    ("DELETE", f"{rest}/{file_id}", None),
                    ("GET", f"{rest}:getUrl?fileId={file_id}", None),
                    ("GET", f"{rest}/{file_id}/audit", None),
                ):
                    async with http.request(method, url, json=body) as response:
                        assert response.status == 404, (method, url)
                        answer = await response.json()
                        assert (answer["code"], answer["message"]) == (
                            5,
                            f"file {file_id!r} not found",
                        )
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{rest}/{hidden.id}/audit") as response:
                assert response.status == 401
                assert "Api-Key" in response.headers["WWW-Authenticate"]
            root_headers = {"Authorization": f"Api-Key {keys['root']}"}
            async with http.get(f"{rest}/{hidden.id}/audit", headers=root_headers) as response:
                [created] = (await response.json())["records"]
                assert (created["action"], created["subject"]) == ("create", "root")
        assert await stub.Get(fs.GetFileRequest(file_id=hidden.id), metadata=root) == hidden


def test_the_ai_studio_sdk_with_an_api_key(tmp_path: Path, keys: dict[str, str]) -> None:
    with server_process("--store", "memory:", "--auth-keys", keys["path"]) as server:
        result = run_client(
            "ai_studio_auth.py", server.grpc_address, "team", keys["alice"], "elsewhere"
        )
    seen = json.loads(result.stdout)
    assert (seen["created_by"], seen["updated_by"]) == ("alice", "alice")
    assert seen["description"] == "by key"
    assert seen["listed"] == [seen["id"]]
    assert seen["download"] == "keyed\n"
    assert seen["other_folder_upload"] == "PERMISSION_DENIED"
    assert seen["wrong_key_get"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("grpc_listen", "http_listen"), [("0.0.0.0:0", "127.0.0.1:0"), ("127.0.0.1:0", "0.0.0.0:0")]
)
def test_anonymous_server_refuses_a_non_loopback_address(
    grpc_listen: str, http_listen: str
) -> None:
    """Either listener alone exposes every file (REST reaches them all), so either is refused,
    in one line that says what to do."""
    result = run_server_command(
        "--store", "memory:", "--grpc-listen", grpc_listen, "--http-listen", http_listen
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.endswith(
        "ERROR files_api: cannot start: refusing to serve 0.0.0.0:0 without --auth-keys: anyone who"
        " can connect could read and change every file (pass --allow-anonymous if that is what"
        " you want)"
    )
    assert result.stdout == ""


def test_allow_anonymous_serves_on_every_address() -> None:
    with server_process("--store", "memory:", "--allow-anonymous") as server:
        assert "serving gRPC" in server.log_text()
    # server_process binds 127.0.0.1; bind all addresses too, reached through loopback.
    with server_process(
        "--store", "memory:", "--allow-anonymous", "--grpc-listen", "0.0.0.0:0"
    ) as s:
        port = s.grpc_address.rsplit(":", 1)[1]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            assert stub.Create(fs.CreateFileRequest(folder_id="f", content=b"x")).created_by == (
                "anonymous"
            )


def test_keys_add_prints_the_key_once(tmp_path: Path) -> None:
    path = tmp_path / "k" / "keys.toml"
    result = run_server_command(
        "keys", "add", "--subject", "ci", "--folders", "a,b", "--file", str(path), check=True
    )
    key = result.stdout.strip()
    assert len(key) >= 40
    assert "shown only now" in result.stderr
    assert KeyRing.load(path).authenticate(f"Api-Key {key}") == Caller("ci", frozenset({"a", "b"}))


def test_keys_add_twice_appends_under_the_same_salt(tmp_path: Path) -> None:
    """Adding a key must not cost anyone theirs: a rewritten file or a new salt would lock out
    every key issued before."""
    path = tmp_path / "keys.toml"
    added = []
    for subject in ("ci", "ops"):
        result = run_server_command(
            "keys", "add", "--subject", subject, "--folders", subject, "--file", str(path),
            check=True,
        )  # fmt: skip
        added.append((result.stdout.strip(), tomllib.loads(path.read_text())["salt"]))
    (ci, salt), (ops, salt_after) = added
    assert salt_after == salt
    ring = KeyRing.load(path)
    assert ring.authenticate(f"Api-Key {ci}") == Caller("ci", frozenset({"ci"}))
    assert ring.authenticate(f"Api-Key {ops}") == Caller("ops", frozenset({"ops"}))
