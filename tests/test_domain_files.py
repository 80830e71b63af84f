"""Create, Get, Delete, List paging and expiry, on every store backend."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import hypothesis
import puremagic
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from hypothesis import strategies as st

from files_api.domain.limits import MAX_CONTENT_BYTES, NS_PER_DAY
from files_api.errors import InvalidArgument, NotFound
from files_api.mime import _may_have_magic

if TYPE_CHECKING:
    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.domain import Files
    from tests.conftest import Clock

STATIC = common_pb2.ExpirationConfig.STATIC
SINCE = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE


async def create(files: Files, folder_id: str = "f1", **fields: object) -> file_pb2.File:
    fields.setdefault("content", b"some text")
    return await files.create(fs.CreateFileRequest(folder_id=folder_id, **fields))  # type: ignore[arg-type]


async def test_create_fills_the_server_side_fields(files: Files, clock: Clock) -> None:
    file = await create(files, name="a.txt", labels={"k": "v"}, mime_type="text/markdown")
    assert re.fullmatch(r"[a-z][a-z0-9]{19}", file.id)
    assert file.folder_id == "f1"
    assert file.mime_type == "text/markdown"
    assert file.created_by == file.updated_by == "anonymous"
    assert file.created_at.ToNanoseconds() == file.updated_at.ToNanoseconds() == clock.now
    assert file.expiration_config.expiration_policy == SINCE
    assert file.expiration_config.ttl_days == 7
    assert file.expires_at.ToNanoseconds() == clock.now + 7 * NS_PER_DAY


async def test_create_static_expiry_counts_from_creation(files: Files, clock: Clock) -> None:
    config = common_pb2.ExpirationConfig(expiration_policy=STATIC, ttl_days=2)
    file = await create(files, expiration_config=config)
    assert file.expires_at.ToNanoseconds() == clock.now + 2 * NS_PER_DAY
    only_ttl = await create(files, expiration_config=common_pb2.ExpirationConfig(ttl_days=3))
    assert only_ttl.expiration_config.expiration_policy == SINCE
    assert only_ttl.expiration_config.ttl_days == 3


async def test_ids_are_unique(files: Files) -> None:
    created = await asyncio.gather(*(create(files) for _ in range(200)))
    assert len({f.id for f in created}) == 200


@pytest.mark.parametrize(
    ("field", "request_fields"),
    [
        ("folder_id", {"folder_id": "", "content": b"x"}),
        ("folder_id", {"folder_id": "f" * 129, "content": b"x"}),
        ("folder_id", {"folder_id": "a\nb", "content": b"x"}),
        ("content", {"folder_id": "f"}),
        ("mime_type", {"folder_id": "f", "content": b"x", "mime_type": "not a type"}),
        ("mime_type", {"folder_id": "f", "content": b"x", "mime_type": "text/plain\r\nX: y"}),
    ],
)
async def test_create_rejects_missing_or_bad_fields(
    files: Files, field: str, request_fields: dict[str, object]
) -> None:
    with pytest.raises(InvalidArgument) as e:
        await files.create(fs.CreateFileRequest(**request_fields))  # type: ignore[arg-type]
    assert e.value.violations[0][0] == field


async def test_create_rejects_content_over_128_mib(files: Files) -> None:
    with pytest.raises(InvalidArgument) as e:
        await create(files, content=b"\0" * (MAX_CONTENT_BYTES + 1))
    assert "at most 134217728" in e.value.message


PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 20
JPEG = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01" + b"\0" * 20
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


@pytest.mark.parametrize(
    ("content", "name", "mime"),
    [
        (PNG, "", "image/png"),
        (JPEG, "", "image/jpeg"),
        (PDF, "", "application/pdf"),
        (PNG, "misleading.txt", "image/png"),
        (b'{"a": [1, 2]}', "", "application/json"),
        (b"plain words\n", "", "text/plain"),
        ("привет".encode(), "", "text/plain"),
        (b"a,b\n1,2\n", "table.csv", "text/csv"),
        (bytes(range(256)) * 4, "", "application/octet-stream"),
    ],
)
async def test_mime_type_is_deduced_from_content(
    files: Files, content: bytes, name: str, mime: str
) -> None:
    assert (await create(files, content=content, name=name)).mime_type == mime


def _puremagic_finds_something(content: bytes) -> bool:
    try:
        return bool(puremagic.magic_string(content))
    except (puremagic.PureError, ValueError):
        return False


def test_every_signature_puremagic_knows_gets_past_the_quick_check() -> None:
    # detect_mime asks puremagic only when _may_have_magic says a signature could match.
    filler = bytes(range(7, 57))
    samples = [
        b"\0" * row.offset + row.byte_match + filler
        for row in puremagic.magic_header_array
        if row.offset >= 0
    ]
    samples += [filler + row.byte_match for row in puremagic.magic_footer_array]
    found = [sample for sample in samples if _puremagic_finds_something(sample)]
    assert len(found) > 1000
    assert [sample for sample in found if not _may_have_magic(sample)] == []


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.binary(min_size=1, max_size=600))
def test_the_quick_check_never_hides_a_match(content: bytes) -> None:
    assert _may_have_magic(content) or not _puremagic_finds_something(content)


async def test_a_description_keeps_any_character(files: Files) -> None:
    # U+0000 included: PostgreSQL `text` cannot hold it, so that backend must not use it here.
    description = "line\nnul\x00tab\tжёлтый 🙂"
    file = await create(files, description=description)
    assert (await files.get(fs.GetFileRequest(file_id=file.id))).description == description


async def test_get_and_delete(files: Files) -> None:
    file = await create(files)
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == file
    await files.delete(fs.DeleteFileRequest(file_id=file.id))
    for call in (
        files.get(fs.GetFileRequest(file_id=file.id)),
        files.delete(fs.DeleteFileRequest(file_id=file.id)),
        files.update(fs.UpdateFileRequest(file_id=file.id)),
    ):
        with pytest.raises(NotFound):
            await call
    assert (await files.list(fs.ListFilesRequest(folder_id="f1"))).files == []
    assert await files.core.store.content(file.id, 0) is None


async def test_empty_ids_are_invalid(files: Files) -> None:
    for call in (
        files.get(fs.GetFileRequest()),
        files.delete(fs.DeleteFileRequest()),
        files.list(fs.ListFilesRequest()),
    ):
        with pytest.raises(InvalidArgument):
            await call


async def make_folder(files: Files, clock: Clock, count: int, folder: str = "f1") -> list[str]:
    """Ids of `count` new files, newest first."""
    ids = []
    for _ in range(count):
        clock.advance(1)
        ids.append((await create(files, folder)).id)
    return ids[::-1]


async def walk(files: Files, folder: str, page_size: int) -> tuple[list[str], list[int]]:
    """Pages through a folder as the SDK does: until the first page with no files."""
    seen: list[str] = []
    sizes: list[int] = []
    token = ""
    for _ in range(1000):
        page = await files.list(
            fs.ListFilesRequest(folder_id=folder, page_size=page_size, page_token=token)
        )
        sizes.append(len(page.files))
        if not page.files:
            assert page.next_page_token == ""
            return seen, sizes
        assert page.next_page_token
        seen.extend(f.id for f in page.files)
        token = page.next_page_token
    raise AssertionError("the walk never ended")


async def test_list_walk_newest_first_ends_with_an_empty_page(files: Files, clock: Clock) -> None:
    ids = await make_folder(files, clock, 7)
    await make_folder(files, clock, 2, folder="other")
    assert await walk(files, "f1", 3) == (ids, [3, 3, 1, 0])
    assert await walk(files, "f1", 7) == (ids, [7, 0])
    assert await walk(files, "empty", 5) == ([], [0])


async def test_same_timestamp_files_are_ordered_by_id(files: Files) -> None:
    ids = [(await create(files)).id for _ in range(5)]  # the test clock does not move
    seen, _ = await walk(files, "f1", 2)
    assert seen == sorted(ids, reverse=True)


async def test_page_size_defaults_to_100_and_is_capped_at_1000(files: Files) -> None:
    # One more file than the cap, so an uncapped page would show it. Created concurrently:
    # SQLite's group commit and PostgreSQL's pool then make this a few commits, not 1001.
    created = await asyncio.gather(*(create(files) for _ in range(1001)))
    newest_first = sorted((f.id for f in created), reverse=True)  # one timestamp: id order
    assert len((await files.list(fs.ListFilesRequest(folder_id="f1"))).files) == 100
    for page_size in (1001, 5000, 10**12):
        big = await files.list(fs.ListFilesRequest(folder_id="f1", page_size=page_size))
        assert [f.id for f in big.files] == newest_first[:1000]
        assert big.next_page_token
    rest = await files.list(
        fs.ListFilesRequest(folder_id="f1", page_size=5000, page_token=big.next_page_token)
    )
    assert [f.id for f in rest.files] == newest_first[1000:]
    with pytest.raises(InvalidArgument) as e:
        await files.list(fs.ListFilesRequest(folder_id="f1", page_size=-1))
    assert e.value.violations[0][0] == "page_size"


async def test_walk_sees_each_lasting_file_once_while_others_come_and_go(
    files: Files, clock: Clock
) -> None:
    lasting = await make_folder(files, clock, 9)
    original = set(lasting)
    doomed = lasting[4]
    seen: list[str] = []
    token = ""
    while True:
        page = await files.list(fs.ListFilesRequest(folder_id="f1", page_size=2, page_token=token))
        if not page.files:
            break
        seen.extend(f.id for f in page.files)
        token = page.next_page_token
        await make_folder(files, clock, 1)  # newer than anything: before the walk's position
        if doomed not in seen:
            await files.delete(fs.DeleteFileRequest(file_id=doomed))
            lasting.remove(doomed)
            doomed = lasting[-1]
    assert [i for i in seen if i in lasting] == lasting
    assert len(seen) == len(set(seen))
    assert set(seen) <= original


async def tokens(files: Files, clock: Clock) -> str:
    await make_folder(files, clock, 3)
    page = await files.list(fs.ListFilesRequest(folder_id="f1", page_size=1))
    return page.next_page_token


def tampered(token: str) -> list[str]:
    flipped = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    return [
        flipped,
        token[:-1],
        token[:-2],
        token + "A",
        token + "AA",
        token + "=",
        token + "\n",
        " " + token,
        token.upper(),
        "",
        "not-a-token",
        "AAAA",
    ]


async def test_changed_truncated_or_extended_page_tokens_are_invalid(
    files: Files, clock: Clock
) -> None:
    token = await tokens(files, clock)
    for bad in [t for t in tampered(token) if t]:
        with pytest.raises(InvalidArgument) as e:
            await files.list(fs.ListFilesRequest(folder_id="f1", page_token=bad))
        assert e.value.violations[0][0] == "page_token", bad


async def test_page_token_of_another_folder_is_invalid(files: Files, clock: Clock) -> None:
    token = await tokens(files, clock)
    with pytest.raises(InvalidArgument):
        await files.list(fs.ListFilesRequest(folder_id="f2", page_token=token))


async def test_expired_files_are_gone_everywhere_and_then_purged(
    files: Files, clock: Clock
) -> None:
    short = await create(files, expiration_config=common_pb2.ExpirationConfig(ttl_days=1))
    lasting = await create(files, expiration_config=common_pb2.ExpirationConfig(ttl_days=3))
    created_at = clock.now
    clock.advance(NS_PER_DAY)
    with pytest.raises(NotFound):
        await files.get(fs.GetFileRequest(file_id=short.id))
    with pytest.raises(NotFound):
        await files.get_url(fs.GetFileUrlRequest(file_id=short.id), "http://h")
    with pytest.raises(NotFound):
        await files.update(fs.UpdateFileRequest(file_id=short.id))
    with pytest.raises(NotFound):
        await files.delete(fs.DeleteFileRequest(file_id=short.id))
    listed = await files.list(fs.ListFilesRequest(folder_id="f1"))
    assert [f.id for f in listed.files] == [lasting.id]
    assert await files.core.sweep() == 1
    # Purged, not just hidden: not even a lookup as of creation time finds it.
    assert await files.core.store.get(short.id, created_at) is None
    assert await files.core.store.content(short.id, created_at) is None
    assert await files.core.store.get(lasting.id, created_at) is not None


async def test_sweep_spares_a_file_whose_expiry_was_just_extended(
    files: Files, clock: Clock
) -> None:
    file = await create(files, expiration_config=common_pb2.ExpirationConfig(ttl_days=1))
    clock.advance(NS_PER_DAY - 1)
    await files.update(fs.UpdateFileRequest(file_id=file.id))  # activity: a day from now
    clock.advance(1)
    assert await files.core.sweep() == 0
    assert (await files.get(fs.GetFileRequest(file_id=file.id))).id == file.id
