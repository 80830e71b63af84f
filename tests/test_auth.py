"""Authentication and folder isolation: the key ring, the domain's rules, the real server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from server.auth import ANONYMOUS, Caller, KeyRing, add_key
from server.errors import NotFound, PermissionDenied, Unauthenticated
from tests.support import run_client, run_server_command, server_process

if TYPE_CHECKING:
    from pathlib import Path

    from server.domain import Files

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


def test_a_broken_keys_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text("salt = 'zz'\n[[key]]\n")
    with pytest.raises(ValueError, match=r"keys\.toml"):
        KeyRing.load(path)


async def test_another_folder_is_forbidden_and_its_files_invisible(files: Files) -> None:
    theirs = await files.create(fs.CreateFileRequest(folder_id="other", content=b"x"))
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
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as e:
            stub.Create(fs.CreateFileRequest(folder_id="elsewhere", content=b"x"), metadata=alice)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        hidden = stub.Create(
            fs.CreateFileRequest(folder_id="elsewhere", content=b"x"), metadata=root
        )
        with pytest.raises(grpc.RpcError) as e:
            stub.Get(fs.GetFileRequest(file_id=hidden.id), metadata=alice)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        mine = stub.Create(fs.CreateFileRequest(folder_id="team", content=b"mine"), metadata=alice)
        assert mine.created_by == "alice"
        url = stub.GetUrl(fs.GetFileUrlRequest(file_id=mine.id), metadata=alice).url

        # Health and reflection reveal no data and stay open.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        [answer] = reflection.ServerReflectionInfo(
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


def test_anonymous_server_refuses_a_non_loopback_address() -> None:
    result = run_server_command(
        "--store", "memory:", "--grpc-listen", "0.0.0.0:0", "--http-listen", "127.0.0.1:0"
    )
    assert result.returncode == 1
    assert "refusing to serve 0.0.0.0:0 without --auth-keys" in result.stderr
    assert "--allow-anonymous" in result.stderr


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
