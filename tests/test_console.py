"""The web console (files_api/console/) in a real browser: Playwright driving Debian's chromium
against a real server on SQLite, with every effect checked over gRPC and in the audit history.

Playwright's sync API runs in plain (sync) tests: it cannot run inside a running event loop.
The servers are `FilesApiServer`s, each on a loop of its own in a background thread, so the
tests' blocking gRPC stubs and the browser reach them as any client would. One browser serves
the module and each test opens a page of its own; nothing sleeps, Playwright's expectations
wait.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2_grpc
from google.protobuf import field_mask_pb2
from playwright.sync_api import (
    Browser,
    Dialog,
    FilePayload,
    Page,
    Request,
    expect,
    sync_playwright,
)
from prometheus_client import REGISTRY

from bench.seed import seed
from files_api.auth import add_key
from files_api.testing import FilesApiServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own browser download is never used
BIG = "b1gbigfolder"
BIG_FILES = 100_000
MARKUP = "<img src=x onerror=alert(1)>"
Policy = common_pb2.ExpirationConfig.ExpirationPolicy


class Console:
    """A server with its console, a blocking gRPC stub to check what the console did, and the
    REST face for what gRPC does not show (the audit history)."""

    def __init__(
        self, server: FilesApiServer, key: str | None = None, other_key: str | None = None
    ) -> None:
        self.server = server
        self.other_key = other_key
        self.url = server.http_url
        self.channel = grpc.insecure_channel(server.grpc_target)
        self.stub = file_service_pb2_grpc.FileServiceStub(self.channel)
        self.key = key
        self.metadata: tuple[tuple[str, str | bytes], ...] = (
            (("authorization", f"Api-Key {key}"),) if key else ()
        )

    def create(
        self, folder_id: str, name: str, content: bytes = b"content\n", **fields: Any
    ) -> file_pb2.File:
        request = fs.CreateFileRequest(folder_id=folder_id, name=name, content=content, **fields)
        return self.stub.Create(request, metadata=self.metadata)

    def get(self, file_id: str) -> file_pb2.File:
        return self.stub.Get(fs.GetFileRequest(file_id=file_id), metadata=self.metadata)

    def files(self, folder_id: str) -> list[file_pb2.File]:
        reply = self.stub.List(
            fs.ListFilesRequest(folder_id=folder_id, page_size=1000), metadata=self.metadata
        )
        return list(reply.files)

    def content(self, file_id: str) -> bytes:
        url = self.stub.GetUrl(fs.GetFileUrlRequest(file_id=file_id), metadata=self.metadata).url
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
        return body

    def history(self, file_id: str) -> list[dict[str, Any]]:
        """The file's audit records, newest first, from the REST extension."""
        headers = {"Authorization": f"Api-Key {self.key}"} if self.key else {}
        request = urllib.request.Request(
            f"{self.url}/files/v1/files/{file_id}/audit", headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            records: list[dict[str, Any]] = json.load(response)["records"]
        return records

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """One server on SQLite for the module; its store holds a folder of 100,000 files, seeded
    straight into the database before the server starts (the server's way takes minutes)."""
    path = tmp_path_factory.mktemp("console") / "files.db"
    seed(path, BIG_FILES, BIG)
    # metrics_listen: the series are kept (in this process's registry); nothing listens.
    with FilesApiServer(f"sqlite:///{path}", metrics_listen="127.0.0.1:0") as server:
        opened = Console(server)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A server with --auth-keys: alice may use the folder `team` only, bob `secret` only."""
    folder = tmp_path_factory.mktemp("keyed")
    keys = folder / "keys.toml"
    alice = add_key(keys, "alice", ["team"])
    bob = add_key(keys, "bob", ["secret"])
    with FilesApiServer(f"sqlite:///{folder / 'files.db'}", auth_keys=str(keys)) as server:
        opened = Console(server, alice, bob)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own cookies and storage); any dialog it opens fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []

    def dialog_opened(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", dialog_opened)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert dialogs == [], "the page opened a JavaScript dialog"
    assert errors == [], "the page threw"


def rows(page: Page) -> Any:
    return page.locator("table.files tbody tr")


def open_file(page: Page, console: Console, file_id: str) -> None:
    page.goto(f"{console.url}/console/files/{file_id}")
    expect(page.get_by_role("button", name="Save")).to_be_visible()


def save(page: Page) -> None:
    page.get_by_role("button", name="Save").click()


# --- serving -------------------------------------------------------------------------------


@dataclasses.dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def getheader(self, name: str) -> str | None:
        return self.headers.get(name)


def raw_get(console: Console, path: str, headers: dict[str, str] | None = None) -> Answer:
    """GET with the path sent exactly as written (urllib would tidy `..` and escapes)."""
    host, port = console.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def assert_console_headers(response: Answer) -> None:
    policy = response.getheader("Content-Security-Policy") or ""
    assert policy.startswith("default-src 'self';")
    for name, value in SECURITY_HEADERS.items():
        assert response.getheader(name) == value


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/", "text/html; charset=utf-8"),
        ("/console/folders/b1g", "text/html; charset=utf-8"),
        ("/console/files/abc/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/mask.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/favicon.svg", "image/svg+xml"),
    ],
)
def test_console_files_carry_their_type_and_the_security_headers(
    console: Console, path: str, content_type: str
) -> None:
    response = raw_get(console, path)
    assert response.status == 200
    assert response.getheader("Content-Type") == content_type
    assert response.getheader("Cache-Control") == "no-cache"
    assert_console_headers(response)
    again = raw_get(console, path, {"If-None-Match": response.getheader("ETag") or "none"})
    assert (again.status, again.body) == (304, b"")
    assert_console_headers(again)


def test_console_redirects_to_its_slash_and_refuses_writes(console: Console) -> None:
    response = raw_get(console, "/console")
    assert (response.status, response.getheader("Location")) == (301, "/console/")
    assert_console_headers(response)
    request = urllib.request.Request(f"{console.url}/console/", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    refused.value.close()
    assert refused.value.code == 405
    assert refused.value.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path",
    [
        "/console/../http_api.py",
        "/console/..%2fhttp_api.py",
        "/console/..%2F..%2Fpyproject.toml",
        "/console/%2e%2e/%2e%2e/pyproject.toml",
        "/console/..%5c__init__.py",
        "/console/app.js/..%2f..%2fhttp_api.py",
        "/console/%2fetc%2fpasswd",
        "/console//etc/passwd",
        "/console/./app.js%00.py",
        "/console/console",
    ],
)
def test_no_path_under_console_escapes_its_folder(console: Console, path: str) -> None:
    """Only the console's own files, by exact name: anything else is the app (or not ours)."""
    index = raw_get(console, "/console/").body
    response = raw_get(console, path)
    assert response.status in (200, 400, 404)
    if response.status == 200:
        assert response.body == index
    assert b"import" not in response.body.replace(b'type="module"', b"")
    assert b"root:" not in response.body


def test_metrics_label_the_console_by_its_route_template(console: Console, page: Page) -> None:
    page.goto(f"{console.url}/console/folders/metrics-folder")
    expect(page.get_by_role("heading", level=1)).to_have_text("Folder metrics-folder")
    raw_get(console, "/console")
    routes = {
        sample.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "http_server_requests"
        for sample in family.samples
        if sample.labels.get("face") == "console"
    }
    assert routes == {"/console", "/console/{path}"}


# --- browsing ------------------------------------------------------------------------------


def test_open_a_folder_and_walk_its_pages(console: Console, page: Page) -> None:
    names = [f"page-{n:03}.txt" for n in range(110)]
    for name in names:  # created in this order: the console lists them newest first
        console.create("paged", name)
    newest_first = names[::-1]
    page.goto(f"{console.url}/console/")
    page.get_by_role("textbox", name="Folder").fill("paged")
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(f"{console.url}/console/folders/paged")
    expect(rows(page)).to_have_count(50)
    expect(rows(page).first.get_by_role("link")).to_have_text(newest_first[0])
    previous = page.get_by_role("button", name="Previous page")
    following = page.get_by_role("button", name="Next page")
    expect(previous).to_be_disabled()
    following.click()
    expect(rows(page).first.get_by_role("link")).to_have_text(newest_first[50])
    expect(rows(page)).to_have_count(50)
    following.click()
    expect(rows(page).first.get_by_role("link")).to_have_text(newest_first[100])
    expect(rows(page)).to_have_count(10)
    # The walk's end is an empty page: Next is not offered for it.
    expect(following).to_be_disabled()
    expect(previous).to_be_enabled()
    previous.click()
    expect(rows(page).first.get_by_role("link")).to_have_text(newest_first[50])
    expect(following).to_be_enabled()
    # A row shows the file's facts, and its link opens the file's page, reload and all.
    first = rows(page).first
    expect(first).to_contain_text("text/plain")
    expect(first).to_contain_text("8 bytes")
    first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(newest_first[50])
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(newest_first[50])


def test_a_folder_of_exactly_one_page_offers_no_next_page(console: Console, page: Page) -> None:
    for n in range(50):
        console.create("fifty", f"f{n}")
    page.goto(f"{console.url}/console/folders/fifty")
    expect(rows(page)).to_have_count(50)
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()


def test_an_empty_folder_says_so(console: Console, page: Page) -> None:
    page.goto(f"{console.url}/console/folders/nothing-here")
    expect(page.get_by_text("This folder has no files yet.")).to_be_visible()
    expect(rows(page)).to_have_count(0)


# The milliseconds since the navigation began, read in the page on the first animation frame
# that shows 50 rows: what the person sees, without the test's own round trips to the browser.
FIFTY_ROWS_AT = """() => document.querySelectorAll("table.files tbody tr").length === 50
    && performance.now()"""


def test_the_first_page_of_a_100000_file_folder_shows_within_a_second(
    console: Console, page: Page
) -> None:
    page.goto(f"{console.url}/console/folders/{BIG}", wait_until="commit")
    shown = page.wait_for_function(FIFTY_ROWS_AT, polling="raf", timeout=5000).json_value()
    assert shown < 1000, f"the first 50 rows took {shown:.0f} ms"
    expect(rows(page)).to_have_count(50)
    expect(rows(page).first.get_by_role("link")).to_have_text("seed-0.txt")
    expect(page.get_by_role("button", name="Next page")).to_be_enabled()


# --- uploading -----------------------------------------------------------------------------


def test_upload_several_files_each_with_its_progress(console: Console, page: Page) -> None:
    sent = {
        "notes.txt": b"first file\n",
        "data.bin": bytes(range(256)) * 4096,  # 1 MiB: progress events on the way
        "third.csv": b"a,b\n1,2\n",
    }
    page.goto(f"{console.url}/console/folders/uploads")
    expect(page.get_by_text("This folder has no files yet.")).to_be_visible()
    page.get_by_label("Upload files").set_input_files(
        [
            FilePayload(name=name, mimeType="application/octet-stream", buffer=content)
            for name, content in [*sent.items(), ("empty.txt", b"")]
        ]
    )
    # A file the API refuses (no content) says why in its own row; the others go on.
    expect(page.get_by_role("status")).to_have_text("Uploaded 3 of 4 files.")
    expect(page.locator(".uploads li").last).to_contain_text("failed: ")
    expect(page.get_by_role("progressbar")).to_have_count(4)
    for name in sent:
        bar = page.get_by_role("progressbar", name=f"Uploading {name}")
        expect(bar).to_have_js_property("position", 1)  # value == max
    expect(rows(page)).to_have_count(3)
    stored = {file.name: file for file in console.files("uploads")}
    assert set(stored) == set(sent)
    for name, content in sent.items():
        assert console.content(stored[name].id) == content


def test_files_dropped_onto_the_table_upload(console: Console, page: Page) -> None:
    console.create("dropped", "already-here.txt")
    page.goto(f"{console.url}/console/folders/dropped")
    expect(rows(page)).to_have_count(1)
    # What a drop from the desktop delivers: a DataTransfer holding the files.
    page.locator("section.listing").evaluate(
        """(listing) => {
            const data = new DataTransfer();
            data.items.add(new File(["dropped bytes"], "dropped.txt", {type: "text/plain"}));
            listing.dispatchEvent(new DragEvent("drop", {dataTransfer: data, cancelable: true}));
        }"""
    )
    expect(page.get_by_role("status")).to_have_text("Uploaded 1 of 1 file.")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first.get_by_role("link")).to_have_text("dropped.txt")
    (dropped,) = [file for file in console.files("dropped") if file.name == "dropped.txt"]
    assert console.content(dropped.id) == b"dropped bytes"


# --- editing -------------------------------------------------------------------------------


def key_box(page: Page, key: str) -> Any:
    """The Label key textbox holding `key` now (its value, not its initial attribute)."""
    boxes = page.get_by_role("textbox", name="Label key")
    for index in range(boxes.count()):
        if boxes.nth(index).input_value() == key:
            return boxes.nth(index)
    raise AssertionError(f"no label row with key {key!r}")


def remove_label(page: Page, key: str) -> None:
    key_box(page, key).locator("xpath=ancestor::div[@class='label-row']").get_by_role(
        "button", name="Remove label"
    ).click()


def add_label(page: Page, key: str, value: str) -> None:
    page.get_by_role("button", name="Add label").click()
    page.get_by_role("textbox", name="Label key").last.fill(key)
    page.get_by_role("textbox", name="Label value").last.fill(value)


def set_label(page: Page, key: str, value: str) -> None:
    key_box(page, key).locator("xpath=ancestor::div[@class='label-row']").get_by_role(
        "textbox", name="Label value"
    ).fill(value)


def summary(file: file_pb2.File) -> tuple[str, str, dict[str, str], str, int]:
    config = file.expiration_config
    return (
        file.name,
        file.description,
        dict(file.labels),
        Policy.Name(config.expiration_policy),
        config.ttl_days,
    )


# (what the person does, the mask paths the audit record must name, the file after it)
EDITS: list[tuple[Callable[[Page], object], list[str], tuple[Any, ...]]] = [
    (
        lambda p: p.get_by_role("textbox", name="Name").fill("renamed.txt"),
        ["name"],
        ("renamed.txt", "old", {"env": "dev", "team.name": "core"}, "SINCE_LAST_ACTIVE", 7),
    ),
    (
        lambda p: p.get_by_role("textbox", name="Description").fill("a new description"),
        ["description"],
        (
            "renamed.txt",
            "a new description",
            {"env": "dev", "team.name": "core"},
            "SINCE_LAST_ACTIVE",
            7,
        ),
    ),
    (
        lambda p: add_label(p, "new.key", "x"),
        ["labels.`new.key`"],
        (
            "renamed.txt",
            "a new description",
            {"env": "dev", "team.name": "core", "new.key": "x"},
            "SINCE_LAST_ACTIVE",
            7,
        ),
    ),
    (
        lambda p: set_label(p, "env", "prod"),
        ["labels.env"],
        (
            "renamed.txt",
            "a new description",
            {"env": "prod", "team.name": "core", "new.key": "x"},
            "SINCE_LAST_ACTIVE",
            7,
        ),
    ),
    (
        lambda p: remove_label(p, "team.name"),
        ["labels.`team.name`"],
        (
            "renamed.txt",
            "a new description",
            {"env": "prod", "new.key": "x"},
            "SINCE_LAST_ACTIVE",
            7,
        ),
    ),
    (
        lambda p: p.get_by_role("combobox", name="Expiration policy").select_option("Static"),
        ["expiration_config.expiration_policy"],
        ("renamed.txt", "a new description", {"env": "prod", "new.key": "x"}, "STATIC", 7),
    ),
    (
        lambda p: p.get_by_role("spinbutton", name="TTL days").fill("30"),
        ["expiration_config.ttl_days"],
        ("renamed.txt", "a new description", {"env": "prod", "new.key": "x"}, "STATIC", 30),
    ),
]


def sent_masks(page: Page) -> list[str]:
    """The updateMask of every PATCH the page sends from now on, as sent."""
    masks: list[str] = []

    def sent(request: Request) -> None:
        body = request.post_data_json if request.method == "PATCH" else None
        if body is not None:
            masks.append(body["updateMask"])

    page.on("request", sent)
    return masks


def json_mask(paths: list[str]) -> str:
    """Mask paths as proto3 JSON writes a FieldMask: field names in lowerCamel, map keys kept."""
    camel = [
        p if p.startswith("labels.") else re.sub(r"_([a-z])", lambda m: m[1].upper(), p)
        for p in paths
    ]
    return ",".join(camel)


def test_each_edit_saves_exactly_the_field_changed(console: Console, page: Page) -> None:
    """Every save's mask names what the person changed and nothing else: the PATCH the page
    sends, gRPC's view of the file after it, and the audit record (through the REST extension
    and the History section) all agree. (The audit lists the paths whose values changed, so
    only the request itself shows a mask naming more than that.)"""
    masks = sent_masks(page)
    created = console.create(
        "edits", "start.txt", description="old", labels={"env": "dev", "team.name": "core"}
    )
    open_file(page, console, created.id)
    history = page.locator(".history tbody tr")
    expect(history).to_have_count(1)
    for records, (edit, paths, after) in enumerate(EDITS, start=2):
        edit(page)
        save(page)
        expect(page.get_by_role("status")).to_have_text("Saved")
        assert masks[-1] == json_mask(paths)
        assert summary(console.get(created.id)) == after
        latest = console.history(created.id)[0]
        assert (latest["action"], latest["paths"]) == ("update", paths)
        expect(history).to_have_count(records)
        expect(history.first).to_contain_text(", ".join(paths))
    expect(page.get_by_role("heading", level=1)).to_have_text("renamed.txt")


def test_several_changes_in_one_save_are_one_update(console: Console, page: Page) -> None:
    created = console.create("edits", "several.txt", labels={"a": "1", "b": "2", "c": "3"})
    masks = sent_masks(page)
    open_file(page, console, created.id)
    page.get_by_role("textbox", name="Name").fill("both.txt")
    remove_label(page, "a")
    set_label(page, "b", "3")
    save(page)
    expect(page.get_by_role("status")).to_have_text("Saved")
    records = console.history(created.id)
    assert [r["action"] for r in records] == ["update", "create"]
    assert records[0]["paths"] == ["name", "labels.a", "labels.b"]
    assert masks == ["name,labels.a,labels.b"]  # not labels.c, which stayed as it was
    assert summary(console.get(created.id))[:3] == ("both.txt", "", {"b": "3", "c": "3"})


def test_a_save_with_nothing_changed_sends_nothing(console: Console, page: Page) -> None:
    created = console.create("edits", "same.txt", labels={"k": "v"})
    masks = sent_masks(page)
    open_file(page, console, created.id)
    # Typed and typed back: the same value is no change.
    page.get_by_role("textbox", name="Name").fill("other")
    page.get_by_role("textbox", name="Name").fill("same.txt")
    save(page)
    expect(page.get_by_role("status")).to_have_text("Nothing to save: no field was changed.")
    assert masks == []
    assert [r["action"] for r in console.history(created.id)] == ["create"]


def test_a_file_changed_meanwhile_is_not_overwritten(console: Console, page: Page) -> None:
    created = console.create("edits", "contested.txt", description="before")
    open_file(page, console, created.id)
    page.get_by_role("textbox", name="Name").fill("mine.txt")
    console.stub.Update(
        fs.UpdateFileRequest(
            file_id=created.id,
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            description="theirs",
        )
    )
    save(page)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("changed since the page loaded")
    assert summary(console.get(created.id))[:2] == ("contested.txt", "theirs")
    assert [r["action"] for r in console.history(created.id)] == ["update", "create"]
    alert.get_by_role("button", name="Reload").click()
    expect(page.get_by_role("textbox", name="Description")).to_have_value("theirs")
    expect(page.get_by_role("textbox", name="Name")).to_have_value("contested.txt")
    expect(page.get_by_role("alert")).to_have_count(0)
    # Saving now, on the new etag, goes through.
    page.get_by_role("textbox", name="Name").fill("mine.txt")
    save(page)
    expect(page.get_by_role("status")).to_have_text("Saved")
    assert summary(console.get(created.id))[:2] == ("mine.txt", "theirs")


@pytest.mark.parametrize(
    ("edit", "field", "description"),
    [
        (
            lambda p: p.get_by_role("textbox", name="Name").fill("n" * 1025),
            ("textbox", "Name"),
            "must be at most 1024 bytes of UTF-8",
        ),
        (
            lambda p: p.get_by_role("spinbutton", name="TTL days").fill("-1"),
            ("spinbutton", "TTL days"),
            "must be 1-3650 (0 for the default of 7), not -1",
        ),
        (
            lambda p: add_label(p, "Bad Key", "v"),
            ("textbox", "Label key"),
            "a key is 1-63 characters matching [a-z][-_./\\@0-9a-z]*",
        ),
        (
            lambda p: add_label(p, "fine", "NOT FINE"),
            ("textbox", "Label value"),
            "a value is at most 63 characters matching [-_./\\@0-9a-z]*",
        ),
    ],
    ids=["name too long", "negative ttl", "bad label key", "bad label value"],
)
def test_a_refused_value_is_marked_at_its_field(
    console: Console,
    page: Page,
    edit: Callable[[Page], None],
    field: tuple[str, str],
    description: str,
) -> None:
    created = console.create("edits", "valid.txt")
    open_file(page, console, created.id)
    edit(page)
    save(page)
    expect(page.get_by_role("alert")).to_contain_text("Not saved")
    role, name = field
    marked = page.get_by_role(role, name=name).last  # type: ignore[arg-type]
    expect(marked).to_have_attribute("aria-invalid", "true")
    expect(marked).to_have_accessible_description(description)
    assert summary(console.get(created.id)) == summary(created)
    assert [r["action"] for r in console.history(created.id)] == ["create"]


# --- deleting, downloading -----------------------------------------------------------------


def test_delete_asks_in_a_dialog(console: Console, page: Page) -> None:
    created = console.create("deletes", "doomed.txt")
    open_file(page, console, created.id)
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("doomed.txt")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert console.get(created.id).name == "doomed.txt"
    page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{console.url}/console/folders/deletes")
    expect(page.get_by_role("status")).to_have_text("Deleted doomed.txt.")
    with pytest.raises(grpc.RpcError) as gone:
        console.get(created.id)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_download_is_a_fresh_signed_link_to_the_content(console: Console, page: Page) -> None:
    created = console.create("downloads", "down.txt", content=b"the bytes\n")
    open_file(page, console, created.id)
    expect(page.locator("dl")).to_contain_text("10 bytes")
    link = page.get_by_role("link", name="Download", exact=True)
    expect(link).to_have_attribute("href", re.compile(r"/content\?expires=\d+&signature="))
    with page.expect_download() as downloading:
        link.click()
    path = downloading.value.path()
    assert path.read_bytes() == b"the bytes\n"
    assert downloading.value.suggested_filename == "down.txt"


# --- markup, layout, keyboard --------------------------------------------------------------


def test_names_that_are_markup_show_as_text(console: Console, page: Page) -> None:
    created = console.create("markup", MARKUP, description="<script>alert(2)</script>")
    page.goto(f"{console.url}/console/folders/markup")
    link = page.get_by_role("link", name=MARKUP)
    expect(link).to_have_text(MARKUP)
    link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(MARKUP)
    expect(page.get_by_role("textbox", name="Description")).to_have_value(
        "<script>alert(2)</script>"
    )
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_contain_text(MARKUP)
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert page.locator("main img, main script").count() == 0
    assert console.get(created.id).name == MARKUP
    # The `page` fixture fails the test if any dialog opened (alert(1) or alert(2)).


def test_at_375_px_nothing_scrolls_sideways(console: Console, browser: Browser) -> None:
    created = console.create(
        "narrow",
        "a-long-name-" * 12 + ".txt",
        description="d" * 300,
        labels={"a.long.label.key.for.wrapping": "and-a-long-label-value-that-must-wrap"},
    )
    context = browser.new_context(viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        for path in ("/console/", "/console/folders/narrow", f"/console/files/{created.id}"):
            page.goto(console.url + path)
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            if "folders" in path:
                expect(rows(page)).to_have_count(1)
            if "files" in path:
                expect(page.locator(".history tbody tr")).to_have_count(1)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide"
    finally:
        context.close()


def test_usable_by_keyboard_with_visible_focus(console: Console, page: Page) -> None:
    created = console.create("keys", "keyboard.txt")
    page.goto(f"{console.url}/console/")
    folder = page.get_by_role("textbox", name="Folder")
    expect(folder).to_be_focused()
    page.keyboard.type("keys")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Open")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    link = page.get_by_role("link", name="keyboard.txt")
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("keyboard.txt")
    page.get_by_role("textbox", name="Name").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("typed.txt")
    page.keyboard.press("Enter")  # submits the form
    expect(page.get_by_role("status")).to_have_text("Saved")
    assert console.get(created.id).name == "typed.txt"


# --- keys ----------------------------------------------------------------------------------


def test_sign_in_with_a_wrong_key_then_a_good_one(keyed: Console, page: Page) -> None:
    keyed.create("team", "team-file.txt")
    page.goto(f"{keyed.url}/console/folders/team")
    key = page.get_by_label("API key")
    expect(key).to_have_attribute("type", "password")
    expect(rows(page)).to_have_count(0)
    key.fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The key was not accepted")
    assert page.evaluate("sessionStorage.length") == 0
    page.get_by_label("API key").fill(keyed.key or "")
    page.get_by_role("button", name="Sign in").click()
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first.get_by_role("link")).to_have_text("team-file.txt")
    assert page.evaluate("localStorage.length") == 0  # the key lives in sessionStorage only
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_folder_the_key_may_not_use_shows_the_apis_answer(keyed: Console, page: Page) -> None:
    hidden = keyed.stub.Create(
        fs.CreateFileRequest(folder_id="secret", name="hidden.txt", content=b"x"),
        metadata=(("authorization", f"Api-Key {keyed.other_key}"),),
    )
    page.goto(f"{keyed.url}/console/")
    page.get_by_label("API key").fill(keyed.key or "")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("textbox", name="Folder").fill("secret")
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("alert")).to_have_text("alice may not use folder 'secret'")
    expect(page.get_by_role("table")).to_be_hidden()
    expect(page.get_by_label("Upload files")).to_be_hidden()
    page.goto(f"{keyed.url}/console/files/{hidden.id}")
    expect(page.get_by_role("alert")).to_have_text(f"file {hidden.id!r} not found")
    expect(page.get_by_text("hidden.txt")).to_have_count(0)
