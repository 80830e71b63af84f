"""`python -m server` as users run it: flags, environment, restart, clean stop."""

from __future__ import annotations

import gc
import signal
import urllib.request
from typing import TYPE_CHECKING

import grpc
from google.protobuf import field_mask_pb2
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from server.app import GC_YOUNG_THRESHOLD, tune_gc
from tests.support import run_server_command, server_process

if TYPE_CHECKING:
    from pathlib import Path


def stub(address: str) -> tuple[grpc.Channel, file_service_pb2_grpc.FileServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, file_service_pb2_grpc.FileServiceStub(channel)


def test_help_documents_every_flag_and_its_variable() -> None:
    result = run_server_command("--help", check=True)
    for flag, variable in [
        ("--grpc-listen", "FILES_GRPC_LISTEN"),
        ("--http-listen", "FILES_HTTP_LISTEN"),
        ("--store", "FILES_STORE"),
        ("--tls-cert", "FILES_TLS_CERT"),
        ("--tls-key", "FILES_TLS_KEY"),
        ("--url-ttl", "FILES_URL_TTL"),
    ]:
        assert flag in result.stdout
        assert variable in result.stdout
    assert "sqlite:///data/files.db" in result.stdout


def test_sqlite_store_survives_a_restart_with_nanoseconds(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'files.db'}"
    with server_process("--store", store) as first:
        assert f"store {store}" in first.log_text()
        channel, files = stub(first.grpc_address)
        with channel:
            created = files.Create(
                fs.CreateFileRequest(folder_id="f", name="keep.bin", content=b"\x00\x01kept")
            )
            updated = files.Update(
                fs.UpdateFileRequest(
                    file_id=created.id,
                    update_mask=field_mask_pb2.FieldMask(paths=["labels.`x.y`"]),
                    labels={"x.y": "z"},
                )
            )
            url = files.GetUrl(fs.GetFileUrlRequest(file_id=created.id)).url
    assert first.process.returncode == 0

    with server_process("--store", store) as second:
        channel, files = stub(second.grpc_address)
        with channel:
            again = files.Get(fs.GetFileRequest(file_id=created.id))
        assert again == updated
        # The link was signed before the restart, for the first HTTP port: the same path and
        # signature on the new port must still work, since the secret lives in the store.
        path = url.split("/", 3)[3]
        with urllib.request.urlopen(f"http://{second.http_address}/{path}") as response:
            assert response.read() == b"\x00\x01kept"


def test_environment_variables_configure_the_server(tmp_path: Path) -> None:
    env = {"FILES_STORE": "memory:", "FILES_URL_TTL": "5"}
    with server_process(env=env) as running:
        assert "store memory:" in running.log_text()
        channel, files = stub(running.grpc_address)
        with channel:
            file = files.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
            url = files.GetUrl(fs.GetFileUrlRequest(file_id=file.id)).url
    expires = int(url.split("expires=")[1].split("&")[0])
    created = file.created_at.seconds
    assert created + 4 <= expires <= created + 6


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    with server_process("--store", "memory:") as running:
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=30) == 0
    assert "stopped" in running.log_text()
    assert "Traceback" not in running.log_text()


def test_bad_settings_fail_with_one_clear_line(tmp_path: Path) -> None:
    result = run_server_command("--store", "ftp://nowhere", "--grpc-listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "unsupported store URL 'ftp://nowhere'" in result.stderr
    assert "Traceback" not in result.stderr


def test_tune_gc_sets_start_up_aside_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
