"""`--workers N`: several processes on the same ports and the same store."""

from __future__ import annotations

import re
import signal
import socket
import sys
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from tests.support import run_server_command, spawn, wait_serving

if TYPE_CHECKING:
    from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])  # memory: is refused, below
def test_two_workers_share_the_ports_and_the_store(store_url: str) -> None:
    grpc_address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "files_api", "--workers", "2", "--grpc-listen", grpc_address]
    command += ["--http-listen", f"127.0.0.1:{free_port()}", "--store", store_url]
    with spawn(command, re.compile(r"started 2 workers: (\d+), (\d+)")) as (process, match, log):
        pids = {match[1], match[2]}
        wait_serving(grpc_address)
        ids = []
        for _ in range(40):  # a fresh connection each time: the kernel spreads them
            with grpc.insecure_channel(
                grpc_address, options=[("grpc.use_local_subchannel_pool", 1)]
            ) as channel:
                stub = file_service_pb2_grpc.FileServiceStub(channel)
                ids.append(stub.Create(fs.CreateFileRequest(folder_id="w", content=b"x")).id)
        with grpc.insecure_channel(grpc_address) as channel:
            listed = file_service_pb2_grpc.FileServiceStub(channel).List(
                fs.ListFilesRequest(folder_id="w", page_size=1000)
            )
        assert sorted(f.id for f in listed.files) == sorted(ids)
        serving = {m[1] for m in re.finditer(r"files_api\[(\d+)\]: serving gRPC", "".join(log))}
        assert serving == pids
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    text = "".join(log)
    assert "stopped 2 workers (exit codes [0, 0])" in text
    assert "Traceback" not in text


def test_workers_need_fixed_ports_and_a_shared_store(tmp_path: Path) -> None:
    for args, words in [
        (
            ["--store", "memory:", "--grpc-listen", "127.0.0.1:1", "--http-listen", "127.0.0.1:2"],
            "shared store",
        ),
        (["--store", f"sqlite:///{tmp_path}/f.db", "--grpc-listen", "127.0.0.1:0"], "fixed ports"),
    ]:
        result = run_server_command("--workers", "2", *args)
        assert result.returncode == 1
        assert words in result.stderr


def test_a_lone_server_does_not_share_its_port(tmp_path: Path) -> None:
    port = free_port()
    base = [
        sys.executable,
        "-m",
        "files_api",
        "--store",
        "memory:",
        "--grpc-listen",
        f"127.0.0.1:{port}",
    ]
    first = [*base, "--http-listen", "127.0.0.1:0"]
    with spawn(first, re.compile(r"serving gRPC")):
        wait_serving(f"127.0.0.1:{port}")
        result = run_server_command(*base[3:], "--http-listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "cannot start: cannot listen for gRPC on 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
