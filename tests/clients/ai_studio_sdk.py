"""Drives a running server with the AI Studio SDK (`yandex-ai-studio-sdk`) and prints what it saw.

Usage: ai_studio_sdk.py HOST:PORT FOLDER_ID [CA_FILE]. With CA_FILE the SDK talks TLS and trusts
that CA, for gRPC and for the download links alike; without it, plaintext. Run by
test_ai_studio_sdk.py with .venv-clients' Python; the test decides what is right.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from yandex_ai_studio_sdk import AsyncAIStudio
from yandex_ai_studio_sdk.auth import NoAuth

TEXT = "Привет, files!\n".encode() * 100
BLOB = bytes(range(256)) * 40
JSON = b'{"a": [1, 2, 3]}\n'
PAGE_SIZE = 3
LIST_TIMEOUT_SECONDS = 20
RUNAWAY = 50
EPOCH = datetime.datetime(1970, 1, 1)
MICROSECOND = datetime.timedelta(microseconds=1)


class CountCalls(grpc.aio.UnaryUnaryClientInterceptor):
    """Counts the RPCs the SDK makes, by method name."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method
        self.calls[method.decode() if isinstance(method, bytes) else method] += 1
        return await continuation(details, request)


def file_json(file: Any) -> dict[str, Any]:
    policy = file.expiration_config.expiration_policy
    return {
        "id": file.id,
        "name": file.name,
        "description": file.description,
        "mime_type": file.mime_type,
        "labels": file.labels,
        "ttl_days": file.expiration_config.ttl_days,
        "expiration_policy": policy.name if policy is not None else None,
        # The SDK turns timestamps into naive UTC datetimes, to the microsecond.
        "created_at_us": (file.created_at - EPOCH) // MICROSECOND,
        "updated_at_us": (file.updated_at - EPOCH) // MICROSECOND,
        "expires_at_us": (file.expires_at - EPOCH) // MICROSECOND,
    }


async def walk_list(sdk: AsyncAIStudio) -> dict[str, Any]:
    """files.list() to its own end, or how it failed to get there."""
    ids: list[str] = []

    async def walk() -> None:
        async for file in sdk.files.list(page_size=PAGE_SIZE):
            ids.append(file.id)
            if len(ids) > RUNAWAY:
                return

    try:
        await asyncio.wait_for(walk(), LIST_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"ids": ids, "ended": "timed out"}
    return {"ids": ids, "ended": "runaway" if len(ids) > RUNAWAY else "naturally"}


async def main(address: str, folder_id: str, ca_file: str | None) -> None:
    counter = CountCalls()
    sdk = AsyncAIStudio(
        folder_id=folder_id,
        endpoint=None,
        service_map={"ai-files": address},
        auth=NoAuth(),
        verify=ca_file if ca_file else False,
        interceptors=[counter],
    )
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        text_path = Path(tmp, "notes.txt")
        text_path.write_bytes(TEXT)
        blob_path = Path(tmp, "blob.bin")
        blob_path.write_bytes(BLOB)
        uploads = {
            "path": (
                await sdk.files.upload(
                    text_path, name="notes.txt", description="from a path", labels={"src": "path"}
                ),
                TEXT,
            ),
            "path with expiration": (
                await sdk.files.upload(blob_path, ttl_days=3, expiration_policy="static"),
                BLOB,
            ),
            "bytes": (
                await sdk.files.upload_bytes(
                    BLOB, name="blob.bin", mime_type="application/x-sdk-blob"
                ),
                BLOB,
            ),
            "bytes with expiration": (
                await sdk.files.upload_bytes(
                    JSON, name="data.json", ttl_days=10, expiration_policy="since_last_active"
                ),
                JSON,
            ),
        }
    report["uploads"] = {
        label: {
            **file_json(file),
            "sent_hex": content.hex(),
            "downloaded_hex": (await file.download_as_bytes()).hex(),
        }
        for label, (file, content) in uploads.items()
    }

    file = uploads["path"][0]
    report["url"] = await file.get_url()
    report["updates"] = []
    for change in (
        {"name": "renamed.txt"},
        {"description": "changed description"},
        {"labels": {"src": "sdk", "stage": "two"}},
        {"ttl_days": 20},
        {"expiration_policy": "static"},
    ):
        returned = await file.update(**change)
        report["updates"].append(
            {
                "change": change,
                "returned": file_json(returned),
                "stored": file_json(await sdk.files.get(file.id)),
            }
        )

    more = [await sdk.files.upload_bytes(b"more %d" % i, name=f"more-{i}.txt") for i in range(3)]
    report["uploaded_ids"] = [f.id for f, _ in uploads.values()] + [f.id for f in more]
    before = counter.calls.copy()
    report["list"] = await walk_list(sdk)
    report["list_calls"] = (counter.calls - before)["/yandex.cloud.ai.files.v1.FileService/List"]

    await file.delete()
    try:
        await sdk.files.get(file.id)
    except grpc.aio.AioRpcError as e:
        report["get_after_delete"] = e.code().name
    else:
        report["get_after_delete"] = "OK"
    report["list_after_delete"] = await walk_list(sdk)
    report["deleted_id"] = file.id
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
