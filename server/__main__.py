"""`python -m server`: flags, each with an environment variable of the same meaning."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from typing import Any

from server.app import Settings, serve

# (flag, environment variable, Settings field, type, metavar, help)
_FLAGS: list[tuple[str, str, str, type, str, str]] = [
    ("--grpc-listen", "FILES_GRPC_LISTEN", "grpc_listen", str, "HOST:PORT",
     "gRPC address; port 0 picks a free one"),
    ("--http-listen", "FILES_HTTP_LISTEN", "http_listen", str, "HOST:PORT",
     "HTTP address for download links"),
    ("--store", "FILES_STORE", "store", str, "URL",
     "memory:, sqlite:///relative/path.db, sqlite:////absolute/path.db or"
     " postgresql://user:password@host:port/database?pool_size=10 (connections per replica)"),
    ("--tls-cert", "FILES_TLS_CERT", "tls_cert", str, "FILE",
     "PEM certificate chain: serve both listeners over TLS"),
    ("--tls-key", "FILES_TLS_KEY", "tls_key", str, "FILE", "PEM private key for --tls-cert"),
    ("--public-http-url", "FILES_PUBLIC_HTTP_URL", "public_http_url", str, "URL",
     "base of GetUrl links when clients reach the HTTP listener under another name"
     " (default: the listener's own address)"),
    ("--url-ttl", "FILES_URL_TTL", "url_ttl_seconds", int, "SECONDS",
     "how long a GetUrl link works"),
    ("--sweep-interval", "FILES_SWEEP_INTERVAL", "sweep_interval_seconds", float, "SECONDS",
     "how often expired files are purged"),
]  # fmt: skip


def parse_args(argv: list[str]) -> Settings:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="A self-hosted Yandex Cloud AI Studio Files API server (gRPC + HTTP).",
        epilog="Every flag can also be set by the environment variable named in its help.",
    )
    for flag, variable, field, kind, metavar, text in _FLAGS:
        default: Any = os.environ.get(variable, getattr(defaults, field))
        shown = "" if default is None else "; default %(default)s"
        parser.add_argument(
            flag, dest=field, type=kind, default=default, metavar=metavar,
            help=f"{text} ({variable}{shown})",
        )  # fmt: skip
    args = parser.parse_args(argv)
    # argparse converts string defaults (those from the environment) with `type` as well.
    return dataclasses.replace(defaults, **{f[2]: getattr(args, f[2]) for f in _FLAGS})


def main(argv: list[str] | None = None) -> None:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(settings))
    except (OSError, ValueError) as e:
        logging.getLogger("server").error("cannot start: %s", e)
        sys.exit(1)


if __name__ == "__main__":
    main()
