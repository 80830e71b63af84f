"""The server with the SDK and the official stubs uninstalled: run by tests/test_package.py;
prints `ok` when a file goes in over gRPC and comes back out of its download link."""

import urllib.request

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc

from files_api.testing import FilesApiServer

with FilesApiServer() as server, grpc.insecure_channel(server.grpc_target) as channel:
    stub = file_service_pb2_grpc.FileServiceStub(channel)
    file = stub.Create(fs.CreateFileRequest(folder_id="f", content=b"alone"))
    url = stub.GetUrl(fs.GetFileUrlRequest(file_id=file.id)).url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"alone"
print("ok")
