"""Our protos describe the same API as the official `yandexcloud` stubs, down to every option.

The official side is described in its own environment (tests/clients/official_descriptors.py);
both sides go through the same `describe` module, so a difference is a difference in the protos.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from files_api_stubs.yandex.cloud import validation_pb2
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2

from tests.clients.describe import describe_extension, describe_file, differences
from tests.support import run_client

PROTO_FILES = [m.DESCRIPTOR.name for m in (common_pb2, file_pb2, file_service_pb2)]
FILE_SERVICE_PROTO = file_service_pb2.DESCRIPTOR.name


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    described: dict[str, Any] = json.loads(run_client("official_descriptors.py", timeout=60).stdout)
    return described


def ours() -> dict[str, Any]:
    files = {
        module.DESCRIPTOR.name: describe_file(module.DESCRIPTOR)
        for module in (common_pb2, file_pb2, file_service_pb2)
    }
    required = describe_extension(validation_pb2.DESCRIPTOR.extensions_by_name["required"])
    # Through JSON as the official side is, so both are made of the same plain types.
    described: dict[str, Any] = json.loads(json.dumps({"files": files, "required": required}))
    return described


def assert_same(ours: object, official: object, what: str) -> None:
    found = differences(ours, official, what)
    if found:
        pytest.fail(
            f"{len(found)} difference(s) from the official API:\n" + "\n".join(found), pytrace=False
        )


@pytest.mark.parametrize("proto_file", PROTO_FILES)
def test_proto_file_matches_the_official_one(official: dict[str, Any], proto_file: str) -> None:
    assert_same(ours()["files"][proto_file], official["files"][proto_file], proto_file)


def test_required_option_is_the_official_extension(official: dict[str, Any]) -> None:
    assert_same(ours()["required"], official["required"], "yandex.cloud.required")
    assert official["required"]["number"] == 101501


def test_the_description_holds_what_clients_depend_on(official: dict[str, Any]) -> None:
    """Guards `describe` itself: an empty or shallow description would compare equal too."""
    service = official["files"][FILE_SERVICE_PROTO]
    create = service["services"]["yandex.cloud.ai.files.v1.FileService"]["methods"]["Create"]
    assert create["options"] == '[google.api.http] { post: "/files/v1/files" body: "*" }'
    update = service["messages"]["yandex.cloud.ai.files.v1.UpdateFileRequest"]
    assert update["fields"]["file_id"]["options"] == "[yandex.cloud.required]: true"
    assert update["fields"]["labels"]["type_name"] == (
        ".yandex.cloud.ai.files.v1.UpdateFileRequest.LabelsEntry"
    )
    assert service["messages"]["yandex.cloud.ai.files.v1.UpdateFileRequest.LabelsEntry"][
        "map_entry"
    ]


def test_comparison_reports_each_alteration(official: dict[str, Any]) -> None:
    altered = copy.deepcopy(official["files"][FILE_SERVICE_PROTO])
    messages = altered["messages"]
    methods = altered["services"]["yandex.cloud.ai.files.v1.FileService"]["methods"]
    messages["yandex.cloud.ai.files.v1.GetFileRequest"]["fields"]["file_id"]["number"] = 2
    methods["GetUrl"]["options"] = ""
    del messages["yandex.cloud.ai.files.v1.DeleteFileResponse"]
    messages["yandex.cloud.ai.files.v1.ListFilesRequest"]["fields"]["page_size"]["label"] = (
        "LABEL_REPEATED"
    )

    found = differences(altered, official["files"][FILE_SERVICE_PROTO], "f")

    prefix_messages = "f > messages > yandex.cloud.ai.files.v1."
    assert sorted(line.split(":")[0] for line in found) == sorted(
        [
            f"{prefix_messages}DeleteFileResponse",
            f"{prefix_messages}GetFileRequest > fields > file_id > number",
            f"{prefix_messages}ListFilesRequest > fields > page_size > label",
            "f > services > yandex.cloud.ai.files.v1.FileService > methods > GetUrl > options",
        ]
    )
    assert any("ours 2, official 1" in line for line in found)
    assert any("missing from ours" in line for line in found)
