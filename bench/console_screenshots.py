"""`python -m bench.console_screenshots`: the README's pictures of the web console, made anew.

Starts a server on a memory: store, fills one folder with a few files (one edited, so its
History has an update), and has Debian's chromium photograph the folder and file pages at
1280 and 375 px wide into docs/console-{folder,file}-{1280,375}.png. Needs the dev extra
(Playwright) and `apt-get install chromium`; nothing is downloaded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from playwright.sync_api import expect, sync_playwright

from files_api.testing import FilesApiServer

DOCS = Path(__file__).resolve().parent.parent / "docs"
FOLDER = "b1gexamplefolder"
FILES = [
    ("quarterly-report.pdf", b"%PDF-1.4\n" + b"0" * 48_000, {"team": "finance", "year": "2026"}),
    ("training-set.jsonl", b'{"text": "hello"}\n' * 3000, {"team.name": "ml", "stage": "raw"}),
    ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 9000, {}),
    ("notes.txt", b"meeting notes\n", {"draft": "yes"}),
]


def _fill(target: str) -> str:
    """The example folder's files; returns the id of the one the file page shows."""
    with grpc.insecure_channel(target) as channel:
        stub = file_service_pb2_grpc.FileServiceStub(channel)
        shown = ""
        for name, content, labels in FILES:
            created = stub.Create(
                fs.CreateFileRequest(
                    folder_id=FOLDER,
                    name=name,
                    content=content,
                    labels=labels,
                    description="Examples for the sentiment model",
                )
            )
            shown = shown or created.id
        stub.Update(
            fs.UpdateFileRequest(
                file_id=shown,
                update_mask=field_mask_pb2.FieldMask(
                    paths=["expiration_config.expiration_policy", "expiration_config.ttl_days"]
                ),
                expiration_config=common_pb2.ExpirationConfig(
                    expiration_policy=common_pb2.ExpirationConfig.STATIC, ttl_days=30
                ),
            )
        )
    return shown


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args(argv)
    with FilesApiServer() as server, sync_playwright() as playwright:
        file_id = _fill(server.grpc_target)
        browser = playwright.chromium.launch(executable_path=args.chromium)
        for width in (1280, 375):
            context = browser.new_context(viewport={"width": width, "height": 800})
            page = context.new_page()
            page.goto(f"{server.http_url}/console/folders/{FOLDER}")
            expect(page.locator("table.files tbody tr")).to_have_count(len(FILES))
            expect(page.locator("table.files .pending")).to_have_count(0)  # sizes read
            page.screenshot(path=args.out / f"console-folder-{width}.png", full_page=True)
            page.goto(f"{server.http_url}/console/files/{file_id}")
            expect(page.locator(".history tbody tr")).to_have_count(2)
            page.screenshot(path=args.out / f"console-file-{width}.png", full_page=True)
            context.close()
        browser.close()
    print(f"wrote docs/console-{{folder,file}}-{{1280,375}}.png into {args.out}")


if __name__ == "__main__":
    main()
