"""The AI Studio SDK with an API key (`auth=APIKeyAuth(key)`), against a server with --auth-keys.

Usage: ai_studio_auth.py HOST:PORT FOLDER_ID KEY OTHER_FOLDER_ID. Prints JSON of what it saw:
the key's own folder works end to end; another folder and a wrong key fail with their codes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
from yandex_ai_studio_sdk import AsyncAIStudio
from yandex_ai_studio_sdk.auth import APIKeyAuth


def sdk(address: str, folder: str, key: str) -> AsyncAIStudio:
    return AsyncAIStudio(
        folder_id=folder,
        endpoint=None,
        service_map={"ai-files": address},
        auth=APIKeyAuth(key),
        verify=False,
    )


async def code_of(call: Any) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return e.code().name
    return "OK"


async def main(address: str, folder: str, key: str, other: str) -> dict[str, Any]:
    mine = sdk(address, folder, key)
    file = await mine.files.upload_bytes(b"keyed\n", name="k.txt")
    await file.update(description="by key")
    listed = [f.id async for f in mine.files.list()]
    return {
        "created_by": file.created_by,
        "updated_by": file.updated_by,
        "description": file.description,
        "listed": listed,
        "id": file.id,
        "download": (await file.download_as_bytes()).decode(),
        "other_folder_upload": await code_of(sdk(address, other, key).files.upload_bytes(b"x")),
        "wrong_key_get": await code_of(sdk(address, folder, "not-a-key").files.get(file.id)),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
