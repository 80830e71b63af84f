"""A user's own test on the official `yandexcloud` stubs and the `files_api` fixture; run by
tests/test_package.py with pytest in a fresh environment."""

import grpc
import pytest
from google.protobuf import field_mask_pb2
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from files_api.testing import FilesApiServer


def test_create_update_get_delete(files_api: FilesApiServer) -> None:
    with grpc.insecure_channel(files_api.grpc_target) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        file = stub.Create(fs.CreateFileRequest(folder_id="team", name="a", content=b"hi"))
        stub.Update(
            fs.UpdateFileRequest(
                file_id=file.id,
                name="b",
                labels={"stage": "two"},
                update_mask=field_mask_pb2.FieldMask(paths=["name", "labels"]),
            )
        )
        got = stub.Get(fs.GetFileRequest(file_id=file.id))
        assert (got.name, dict(got.labels)) == ("b", {"stage": "two"})
        stub.Delete(fs.DeleteFileRequest(file_id=file.id))
        assert list(stub.List(fs.ListFilesRequest(folder_id="team")).files) == []


@pytest.mark.parametrize("run", [1, 2])  # whichever runs second finds the other's file gone
def test_each_test_starts_with_no_files(files_api: FilesApiServer, run: int) -> None:
    with grpc.insecure_channel(files_api.grpc_target) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        assert list(stub.List(fs.ListFilesRequest(folder_id="team")).files) == []
        stub.Create(fs.CreateFileRequest(folder_id="team", content=b"left behind"))
