"""The package as users install it: a wheel built once per run, and a checkout installed with
`pip install .`, each into a fresh virtualenv outside the checkout beside the AI Studio SDK.

The environments install from .wheelhouse, which `make test` fills from the package index once
(our dependencies resolved together with tests/package/requirements.txt), so a run pays for
unpacking, not downloading. In them: `pip check` is clean; our stubs and the official
`yandexcloud` ones load in one process in either order; users' own pytest files run on the
`files_api` fixture (the README's example among them); uninstalling either package leaves the
other working.
"""

from __future__ import annotations

import os
import re
import subprocess
import venv
import zipfile
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2, file_service_pb2_grpc

from files_api.testing import FilesApiServer
from tests.support import ROOT

if TYPE_CHECKING:
    from pathlib import Path

WHEELHOUSE = ROOT / ".wheelhouse"
PACKAGE_TESTS = ROOT / "tests" / "package"
SDK = "yandex-ai-studio-sdk==0.22.1"
PYTEST = next(
    line for line in (PACKAGE_TESTS / "requirements.txt").read_text().splitlines()
    if line.startswith("pytest==")
)  # fmt: skip
STEP_TIMEOUT = 600


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Runs a command to success (outside the checkout, with no stdin); its stdout."""
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class Env:
    """A fresh virtualenv that installs only from the wheelhouse."""

    def __init__(self, path: Path) -> None:
        if not (WHEELHOUSE / ".ready").exists():
            raise RuntimeError(f"{WHEELHOUSE} is missing: run `make test`, which fills it")
        venv.create(path, with_pip=True)
        self.path = path
        self.python = path / "bin" / "python"

    def pip(self, *args: str | Path) -> str:
        offline = ("--no-index", "--find-links", WHEELHOUSE)
        if args[0] in ("install", "wheel"):
            args = (args[0], "-q", *offline, *args[1:])
        return run(self.python, "-m", "pip", *args, "--disable-pip-version-check", cwd=self.path)

    def py(self, *args: str | Path) -> str:
        return run(self.python, *args, cwd=self.path)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once per run from the checkout as it is."""
    out = tmp_path_factory.mktemp("dist")
    builder = Env(tmp_path_factory.mktemp("builder"))
    builder.pip("wheel", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("files_api-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_then_sdk(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    env = Env(tmp_path_factory.mktemp("wheel-then-sdk"))
    env.pip("install", wheel)
    env.pip("install", SDK, PYTEST)
    return env


def test_the_wheel_holds_only_our_two_top_level_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith("-info")}
    assert tops == {"files_api", "files_api_stubs"}
    assert "files_api_stubs/yandex/cloud/ai/files/v1/file_service_pb2.pyi" in names
    assert "files_api/py.typed" in names
    assert not [n for n in names if n.startswith(("server/", "yandex/", "tests/"))]
    # The web console's static files, every one the checkout serves.
    console = ROOT / "files_api" / "console"
    assert {n for n in names if n.startswith("files_api/console/")} == {
        f"files_api/console/{path.name}" for path in console.iterdir() if path.is_file()
    }


def test_beside_the_sdk_pip_check_is_clean_and_the_command_runs(wheel_then_sdk: Env) -> None:
    env = wheel_then_sdk
    assert "No broken requirements" in env.pip("check")
    version = run(env.path / "bin" / "files-api", "--version")
    assert re.fullmatch(r"files-api \d+\.\d+\.\d+\S*\n", version), version


@pytest.mark.parametrize("first", ["ours", "official"])
def test_both_sets_of_stubs_load_in_one_process(wheel_then_sdk: Env, first: str) -> None:
    assert wheel_then_sdk.py(PACKAGE_TESTS / "coexist.py", first).strip() == "ok"


def readme_fixture_example() -> str:
    """The first ```python block of the README's "Use it in your tests" section."""
    section = (ROOT / "README.md").read_text().split("## Use it in your tests", 1)[1]
    match = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, "the README's 'Use it in your tests' section has no python example"
    return match[1]


@pytest.mark.parametrize("store", ["memory:", "sqlite"])
def test_users_own_tests_run_on_the_fixture(
    wheel_then_sdk: Env, tmp_path: Path, store: str
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_readme_example.py").write_text(readme_fixture_example())
    (suite / "test_stubs.py").write_text((PACKAGE_TESTS / "uses_stubs.py").read_text())
    url = store if store == "memory:" else f"sqlite:///{tmp_path / 'files.db'}"
    out = run(
        wheel_then_sdk.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--files-api-store", url, suite, cwd=suite,
    )  # fmt: skip
    assert re.search(r"\b4 passed\b", out), out


_SEEDED_SUITE = """
import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2, file_service_pb2_grpc


def names(stub):
    page = stub.List(file_service_pb2.ListFilesRequest(folder_id="b1gteam"))
    return [f.name for f in page.files]


def test_starts_with_the_seed_and_deletes_it(files_api):
    with grpc.insecure_channel(files_api.grpc_target) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        assert names(stub) == ["seeded.txt"]
        stub.Delete(file_service_pb2.DeleteFileRequest(file_id="{file_id}"))
        assert names(stub) == []


def test_starts_with_the_seed_again(files_api):
    with grpc.insecure_channel(files_api.grpc_target) as channel:
        assert names(file_service_pb2_grpc.FileServiceStub(channel)) == ["seeded.txt"]
"""


def test_users_own_tests_start_from_a_seed(wheel_then_sdk: Env, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'seed.db'}"
    with FilesApiServer(store) as server, grpc.insecure_channel(server.grpc_target) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        file = stub.Create(
            file_service_pb2.CreateFileRequest(folder_id="b1gteam", name="seeded.txt", content=b"x")
        )
    seed = tmp_path / "seed.tar.zst"
    exported = run(
        wheel_then_sdk.path / "bin" / "files-api", "export", "--store", store, "--out", seed
    )
    assert exported == ""  # the summary goes to stderr
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_seeded.py").write_text(_SEEDED_SUITE.replace("{file_id}", file.id))
    out = run(
        wheel_then_sdk.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--files-api-seed", seed, suite, cwd=suite,
    )  # fmt: skip
    assert re.search(r"\b2 passed\b", out), out


def test_the_readme_context_manager_example_runs(wheel_then_sdk: Env, tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## Use it in your tests", 1)[1]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    (tmp_path / "example.py").write_text(blocks[1])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+\n", wheel_then_sdk.py(tmp_path / "example.py"))


def test_uninstalling_ours_leaves_the_sdk_working(wheel: Path, wheel_then_sdk: Env) -> None:
    env = wheel_then_sdk
    env.pip("uninstall", "-y", "files-api")
    try:
        env.py(
            "-c",
            "import yandex.cloud.ai.files.v1.file_service_pb2_grpc;"
            " from yandex_ai_studio_sdk import AsyncAIStudio",
        )
        assert "No broken requirements" in env.pip("check")
    finally:
        env.pip("install", "--no-deps", wheel)


def test_a_checkout_installs_after_the_sdk_and_outlives_it(
    tmp_path: Path, wheel_then_sdk: Env
) -> None:
    # wheel_then_sdk first: its wheel build filled pip's cache with the build requirements.
    env = Env(tmp_path / "sdk-then-checkout")
    env.pip("install", SDK)
    env.pip("install", ROOT)
    assert "No broken requirements" in env.pip("check")
    env.pip("uninstall", "-y", "yandex-ai-studio-sdk", "yandexcloud")
    assert env.py(PACKAGE_TESTS / "ours_alone.py").strip() == "ok"
