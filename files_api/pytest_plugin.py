"""The `files_api` pytest fixture, registered through the `pytest11` entry point: installing the
package is enough.

    def test_upload(files_api):
        sdk = AsyncAIStudio(folder_id="f", endpoint=None, auth=NoAuth(), verify=False,
                            service_map={"ai-files": files_api.grpc_target})

One server per test session (so a test pays no start-up), emptied before each test that asks
for it: every test starts with no files, or with the files of `--files-api-seed FILE` (an
archive `files-api export` wrote). `--files-api-store URL` runs the same fixture on SQLite or
PostgreSQL instead of `memory:`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from files_api.testing import FilesApiServer

if TYPE_CHECKING:
    from collections.abc import Iterator


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("files-api").addoption(
        "--files-api-store",
        default="memory:",
        metavar="URL",
        help="store URL of the files_api fixture's server (default: memory:)",
    )
    parser.getgroup("files-api").addoption(
        "--files-api-seed",
        default=None,
        metavar="FILE",
        help="an archive (files-api export) the memory: store starts with, again in every test",
    )


@pytest.fixture(scope="session")
def files_api_server(request: pytest.FixtureRequest) -> Iterator[FilesApiServer]:
    """The session's server, as it is: files from earlier tests included."""
    store = str(request.config.getoption("--files-api-store"))
    seed = request.config.getoption("--files-api-seed")
    with FilesApiServer(store, seed=None if seed is None else str(seed)) as server:
        yield server


@pytest.fixture
def files_api(files_api_server: FilesApiServer) -> FilesApiServer:
    """The session's server, emptied (and seeded again) for this test."""
    files_api_server.reset()
    return files_api_server
