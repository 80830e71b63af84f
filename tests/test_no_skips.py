"""tests/conftest.py turns every skip into a failure: a green run means every test ran.

The check runs pytest in a subprocess over throwaway tests outside tests/, with the project's
configuration and its conftest loaded as a plugin (`-p tests.conftest`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import pytest

from tests.conftest import NEVER_SKIPPED
from tests.support import ROOT

if TYPE_CHECKING:
    from pathlib import Path

SKIPS = """
import pytest

def test_body_skip():
    pytest.skip("body reason")

@pytest.mark.skip(reason="mark reason")
def test_mark_skip():
    pass

@pytest.mark.skipif(True, reason="skipif reason")
def test_skipif():
    pass

@pytest.mark.xfail(reason="xfail reason")
def test_xfail():
    raise AssertionError

def test_passes():
    pass
"""
MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_here")

def test_never_collected():
    pass
"""
# (summary line, reason): a skip in a test body or an xfail fails the test; a skip mark fails
# its setup; a module that skips itself is a collection error.
EXPECTED = [
    ("FAILED test_skips.py::test_body_skip", "body reason"),
    ("ERROR test_skips.py::test_mark_skip", "mark reason"),
    ("ERROR test_skips.py::test_skipif", "skipif reason"),
    ("FAILED test_skips.py::test_xfail", "xfail reason"),
    ("ERROR test_module_skip.py", "could not import 'no_such_module_here'"),
]


def test_every_kind_of_skip_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(textwrap.dedent(SKIPS))
    (tmp_path / "test_module_skip.py").write_text(textwrap.dedent(MODULE_SKIP))
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(tmp_path),
            "-c", str(ROOT / "pyproject.toml"), "-p", "tests.conftest", "-p", "no:cacheprovider",
            "-rA", "--continue-on-collection-errors",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    summary = {line.split(" - ")[0] for line in output.splitlines() if " - " in line}
    assert {line for line, _ in EXPECTED} <= summary, output
    assert "PASSED test_skips.py::test_passes" in output, output
    assert "skipped" not in output.splitlines()[-1], output
    for _, reason in EXPECTED:
        assert f"{NEVER_SKIPPED}: {reason}" in output, output
