"""Our stubs and the official `yandexcloud` ones in one process: `coexist.py ours|official`
imports the one named first. Run by tests/test_package.py in a fresh environment that holds
both; prints `ok` when every check holds."""

import importlib
import sys

import grpc

NAMES = ("common.common_pb2", "files.v1.file_pb2", "files.v1.file_service_pb2")
OURS = [f"files_api_stubs.yandex.cloud.ai.{name}" for name in NAMES]
OFFICIAL = [f"yandex.cloud.ai.{name}" for name in NAMES]

first, second = (OURS, OFFICIAL) if sys.argv[1] == "ours" else (OFFICIAL, OURS)
for name in [*first, *second]:
    importlib.import_module(name)
ours = sys.modules[OURS[2]]
official = sys.modules[OFFICIAL[2]]
# One file, registered twice with the same bytes: protobuf's pool holds it once.
assert ours.DESCRIPTOR.serialized_pb == official.DESCRIPTOR.serialized_pb

from yandex.cloud.ai.files.v1 import file_service_pb2_grpc  # noqa: E402

from files_api.testing import FilesApiServer  # noqa: E402  (after the imports under test)

with FilesApiServer() as server, grpc.insecure_channel(server.grpc_target) as channel:
    stub = file_service_pb2_grpc.FileServiceStub(channel)
    created = stub.Create(
        official.CreateFileRequest(folder_id="f", name="a.txt", content=b"x", labels={"k": "v"})
    )
    got = stub.Get(official.GetFileRequest(file_id=created.id))
    assert (got.name, dict(got.labels)) == ("a.txt", {"k": "v"}), got
    assert sys.modules[OURS[1]].File.FromString(got.SerializeToString()) == got
print("ok")
