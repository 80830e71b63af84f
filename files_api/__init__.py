"""The Files API server package; `files_api.__main__` is the `files-api` command."""

from __future__ import annotations

from importlib import metadata


def version() -> str:
    """The installed distribution's version (what `files-api --version` prints)."""
    try:
        return metadata.version("files-api")
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"
