"""One file seen through all three faces: the official `yandexcloud` stubs (gRPC), the AI Studio SDK
(gRPC) and the PDS SDK (HTTP), and what each saw, as JSON.

Usage: pds_cross.py GRPC_ADDRESS HTTP_ADDRESS FOLDER_ID. Run by test_pds_cross.py with
.venv-clients' Python; the test decides what is right. A PDS drive is a folder; Yandex's label
map and PDS's label list are separate fields, so neither face's update touches the other's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from typing import Any

import grpc
from alibabacloud_pds20220301 import models
from google.protobuf import field_mask_pb2
from pds_sdk import client, direct_loopback, fetch, get, upload
from yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from yandex.cloud.ai.files.v1.file_service_pb2_grpc import FileServiceStub
from yandex_ai_studio_sdk import AsyncAIStudio
from yandex_ai_studio_sdk.auth import NoAuth

FROM_YANDEX = b"made by the official stubs\n" * 20
FROM_PDS = b"id,name\n1,pds\n" * 30


def studio_json(file: Any) -> dict[str, Any]:
    # The AI Studio SDK reports an empty string field as None.
    return {
        "name": file.name,
        "description": file.description,
        "mime_type": file.mime_type,
        "labels": file.labels,
    }


def stub_json(file: Any) -> dict[str, Any]:
    return {
        "id": file.id,
        "name": file.name,
        "description": file.description,
        "mime_type": file.mime_type,
        "labels": dict(file.labels),
    }


async def main(grpc_address: str, http_address: str, folder: str) -> dict[str, Any]:
    pds = client(http_address)
    studio = AsyncAIStudio(
        folder_id=folder,
        endpoint=None,
        service_map={"ai-files": grpc_address},
        auth=NoAuth(),
        verify=False,
    )
    report: dict[str, Any] = {}
    with grpc.insecure_channel(grpc_address) as channel:
        stub = FileServiceStub(channel)

        # Made by the stubs, changed through PDS, read back by the AI Studio SDK.
        made = stub.Create(
            fs.CreateFileRequest(
                folder_id=folder,
                name="from-yandex.txt",
                description="by yandex",
                mime_type="text/plain",
                content=FROM_YANDEX,
                labels={"env": "dev"},
            ),
            timeout=10,
        )
        pds_seen = get(pds, folder, made.id)
        pds_updated = pds.update_file(
            models.UpdateFileRequest(
                drive_id=folder,
                file_id=made.id,
                name="renamed-by-pds.txt",
                labels=["pds", "label"],
                starred=True,
            )
        ).body.to_map()
        link = pds.get_download_url(
            models.GetDownloadUrlRequest(drive_id=folder, file_id=made.id)
        ).body.url
        seen = await studio.files.get(made.id)
        report["yandex first"] = {
            "created": stub_json(made),
            "sent_sha1": hashlib.sha1(FROM_YANDEX).hexdigest().upper(),
            "sent_hex": FROM_YANDEX.hex(),
            "pds_get": pds_seen,
            "pds_update": pds_updated,
            "pds_download": fetch(link),
            "studio": studio_json(seen),
            "studio_download_hex": (await seen.download_as_bytes()).hex(),
        }

        # Made through PDS, changed by the stubs, read back by the AI Studio SDK and PDS.
        made_by_pds = upload(pds, folder, "from-pds.csv", FROM_PDS, content_type="text/csv")
        file_id = made_by_pds["file"]["file_id"]
        pds.update_file(
            models.UpdateFileRequest(drive_id=folder, file_id=file_id, labels=["a", "b"])
        )
        before_change = stub_json(stub.Get(fs.GetFileRequest(file_id=file_id), timeout=10))
        changed = stub.Update(
            fs.UpdateFileRequest(
                file_id=file_id,
                update_mask=field_mask_pb2.FieldMask(paths=["description", "labels"]),
                description="changed by yandex",
                labels={"team": "core"},
            ),
            timeout=10,
        )
        seen = await studio.files.get(file_id)
        report["pds first"] = {
            "created": made_by_pds["file"],
            "sent_hex": FROM_PDS.hex(),
            "stub_get": before_change,
            "stub_update": stub_json(changed),
            "studio": studio_json(seen),
            "studio_download_hex": (await seen.download_as_bytes()).hex(),
            "pds_get": get(pds, folder, file_id),
        }

        stub_ids = stub.List(fs.ListFilesRequest(folder_id=folder, page_size=100), timeout=10)
        listed = pds.list_file(
            models.ListFileRequest(drive_id=folder, parent_file_id="root", limit=100)
        ).body
        report["listed"] = {
            "stubs": sorted(f.id for f in stub_ids.files),
            "pds": sorted(f.file_id for f in listed.items or []),
        }
    return report


if __name__ == "__main__":
    direct_loopback()
    print(json.dumps(asyncio.run(main(*sys.argv[1:4])), indent=1, ensure_ascii=False))
