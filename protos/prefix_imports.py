"""Moves freshly generated stubs under the `files_api_stubs` package (run by `make generate`).

protoc names a module after its .proto file (`yandex/cloud/ai/files/v1/file.proto` becomes
`yandex.cloud.ai.files.v1.file_pb2`), and the official `yandexcloud` distribution installs
modules of exactly those names: two distributions must not install the same file. So ours live
one level down, as `files_api_stubs.yandex.cloud...`, and this rewrites the imports protoc and
its plugins wrote (`from yandex.cloud.ai.common import common_pb2`) and the module name each
`_pb2` gives its classes. The .proto file names, and so the descriptors registered in
protobuf's pool, stay the official ones.

    python protos/prefix_imports.py generated/files_api_stubs
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PACKAGE = "files_api_stubs"
IMPORT = re.compile(r"^from (yandex(?:\.\w+)*) import ", re.MULTILINE)
MODULE_NAME = re.compile(r"'(yandex(?:\.\w+)*_pb2)'")


def prefix(root: Path) -> None:
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.pyi")]):
        text = IMPORT.sub(rf"from {PACKAGE}.\1 import ", path.read_text())
        path.write_text(MODULE_NAME.sub(rf"'{PACKAGE}.\1'", text))
    for directory in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


if __name__ == "__main__":
    prefix(Path(sys.argv[1]))
