"""Prometheus metrics (prometheus_client), under the names dashboards already read.

gRPC series are go-grpc-prometheus's, label for label; HTTP series label the route template,
never the raw path. With `--workers N` every worker writes its values to prometheus_client's
multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`, made and removed by the supervisor, which
serves `/metrics` from it and marks a worker that exits as dead), so counters add up across
workers and keep what an exited worker counted: a scrape never sees one go backwards.

The live-files gauges are refreshed by a query every `TOTALS_SECONDS` (less often on a store
so big that counting would take more than 1 % of a core), not counted from each write: a count
the store makes is right across every replica on one PostgreSQL and every worker on one SQLite
file (each process adjusting its own count would see only its own writes), costs one query per
interval whatever the scrape rate, and runs off the event loop.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram, multiprocess

from files_api.store import WRITE_TIMINGS

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
TOTALS_SECONDS = 5.0
TOTALS_SHARE = 0.01  # of one core, at most, that counting may take on a big store


def totals_interval(counting_seconds: float) -> float:
    """How long to wait before counting again: TOTALS_SECONDS, or longer when a count takes
    long (a million files take about half a second), so an idle server stays idle."""
    return max(TOTALS_SECONDS, counting_seconds / TOTALS_SHARE)


# writes per group commit: 1 to the writer's batch limit
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _go_labels() -> tuple[str, str, str]:
    return ("grpc_type", "grpc_service", "grpc_method")


class PrometheusMetrics:
    """Every series of the process; one per process (prometheus_client registers them once)."""

    def __init__(self, version: str) -> None:
        labels = _go_labels()
        self.started = Counter(
            "grpc_server_started_total", "Total number of RPCs started on the server.", labels
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*labels, "grpc_code"),
        )
        self.received = Counter(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            labels,
        )
        self.sent = Counter(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            labels,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level"
            " handled by the server.",
            labels,
        )
        http_labels = ("face", "method", "route", "status")
        self.http_requests = Counter(
            "http_server_requests_total", "HTTP requests answered, by face and route.", http_labels
        )
        self.http_seconds = Histogram(
            "http_server_request_duration_seconds",
            "Time to answer an HTTP request, by face and route.",
            http_labels,
        )
        self.files = Gauge(
            "files_api_files", "Live files in the store.", multiprocess_mode="mostrecent"
        )
        self.content_bytes = Gauge(
            "files_api_content_bytes",
            "Bytes of content of the live files.",
            multiprocess_mode="mostrecent",
        )
        self.purged = Counter("files_api_expired_purged", "Expired files purged.")
        self.store_write = Histogram(
            "files_api_store_write_seconds", "Time of a store write until it is durable."
        )
        self.group_commit = Histogram(
            "files_api_group_commit_writes",
            "Writes made durable by one SQLite group commit.",
            buckets=GROUP_BUCKETS,
        )
        info = Gauge(
            "files_api_build_info",
            "The running server's version; always 1.",
            ("version",),
            multiprocess_mode="max",
        )
        info.labels(version).set(1)
        WRITE_TIMINGS.durable = self.store_write.observe
        WRITE_TIMINGS.group = self.group_commit.observe
        # labels() takes a lock and builds a key on every call; the children are kept here.
        self._grpc: dict[tuple[str, str, str], tuple[Counter, Counter, Counter, Histogram]] = {}
        self._handled: dict[tuple[tuple[str, str, str], str], Counter] = {}
        self._http: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}

    def _grpc_children(
        self, labels: tuple[str, str, str]
    ) -> tuple[Counter, Counter, Counter, Histogram]:
        children = self._grpc.get(labels)
        if children is None:
            children = self._grpc[labels] = (
                self.started.labels(*labels),
                self.received.labels(*labels),
                self.sent.labels(*labels),
                self.handling.labels(*labels),
            )
        return children

    def grpc_started(self, labels: tuple[str, str, str]) -> None:
        self._grpc_children(labels)[0].inc()

    def grpc_handled(
        self, labels: tuple[str, str, str], code: str, seconds: float, received: int, sent: int
    ) -> None:
        _, received_total, sent_total, handling = self._grpc_children(labels)
        handled = self._handled.get((labels, code))
        if handled is None:
            handled = self._handled[labels, code] = self.handled.labels(*labels, code)
        handled.inc()
        if received:
            received_total.inc(received)
        if sent:
            sent_total.inc(sent)
        handling.observe(seconds)

    def http_handled(self, face: str, method: str, route: str, status: int, seconds: float) -> None:
        key = (face, method, route, status)
        children = self._http.get(key)
        if children is None:
            values = (face, method, route, str(status))
            children = self._http[key] = (
                self.http_requests.labels(*values),
                self.http_seconds.labels(*values),
            )
        children[0].inc()
        children[1].observe(seconds)


_metrics: PrometheusMetrics | None = None
_lock = threading.Lock()


def process_metrics(version: str) -> PrometheusMetrics:
    global _metrics  # noqa: PLW0603 (one set of series per process, as prometheus_client has)
    with _lock:
        if _metrics is None:
            _metrics = PrometheusMetrics(version)
        return _metrics


def serve_metrics(address: tuple[str, int], multiproc_dir: str | None = None) -> int:
    """`/metrics` on a thread of its own (text, or OpenMetrics when the scraper asks); returns
    the port. With `multiproc_dir`, the sum of the workers' files."""
    registry: CollectorRegistry = prometheus_client.REGISTRY
    if multiproc_dir is not None:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
        prometheus_client.ProcessCollector(registry=registry)
        prometheus_client.PlatformCollector(registry=registry)
    server, _ = prometheus_client.start_http_server(address[1], address[0], registry)
    return int(server.server_port)


def make_multiproc_dir() -> str:
    """A fresh directory for the workers' values, named in the environment they inherit."""
    path = tempfile.mkdtemp(prefix="files-api-metrics-")
    os.environ[MULTIPROC_DIR] = path
    return path


def remove_multiproc_dir(path: str) -> None:
    os.environ.pop(MULTIPROC_DIR, None)
    shutil.rmtree(path, ignore_errors=True)


def mark_dead(pid: int, path: str) -> None:
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
