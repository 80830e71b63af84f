"""The Node.js client in clients/node against `python -m server` on SQLite, end to end.

Its stubs are generated from protos/ by protoc-gen-es and committed in clients/node/gen; it
speaks the gRPC protocol over HTTP/2 through @connectrpc/connect-node. `npm ci` installs the
exact packages of clients/node/package-lock.json the first time and whenever the lockfile
changes. files-client.mjs runs the whole scenario once and reports what it observed as proto3
JSON; each test here checks one part of that report, and one test checks that the committed
stubs are what the protos generate now.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import grpc
import grpc_tools
import pytest
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2, file_service_pb2_grpc
from google.protobuf import json_format, timestamp_pb2

from files_api.domain.limits import NS_PER_DAY
from tests.support import ROOT, VENV_BIN, server_process

NODE_CLIENT = ROOT / "clients" / "node"
# Written after a successful `npm ci`; older than any of these means install again.
INSTALL_STAMP = NODE_CLIENT / "node_modules" / ".installed"
INSTALL_INPUTS = ("package.json", "package-lock.json", ".npmrc")
MIN_NODE_MAJOR = 20

Report = dict[str, Any]

CREATED_LABELS = {"env": "dev", "team.name": "core", "keep": "yes", "gone": "bye"}
# Only the entries the mask names change: env and `team.name` take the request's values, gone
# (named but absent from the request) is removed, and the request's `extra` is not added.
UPDATED_LABELS = {"env": "prod", "team.name": "platform", "keep": "yes"}


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with clients/node/node_modules installed from the lockfile."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        pytest.fail(
            f"{missing} not found on PATH: the Node client test needs Node.js"
            f" {MIN_NODE_MAJOR} or later with npm, which `make` does not install",
            pytrace=False,
        )
    version = _run([node, "--version"], NODE_CLIENT, 30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        pytest.fail(f"node {version} is too old: need {MIN_NODE_MAJOR} or later", pytrace=False)
    newest_input = max((NODE_CLIENT / name).stat().st_mtime for name in INSTALL_INPUTS)
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.stat().st_mtime < newest_input:
        # --prefer-offline: packages already in npm's cache are not fetched again.
        result = _run([npm, "ci", "--prefer-offline"], NODE_CLIENT, 300)
        if result.returncode != 0:
            pytest.fail(
                f"npm ci in {NODE_CLIENT} failed:\n{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        INSTALL_STAMP.touch()
    return node


@pytest.fixture(scope="module")
def report(node: str, tmp_path_factory: pytest.TempPathFactory) -> Report:
    db = tmp_path_factory.mktemp("node") / "f.db"
    with server_process("--store", f"sqlite:///{db}") as server:
        result = _run([node, "files-client.mjs", server.grpc_address], NODE_CLIENT, 60)
        if result.returncode != 0:
            raise AssertionError(
                f"files-client.mjs failed (exit {result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        observed: Report = json.loads(result.stdout)
        # The same file through the Python stubs, to check the Node side read it faithfully.
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            python_view = stub.Get(
                file_service_pb2.GetFileRequest(file_id=observed["created"]["id"]), timeout=10
            )
    observed["python_view"] = json_format.MessageToDict(
        python_view, always_print_fields_with_no_presence=True
    )
    return observed


def _ns(rfc3339: str) -> int:
    timestamp = timestamp_pb2.Timestamp()
    timestamp.FromJsonString(rfc3339)
    return timestamp.ToNanoseconds()


def test_create_returns_the_file_as_asked(report: Report) -> None:
    created = report["created"]
    assert created["id"]
    assert created["folderId"] == report["folderId"]
    assert (created["name"], created["description"]) == ("notes.txt", "first description")
    assert created["mimeType"] == "text/plain"
    assert created["labels"] == CREATED_LABELS
    assert created["expirationConfig"] == {"expirationPolicy": "STATIC", "ttlDays": "3"}
    assert created["updatedAt"] == created["createdAt"]
    assert _ns(created["expiresAt"]) == _ns(created["createdAt"]) + 3 * NS_PER_DAY


def test_update_changes_exactly_what_the_mask_names(report: Report) -> None:
    assert report["updateMask"] == ["name", "labels.env", "labels.`team.name`", "labels.gone"]
    created, updated = report["created"], report["updated"]
    # The request also carried a description, an extra label and another expiration; none of
    # them is in the mask, so the file keeps its own. STATIC expiry counts from creation.
    expected = {
        **created,
        "name": "notes-v2.txt",
        "labels": UPDATED_LABELS,
        "updatedAt": updated["updatedAt"],
    }
    assert updated == expected
    assert _ns(updated["updatedAt"]) > _ns(created["updatedAt"])


def test_get_returns_exactly_what_update_answered(report: Report) -> None:
    assert report["got"] == report["updated"]


def test_node_reads_the_file_as_the_python_stubs_do(report: Report) -> None:
    assert report["got"] == report["python_view"]


def test_timestamps_keep_nanoseconds(report: Report) -> None:
    files = [f for page in report["pages"] for f in page["files"]]
    nanos = [_ns(f[key]) for f in files for key in ("createdAt", "updatedAt", "expiresAt")]
    # Microsecond (or coarser) storage would make every one a multiple of 1000.
    assert any(n % 1000 for n in nanos), nanos


def test_list_walks_newest_first_in_pages_until_an_empty_page(report: Report) -> None:
    pages = report["pages"]
    assert [len(p["files"]) for p in pages] == [2, 2, 1, 0]
    assert all(p["nextPageToken"] for p in pages[:-1])
    assert pages[-1]["nextPageToken"] == ""
    listed = [f for p in pages for f in p["files"]]
    assert [f["id"] for f in listed] == [*reversed(report["extraIds"]), report["created"]["id"]]
    assert listed[-1] == report["got"]


def test_errors_carry_their_codes(report: Report) -> None:
    assert report["getMissing"]["code"] == "NotFound"
    assert report["badMask"]["code"] == "InvalidArgument"
    assert "no_such_field" in report["badMask"]["message"]


def test_generated_stubs_are_fresh(node: str, tmp_path: Path) -> None:
    """clients/node/gen is what clients/node/buf.gen.yaml makes from protos/ now."""
    image = tmp_path / "protos.binpb"
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    # The same image as the Makefile's PROTOC: google/* imports from the installed packages.
    protoc = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-Iprotos",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
        f"-I{sysconfig.get_paths()['purelib']}",
        "--include_imports",
        f"--descriptor_set_out={image}",
        *protos,
    ]
    result = _run(protoc, ROOT, 60)
    assert result.returncode == 0, result.stderr
    # buf runs in clients/node, where buf.gen.yaml finds the plugin in node_modules; -o puts
    # the output under tmp_path instead of over the committed files.
    out = tmp_path / "out"
    buf = [str(VENV_BIN / "buf"), "generate", str(image), "--path", "yandex", "-o", str(out)]
    result = _run(buf, NODE_CLIENT, 60)
    assert result.returncode == 0, result.stderr

    def tree(base: Path) -> dict[str, bytes]:
        return {str(p.relative_to(base)): p.read_bytes() for p in base.rglob("*") if p.is_file()}

    fresh, committed = tree(out / "gen"), tree(NODE_CLIENT / "gen")
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, f"clients/node/gen is stale ({stale}): run `make generate` and commit"
