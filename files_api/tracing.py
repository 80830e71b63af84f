"""OpenTelemetry traces: off by default, and then free (the SDK is not even imported).

On with the standard variables (`OTEL_TRACES_EXPORTER=otlp`; `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf` (the default) or `grpc`, `OTEL_SERVICE_NAME`
(default `files-api`), the `OTEL_BSP_*` batch settings, ...), or with `--otlp-endpoint URL`,
which means the same as `OTEL_EXPORTER_OTLP_ENDPOINT`. `OTEL_SDK_DISABLED=true` wins over both.

Spans go out in batches from the SDK's own thread (BatchSpanProcessor): a call only appends its
finished spans to a bounded queue, so a slow or unreachable collector costs calls nothing; when
the queue is full, spans are dropped, never calls delayed.

The edges (files_api.observe) start a server span per call and make it current; `TracedStore`
puts a child span around each store method the call awaits.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from files_api.store import FileStore

DEFAULT_SERVICE_NAME = "files-api"
_TRUE = ("true", "1", "yes")


def wanted(otlp_endpoint: str | None) -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower().split(",")
    return bool(otlp_endpoint) or "otlp" in [e.strip() for e in exporters]


FLUSH_SECONDS = 2.0  # at shutdown, how long the last spans may take to go out


class Tracing:
    """The tracer and what `stop()` flushes and closes."""

    def __init__(self, provider: TracerProvider, exporter: Any) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tracer = provider.get_tracer("files_api")

    def stop(self, seconds: float = FLUSH_SECONDS) -> None:
        """Blocking: the last spans get `seconds` to go out. The SDK's flush ignores its own
        timeout and retries for the exporter's whole one (10 s), so it runs on a thread of its
        own, and shutting the exporter down after `seconds` interrupts its retries."""
        flushing = threading.Thread(target=self.provider.force_flush, daemon=True)
        flushing.start()
        flushing.join(seconds)
        if flushing.is_alive():
            self.exporter.shutdown()  # the provider's own shutdown would export (and wait) again
            flushing.join(seconds)
        else:
            self.provider.shutdown()


def start_tracing(otlp_endpoint: str | None) -> Tracing | None:
    """A tracer exporting over OTLP as the environment says, or None when tracing is off."""
    if not wanted(otlp_endpoint):
        return None
    # Imported here: a server that does not trace loads none of the SDK.
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter(endpoint=otlp_endpoint) if otlp_endpoint else GrpcExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        exporter = (
            HttpExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces")
            if otlp_endpoint
            else HttpExporter()
        )
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: use http/protobuf or grpc")
    service = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider, exporter)


def incoming_context(carrier: Iterable[tuple[str, Any]]) -> Any:
    """The W3C trace context (`traceparent`, `tracestate`) a caller sent, if any."""
    from opentelemetry.trace.propagation.tracecontext import (  # noqa: PLC0415
        TraceContextTextMapPropagator,
    )

    headers = {k.lower(): v for k, v in carrier if isinstance(v, str)}
    return TraceContextTextMapPropagator().extract(headers)


class TracedStore:
    """The store with a child span (`store.<method>`) around each call of its methods."""

    def __init__(self, store: FileStore, tracer: Tracer, system: str) -> None:
        self._store = store
        self._tracer = tracer
        self._system = system

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(value):
            return value
        return self._traced(name, value)

    def _traced(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        from opentelemetry import trace  # noqa: PLC0415

        tracer, system = self._tracer, self._system

        @functools.wraps(method)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().get_span_context().is_valid:
                return await method(*args, **kwargs)  # outside a call: the sweeper, counts
            with tracer.start_as_current_span(
                f"store.{name}", attributes={"db.system.name": system}
            ):
                return await method(*args, **kwargs)

        setattr(self, name, traced)  # made once per method
        return traced


class ServerSpans:
    """Starts a call's server span as the child of the caller's `traceparent` and makes it
    current (so store spans nest under it); ends it with the attributes learnt on the way."""

    def __init__(self, tracer: Tracer) -> None:
        from opentelemetry import context, trace  # noqa: PLC0415
        from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: PLC0415

        self._tracer = tracer
        self._context = context
        self._in_context = trace.set_span_in_context
        self._server = SpanKind.SERVER
        self._error = Status(StatusCode.ERROR)

    def start(
        self, name: str, carrier: Iterable[tuple[str, Any]], attributes: dict[str, Any]
    ) -> tuple[Any, object, str]:
        """The span, the token to detach it with, and its trace id in hex (for log lines)."""
        span = self._tracer.start_span(
            name, context=incoming_context(carrier), kind=self._server, attributes=attributes
        )
        token = self._context.attach(self._in_context(span))
        return span, token, format(span.get_span_context().trace_id, "032x")

    def end(self, span: Any, token: object, attributes: dict[str, Any], error: bool) -> None:
        span.set_attributes(attributes)
        if error:
            span.set_status(self._error)
        span.end()
        self._context.detach(token)  # type: ignore[arg-type]
