"""Prints, as JSON, the official `yandexcloud` stubs' description of the Files API protos.

Run by test_contract.py with .venv-clients' Python; `describe` is imported from this script's
own directory, which Python puts first on sys.path.
"""

from __future__ import annotations

import json
import sys

from describe import describe_extension, describe_file
from yandex.cloud import validation_pb2
from yandex.cloud.ai.common import common_pb2
from yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2


def main() -> None:
    files = {
        module.DESCRIPTOR.name: describe_file(module.DESCRIPTOR)
        for module in (common_pb2, file_pb2, file_service_pb2)
    }
    required = describe_extension(validation_pb2.DESCRIPTOR.extensions_by_name["required"])
    json.dump({"files": files, "required": required}, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
