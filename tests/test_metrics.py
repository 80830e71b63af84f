"""`--metrics-listen`: a real Prometheus (Debian's package) scrapes the server every second and
its HTTP API must return exactly the calls made, alone and summed over `--workers 2`; the
exposition parses with prometheus_client's own parser and passes `promtool check metrics`."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from files_api.metrics import totals_interval
from tests.support import health_stub, run_server_command, spawn, wait_serving
from tests.test_workers import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
METRICS_LINE = re.compile(r"serving metrics on (http://\S+/metrics)")
UPDATES, MISSING, GETS, PATCHES, DOWNLOADS = 5, 3, 4, 2, 3


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str) -> Iterator[str]:
    """Prometheus on a free port, scraping `target` (HOST:PORT) every second; yields its URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs: [{{job_name: files-api, static_configs: [{{targets: ['{target}']}}]}}]\n"
    )
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with spawn(command, re.compile(r"Server is ready to receive web requests")):
        yield f"http://127.0.0.1:{port}"


def query(base: str, promql: str) -> dict[str, float]:
    """An instant query's vector as {the series' labels as text: value}."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    return {
        ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): float(r["value"][1])
        for r in body["data"]["result"]
    }


def eventually(base: str, promql: str, want: dict[str, float]) -> None:
    """Waits (at most 20 s: scrapes come every second) for the query to return `want`."""
    deadline = time.monotonic() + 20
    while (got := query(base, promql)) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    assert got == want


def make_calls(grpc_address: str, http_address: str, fresh_connections: bool) -> None:
    options = [("grpc.use_local_subchannel_pool", 1)] if fresh_connections else []

    def stub() -> Any:
        return file_service_pb2_grpc.FileServiceStub(
            grpc.insecure_channel(grpc_address, options=options)
        )

    made = stub().Create(fs.CreateFileRequest(folder_id="m", name="m.txt", content=b"metrics"))
    for n in range(UPDATES):
        stub().Update(
            fs.UpdateFileRequest(
                file_id=made.id,
                description=f"d{n}",
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
        )
    for _ in range(MISSING):
        with contextlib.suppress(grpc.RpcError):
            stub().Update(
                fs.UpdateFileRequest(
                    file_id="nosuchfile",
                    description="x",
                    update_mask=field_mask_pb2.FieldMask(paths=["description"]),
                )
            )
    for _ in range(GETS):
        stub().Get(fs.GetFileRequest(file_id=made.id))
    url = stub().GetUrl(fs.GetFileUrlRequest(file_id=made.id)).url
    for n in range(PATCHES):
        request = urllib.request.Request(
            f"http://{http_address}/files/v1/files/{made.id}",
            data=json.dumps({"updateMask": "description", "description": f"p{n}"}).encode(),
            headers={"Content-Type": "application/json"},
            method="PATCH",
        )
        urllib.request.urlopen(request, timeout=10).close()
    for _ in range(DOWNLOADS):
        urllib.request.urlopen(url, timeout=10).close()


HANDLED = (
    "sum by (grpc_method, grpc_code) (grpc_server_handled_total{grpc_service=~'.*FileService'})"
)
HTTP = "sum by (face, method, route, status) (http_server_requests_total{face!='health'})"
WANT_HANDLED: dict[str, float] = {
    "grpc_code=OK,grpc_method=Create": 1,
    "grpc_code=OK,grpc_method=Update": UPDATES,
    "grpc_code=NotFound,grpc_method=Update": MISSING,
    "grpc_code=OK,grpc_method=Get": GETS,
    "grpc_code=OK,grpc_method=GetUrl": 1,
}
WANT_HTTP: dict[str, float] = {
    "face=rest,method=PATCH,route=/files/v1/files/{file_id},status=200": PATCHES,
    "face=download,method=GET,route=/files/v1/files/{file_id}/content,status=200": DOWNLOADS,
}


def test_prometheus_counts_every_call_of_one_process(tmp_path: Path) -> None:
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "files_api", "--grpc-listen", grpc_address]
    command += ["--http-listen", http_address, "--store", f"sqlite:///{tmp_path / 'f.db'}"]
    command += ["--metrics-listen", "127.0.0.1:0"]
    with spawn(command, METRICS_LINE) as (_, match, _log):
        metrics_url = match[1]
        wait_serving(grpc_address)
        make_calls(grpc_address, http_address, fresh_connections=False)
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name in (
            "grpc_server_started",
            "grpc_server_handled",
            "grpc_server_msg_received",
            "grpc_server_msg_sent",
            "grpc_server_handling_seconds",
            "http_server_requests",
            "http_server_request_duration_seconds",
            "files_api_files",
            "files_api_content_bytes",
            "files_api_expired_purged",
            "files_api_build_info",
            "files_api_store_write_seconds",
            "files_api_group_commit_writes",
            "process_cpu_seconds",
        ):
            assert name in families, name
        writes = families["files_api_store_write_seconds"].samples
        assert any(s.name.endswith("_count") and s.value >= UPDATES for s in writes)
        check = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr
        openmetrics = urllib.request.Request(
            metrics_url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        with urllib.request.urlopen(openmetrics, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert response.read().decode().endswith("# EOF\n")
        with prometheus(tmp_path, urllib.parse.urlsplit(metrics_url).netloc) as base:
            eventually(base, HANDLED, WANT_HANDLED)
            eventually(base, HTTP, WANT_HTTP)
            eventually(
                base,
                "files_api_files",
                {
                    "__name__=files_api_files,instance="
                    + urllib.parse.urlsplit(metrics_url).netloc
                    + ",job=files-api": 1
                },
            )


def sent_by_watch(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "grpc_server_msg_sent"
        for sample in family.samples
        if sample.labels.get("grpc_method") == "Watch"
    )


def test_health_watch_counts_the_responses_it_writes(tmp_path: Path) -> None:
    """Watch answers with context.write, not by returning: its messages count all the same."""
    grpc_address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "files_api", "--grpc-listen", grpc_address]
    command += ["--http-listen", "127.0.0.1:0", "--store", "memory:"]
    command += ["--metrics-listen", "127.0.0.1:0"]
    with spawn(command, METRICS_LINE) as (_, match, _log):
        wait_serving(grpc_address)
        with grpc.insecure_channel(grpc_address) as channel:
            watch = health_stub(channel).Watch(health_pb2.HealthCheckRequest())
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
        deadline = time.monotonic() + 10  # counted when the server sees the stream end
        while (sent := sent_by_watch(match[1])) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sent == 1


def test_a_taken_metrics_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        for workers in ("1", "2"):
            result = run_server_command(
                *("--store", f"sqlite:///{tmp_path / 'f.db'}", "--workers", workers),
                *("--grpc-listen", f"127.0.0.1:{free_port()}"),
                *("--http-listen", f"127.0.0.1:{free_port()}", "--metrics-listen", address),
            )
            assert result.returncode == 1
            assert f"cannot listen for metrics on {address}" in result.stderr
            assert "Traceback" not in result.stderr


def test_prometheus_sums_two_workers_and_sees_no_reset(tmp_path: Path) -> None:
    grpc_address, http_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics_address = f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "files_api", "--workers", "2", "--grpc-listen", grpc_address]
    command += ["--http-listen", http_address, "--store", f"sqlite:///{tmp_path / 'f.db'}"]
    command += ["--metrics-listen", metrics_address]
    with spawn(command, re.compile(r"started 2 workers")) as (process, _, log):
        wait_serving(grpc_address)
        with prometheus(tmp_path, metrics_address) as base:
            make_calls(grpc_address, http_address, fresh_connections=True)
            eventually(base, HANDLED, WANT_HANDLED)
            eventually(base, HTTP, WANT_HTTP)
            served = "".join(log)
            assert len(set(re.findall(r"files_api\[(\d+)\]: serving gRPC", served))) == 2
            resets = query(base, "sum(resets(grpc_server_handled_total[1m]))")
            assert set(resets.values()) == {0.0}
        process.terminate()
        assert process.wait(timeout=60) == 0


@pytest.mark.parametrize(("counting", "wait"), [(0.0, 5.0), (0.04, 5.0), (0.5, 50.0), (3.0, 300.0)])
def test_counting_a_big_store_takes_at_most_a_hundredth_of_a_core(
    counting: float, wait: float
) -> None:
    """A million files take about half a second to count: every 5 s that was 10 % of a core on
    an idle server (the bench's idle figure); now the count waits a hundred times as long."""
    assert totals_interval(counting) == pytest.approx(wait)
