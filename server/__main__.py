"""`python -m server`: flags, each with an environment variable of the same meaning."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from server.app import Settings, serve

_DEFAULTS = Settings()


def parse_args(argv: list[str]) -> Settings:
    def env(name: str, default: object) -> str | None:
        value = os.environ.get(name)
        return value if value is not None else (None if default is None else str(default))

    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="A self-hosted Yandex Cloud AI Studio Files API server (gRPC + HTTP).",
        epilog="Every flag can also be set by the environment variable named in its help.",
    )
    parser.add_argument(
        "--grpc-listen",
        default=env("FILES_GRPC_LISTEN", _DEFAULTS.grpc_listen),
        metavar="HOST:PORT",
        help="gRPC address (FILES_GRPC_LISTEN; default %(default)s; port 0 picks a free one)",
    )
    parser.add_argument(
        "--http-listen",
        default=env("FILES_HTTP_LISTEN", _DEFAULTS.http_listen),
        metavar="HOST:PORT",
        help="HTTP address for download links (FILES_HTTP_LISTEN; default %(default)s)",
    )
    parser.add_argument(
        "--store",
        default=env("FILES_STORE", _DEFAULTS.store),
        metavar="URL",
        help="memory: or sqlite:///relative/path.db or sqlite:////absolute/path.db"
        " (FILES_STORE; default %(default)s)",
    )
    parser.add_argument(
        "--tls-cert",
        default=env("FILES_TLS_CERT", None),
        metavar="FILE",
        help="PEM certificate chain: serve both listeners over TLS (FILES_TLS_CERT)",
    )
    parser.add_argument(
        "--tls-key",
        default=env("FILES_TLS_KEY", None),
        metavar="FILE",
        help="PEM key (FILES_TLS_KEY)",
    )
    parser.add_argument(
        "--public-http-url",
        default=env("FILES_PUBLIC_HTTP_URL", None),
        metavar="URL",
        help="base of the download links GetUrl returns, when clients reach the HTTP listener"
        " under another name (FILES_PUBLIC_HTTP_URL; default: the listener's own address)",
    )
    parser.add_argument(
        "--url-ttl",
        type=int,
        default=env("FILES_URL_TTL", _DEFAULTS.url_ttl_seconds),
        metavar="SECONDS",
        help="how long a GetUrl link works (FILES_URL_TTL; default %(default)s)",
    )
    parser.add_argument(
        "--sweep-interval",
        type=float,
        default=env("FILES_SWEEP_INTERVAL", _DEFAULTS.sweep_interval_seconds),
        metavar="SECONDS",
        help="how often expired files are purged (FILES_SWEEP_INTERVAL; default %(default)s)",
    )
    args = parser.parse_args(argv)
    return Settings(
        grpc_listen=args.grpc_listen,
        http_listen=args.http_listen,
        store=args.store,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        public_http_url=args.public_http_url,
        url_ttl_seconds=args.url_ttl,
        sweep_interval_seconds=args.sweep_interval,
    )


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
