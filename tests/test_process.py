"""`files-api` (`python -m files_api`) as users run it: flags, environment, restart, clean stop,
and bad input answered in one line."""

from __future__ import annotations

import gc
import re
import signal
import socket
import ssl
import subprocess
import urllib.request
from importlib import metadata
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2

from files_api.app import GC_YOUNG_THRESHOLD, tune_gc
from tests.support import ROOT, VENV_BIN, run_server_command, server_process
from tests.test_ai_studio_sdk import make_tls_files

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
    for default in ["127.0.0.1:50051", "127.0.0.1:8080", "sqlite:///data/files.db"]:
        assert re.search(rf"default\s+{re.escape(default)}\)", result.stdout), default


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
    # No flags at all: left to the defaults, the listeners would be on 50051 and 8080 in clear.
    ca, cert, key = make_tls_files(tmp_path)
    env = {
        "FILES_GRPC_LISTEN": "127.0.0.1:0",
        "FILES_HTTP_LISTEN": "127.0.0.1:0",
        "FILES_TLS_CERT": str(cert),
        "FILES_TLS_KEY": str(key),
        "FILES_STORE": "memory:",
        "FILES_URL_TTL": "5",
    }
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    with server_process(env=env, credentials=credentials) as running:
        assert running.grpc_address.rpartition(":")[2] != "50051"
        assert running.http_address.rpartition(":")[2] != "8080"
        assert "over TLS, store memory:" in running.log_text()
        with grpc.secure_channel(running.grpc_address, credentials) as channel:
            files = file_service_pb2_grpc.FileServiceStub(channel)
            file = files.Create(fs.CreateFileRequest(folder_id="f", content=b"x"))
            url = files.GetUrl(fs.GetFileUrlRequest(file_id=file.id)).url
        assert url.startswith(f"https://{running.http_address}/")
        tls = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(url, context=tls) as response:
            assert response.read() == b"x"
    expires = int(url.split("expires=")[1].split("&")[0])
    created = file.created_at.seconds
    assert created + 4 <= expires <= created + 6


def test_links_start_with_the_public_url_and_work_on_the_listener(tmp_path: Path) -> None:
    """Behind a load balancer or proxy, links must name the address clients reach; what follows
    it is the listener's own path and query, so the proxy forwards the link as it is."""
    public = "https://files.example.com/"
    with server_process("--store", "memory:", "--public-http-url", public) as running:
        with grpc.insecure_channel(running.grpc_address) as channel:
            files = file_service_pb2_grpc.FileServiceStub(channel)
            file = files.Create(fs.CreateFileRequest(folder_id="f", content=b"behind a proxy"))
            url = files.GetUrl(fs.GetFileUrlRequest(file_id=file.id)).url
        assert url.startswith(f"https://files.example.com/files/v1/files/{file.id}/content?")
        forwarded = url.replace(public, f"http://{running.http_address}/", 1)
        with urllib.request.urlopen(forwarded) as response:
            assert response.read() == b"behind a proxy"


def test_a_relative_sqlite_path_is_under_the_working_directory(tmp_path: Path) -> None:
    store = "sqlite:///rel/files.db"
    with server_process("--store", store, cwd=tmp_path) as running:
        # Where it listens and which store, in one line: what an operator greps for.
        wanted = [f"gRPC on {running.grpc_address}", f"HTTP on {running.http_address}", store]
        assert [line for line in running.log if all(w in line for w in wanted)]
    assert (tmp_path / "rel" / "files.db").is_file()
    assert not (ROOT / "rel").exists()


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


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--url-ttl", "-5", "--url-ttl (FILES_URL_TTL) must be 1-115200, not -5"),
        ("--url-ttl", "115201", "must be 1-115200, not 115201"),
        ("--sweep-interval", "0", "--sweep-interval (FILES_SWEEP_INTERVAL) must be 0.1-86400"),
        ("--sweep-interval", "nan", "must be 0.1-86400, not nan"),
        ("--shutdown-grace", "-1", "must be 0-3600, not -1"),
        ("--workers", "0", "--workers (FILES_WORKERS) must be 1-256, not 0"),
        ("--pool-size", "0", "--pool-size (FILES_POOL_SIZE) must be 1-1000, not 0"),
    ],
)
def test_numbers_out_of_range_are_refused_at_start(flag: str, value: str, says: str) -> None:
    result = run_server_command("--store", "memory:", flag, value)
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
    assert says in result.stderr


def files_api_command(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `files-api` console script, as users run it."""
    return subprocess.run(
        [str(VENV_BIN / "files-api"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


LOOPBACK = ("--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--store", "memory:")


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("serve", "--no-such-flag"), 2, "unrecognized arguments: --no-such-flag"),
        (("serve", "--url-ttl", "soon"), 2, "invalid int value: 'soon'"),
        (("frobnicate",), 2, "unknown command 'frobnicate'"),
        (("serve", *LOOPBACK, "--store", "ftp://nowhere"), 1, "unsupported store URL"),
        (("serve", *LOOPBACK, "--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"), 1,
         "No such file or directory: '/no/"),
        (("serve", *LOOPBACK, "--auth-keys", "/no/keys.toml"), 1,
         "cannot read the keys file /no/keys.toml"),
        (("keys", "add", "--subject", "a"), 2, "the following arguments are required: --folders"),
        (("audit",), 2, "the following arguments are required: --file"),
    ],
)  # fmt: skip
def test_the_command_refuses_bad_input_in_one_line(
    args: tuple[str, ...], code: int, says: str
) -> None:
    result = files_api_command(*args)
    assert (result.returncode, result.stdout) == (code, "")
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--grpc-listen", "cannot listen for gRPC on {}"),
        ("--http-listen", "{}): address already in use"),
    ],
)
def test_a_port_in_use_is_one_line_and_exit_1(flag: str, says: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = files_api_command("serve", *LOOPBACK, flag, f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    shown = f"127.0.0.1:{port}" if flag == "--grpc-listen" else f"('127.0.0.1', {port}"
    assert says.format(shown) in result.stderr


def test_the_command_prints_its_version_and_serves_by_default() -> None:
    version = files_api_command("--version")
    assert version.returncode == 0
    assert version.stdout == f"files-api {metadata.version('files-api')}\n"
    listed = files_api_command("--help")
    assert "keys    add, list or revoke API keys" in listed.stdout
    assert "--grpc-listen HOST:PORT" in listed.stdout  # serve's flags, the default command


def test_tune_gc_sets_start_up_aside_and_makes_young_collections_rarer() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
