"""File.Update, rule by rule, on every store backend (the contract suite's heart)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2

from files_api.auth import Caller
from files_api.domain.limits import NS_PER_DAY
from files_api.domain.update_mask import apply_patch, plan_update, read_cached
from files_api.errors import InvalidArgument, NotFound
from files_api.masks import quote_segment, split_path
from files_api.store import FileRecord

if TYPE_CHECKING:
    from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

    from files_api.domain import Files
    from tests.conftest import Clock

STATIC = common_pb2.ExpirationConfig.STATIC
SINCE = common_pb2.ExpirationConfig.SINCE_LAST_ACTIVE
ORIGINAL: dict[str, Any] = {
    "name": "orig.txt",
    "description": "original",
    "labels": {"a": "1", "b": "2", "team.name": "x"},
    "policy": STATIC,
    "ttl_days": 10,
}


async def make_file(files: Files, folder_id: str = "folder1") -> file_pb2.File:
    return await files.create(
        fs.CreateFileRequest(
            folder_id=folder_id,
            name=ORIGINAL["name"],
            description=ORIGINAL["description"],
            content=b"hello",
            labels=ORIGINAL["labels"],
            expiration_config=common_pb2.ExpirationConfig(
                expiration_policy=ORIGINAL["policy"], ttl_days=ORIGINAL["ttl_days"]
            ),
        )
    )


def update_request(file_id: str, paths: list[str] | None, **fields: Any) -> fs.UpdateFileRequest:
    request = fs.UpdateFileRequest(file_id=file_id, **fields)
    if paths is not None:
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    return request


def summary(file: file_pb2.File) -> dict[str, Any]:
    return {
        "name": file.name,
        "description": file.description,
        "labels": dict(file.labels),
        "policy": file.expiration_config.expiration_policy,
        "ttl_days": file.expiration_config.ttl_days,
    }


def cfg(policy: int = 0, ttl_days: int = 0) -> common_pb2.ExpirationConfig:
    return common_pb2.ExpirationConfig(expiration_policy=policy, ttl_days=ttl_days)  # type: ignore[arg-type]


FULL_RESET = {"name": "n", "description": "", "labels": {}, "policy": SINCE, "ttl_days": 7}

# (mask paths or None for no mask at all, request fields, expected changes to ORIGINAL)
UPDATE_TABLE: list[tuple[list[str] | None, dict[str, Any], dict[str, Any]]] = [
    (["name"], {"name": "new.txt"}, {"name": "new.txt"}),
    (["name"], {}, {"name": ""}),
    (["name"], {"name": "n", "description": "ignored"}, {"name": "n"}),
    (["description"], {"description": "d2"}, {"description": "d2"}),
    (["description"], {}, {"description": ""}),
    (["labels"], {"labels": {"c": "3"}}, {"labels": {"c": "3"}}),
    (["labels"], {}, {"labels": {}}),
    (
        ["labels.a"],
        {"labels": {"a": "9", "c": "3"}},
        {"labels": {"a": "9", "b": "2", "team.name": "x"}},
    ),
    (["labels.c"], {"labels": {"c": "3"}}, {"labels": {**ORIGINAL["labels"], "c": "3"}}),
    (["labels.a"], {}, {"labels": {"b": "2", "team.name": "x"}}),
    (["labels.zz"], {}, {}),
    (
        ["labels.`team.name`"],
        {"labels": {"team.name": "y"}},
        {"labels": {"a": "1", "b": "2", "team.name": "y"}},
    ),
    (["labels.`team.name`"], {}, {"labels": {"a": "1", "b": "2"}}),
    (["labels.`a`"], {}, {"labels": {"b": "2", "team.name": "x"}}),
    # A doubled backtick is one literal backtick: the key "a`b", absent, so nothing to remove.
    (["labels.`a``b`"], {}, {}),
    (["labels.a", "labels.b"], {"labels": {"b": "5"}}, {"labels": {"b": "5", "team.name": "x"}}),
    (["labels", "labels.a"], {"labels": {"a": "7"}}, {"labels": {"a": "7"}}),
    (["expiration_config"], {"expiration_config": cfg(SINCE, 3)}, {"policy": SINCE, "ttl_days": 3}),
    (["expiration_config"], {}, {"policy": SINCE, "ttl_days": 7}),
    (["expiration_config"], {"expiration_config": cfg(STATIC)}, {"policy": STATIC, "ttl_days": 7}),
    (["expiration_config.ttl_days"], {"expiration_config": cfg(SINCE, 3)}, {"ttl_days": 3}),
    (["expiration_config.ttl_days"], {}, {"ttl_days": 7}),
    (
        ["expiration_config.expiration_policy"],
        {"expiration_config": cfg(SINCE, 99)},
        {"policy": SINCE},
    ),
    (["expiration_config.expiration_policy"], {}, {"policy": SINCE}),
    (
        ["expiration_config.ttl_days", "expiration_config.expiration_policy"],
        {"expiration_config": cfg(SINCE, 30)},
        {"policy": SINCE, "ttl_days": 30},
    ),
    (["name", "description"], {"name": "n", "description": "d"}, {"name": "n", "description": "d"}),
    (["name", "name"], {"name": "n"}, {"name": "n"}),
    ([], {"name": "n"}, FULL_RESET),
    (None, {"name": "n"}, FULL_RESET),
    (["*"], {"name": "n"}, FULL_RESET),
    (
        ["*"],
        {
            "name": "n",
            "description": "d",
            "labels": {"k": "v"},
            "expiration_config": cfg(STATIC, 2),
        },
        {"name": "n", "description": "d", "labels": {"k": "v"}, "policy": STATIC, "ttl_days": 2},
    ),
]


STORED = FileRecord(
    id="f1",
    folder_id="folder1",
    name=ORIGINAL["name"],
    description=ORIGINAL["description"],
    mime_type="text/plain",
    created_by="creator",
    created_at_ns=1_000 * NS_PER_DAY,
    updated_by="creator",
    updated_at_ns=1_000 * NS_PER_DAY,
    expiration_policy=ORIGINAL["policy"],
    ttl_days=ORIGINAL["ttl_days"],
    expires_at_ns=1_010 * NS_PER_DAY,
    labels=ORIGINAL["labels"],
    size=5,
)
NOW = 1_001 * NS_PER_DAY + 123


def record_summary(record: FileRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "labels": dict(record.labels),
        "policy": record.expiration_policy,
        "ttl_days": record.ttl_days,
    }


@pytest.mark.parametrize(("paths", "fields", "changes"), UPDATE_TABLE)
def test_update_changes_exactly_the_masked_fields(
    paths: list[str] | None, fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    # Pure: the mask read and applied to a record, no store.
    request = update_request(STORED.id, paths, **fields)
    updated = apply_patch(STORED, plan_update(request.update_mask.paths), request, "alice", NOW)
    assert record_summary(updated) == {**ORIGINAL, **changes}
    assert (updated.updated_by, updated.updated_at_ns) == ("alice", NOW)
    unchanged = ("id", "folder_id", "mime_type", "created_by", "created_at_ns", "size")
    assert [getattr(updated, f) for f in unchanged] == [getattr(STORED, f) for f in unchanged]


# A handful of the table's rows end to end, on every backend.
END_TO_END = [UPDATE_TABLE[i] for i in (0, 8, 12, 18, 23, 29)]


@pytest.mark.parametrize(("paths", "fields", "changes"), END_TO_END)
async def test_update_end_to_end_on_every_backend(
    files: Files, paths: list[str] | None, fields: dict[str, Any], changes: dict[str, Any]
) -> None:
    file = await make_file(files)
    updated = await files.update(update_request(file.id, paths, **fields))
    assert summary(updated) == {**ORIGINAL, **changes}
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == updated


# Paths that are never allowed, with a word the error message must contain.
BAD_PATHS = [
    ("nmae", "no updatable field"),
    ("Name", "no updatable field"),
    ("id", "output-only"),
    ("folder_id", "output-only"),
    ("mime_type", "output-only"),
    ("created_at", "output-only"),
    ("created_by", "output-only"),
    ("updated_at", "output-only"),
    ("updated_by", "output-only"),
    ("expires_at", "output-only"),
    ("name.x", "no subfields"),
    ("description.x", "no subfields"),
    ("labels.team.name", "label value is a string"),
    ("labels.a.b", "label value is a string"),
    ("labels.`unterminated", "unterminated"),
    ("labels.`a`b", "followed by"),
    ("labels.`a`b`", "followed by"),
    ("labels.team-name", "backticks"),
    ("", "empty"),
    (".name", "empty"),
    ("name.", "empty"),
    ("labels.", "empty"),
    ("expiration_config.foo", "only expiration_policy and ttl_days"),
    ("expiration_config.ttl_days.x", "only expiration_policy and ttl_days"),
    ("*.name", "backticks"),
]


@pytest.mark.parametrize(("path", "word"), BAD_PATHS)
def test_bad_mask_path_is_invalid(path: str, word: str) -> None:
    for mask in (["name", path], [path, "*"]):  # every path is checked, `*` excuses none
        with pytest.raises(InvalidArgument) as e:
            plan_update(mask)
        assert word in e.value.message
        assert [field for field, _ in e.value.violations] == ["update_mask"]
        assert repr(path) in e.value.violations[0][1]


@pytest.mark.parametrize(("path", "word"), BAD_PATHS[::6])
async def test_bad_mask_path_changes_nothing_on_every_backend(
    files: Files, path: str, word: str
) -> None:
    file = await make_file(files)
    with pytest.raises(InvalidArgument) as e:
        await files.update(update_request(file.id, ["name", path], name="changed"))
    assert word in e.value.message
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == file


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("labels.`a``b`", ["labels", "a`b"]),
        ("labels.``````", ["labels", "``"]),
        ("labels.`a.b`", ["labels", "a.b"]),
        ("`labels`.`x`", ["labels", "x"]),
    ],
)
def test_a_doubled_backtick_in_a_quoted_segment_is_one_literal_backtick(
    path: str, segments: list[str]
) -> None:
    # AIP-161: inside backticks a literal backtick is written twice.
    assert split_path(path) == segments
    assert split_path(".".join(quote_segment(s) for s in segments)) == segments


async def test_a_backticked_key_reaches_the_label_rules_unescaped(files: Files) -> None:
    # "a`b" parses to a key the label rules then refuse; "a.b" is a key they accept.
    file = await make_file(files)
    with pytest.raises(InvalidArgument) as e:
        await files.update(update_request(file.id, ["labels.`a``b`"], labels={"a`b": "v"}))
    assert [field for field, _ in e.value.violations] == ["labels['a`b']"]
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == file
    updated = await files.update(update_request(file.id, ["labels.`a.b`"], labels={"a.b": "v"}))
    assert dict(updated.labels) == {**ORIGINAL["labels"], "a.b": "v"}


def test_a_mask_read_once_is_checked_every_time_and_long_ones_are_not_kept() -> None:
    # Masks are read once and kept (domain.read_cached); a bad one must still fail every
    # time, and a long one must not be kept, or one client could fill the memory with them.
    for _ in range(2):
        with pytest.raises(InvalidArgument):
            plan_update(["name", "created_at"])
    assert plan_update(["name"]) is plan_update(("name",))
    long_mask = [f"labels.k{i:03d}{'x' * 40}" for i in range(20)]
    before = read_cached.cache_info().currsize
    assert plan_update(long_mask).label_keys == tuple(p.split(".")[1] for p in long_mask)
    assert plan_update(long_mask) is not plan_update(long_mask)
    assert read_cached.cache_info().currsize == before


LONG = "x" * 1025
# (request fields for a full-replacement update, the field the violation must name)
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    ({"name": "x" * 1025}, "name"),
    ({"name": "ж" * 513}, "name"),  # 1026 bytes of UTF-8
    ({"name": "a\nb"}, "name"),
    ({"name": "a\x00b"}, "name"),
    ({"name": "a\x7fb"}, "name"),
    ({"description": LONG}, "description"),
    ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels"),
    ({"labels": {"Upper": "v"}}, "labels['Upper']"),
    ({"labels": {"1abc": "v"}}, "labels['1abc']"),
    ({"labels": {"": "v"}}, "labels['']"),
    ({"labels": {"k" * 64: "v"}}, f"labels['{'k' * 64}']"),
    ({"labels": {"k": "V"}}, "labels['k']"),
    ({"labels": {"k": "v" * 64}}, "labels['k']"),
    ({"labels": {"k": "a b"}}, "labels['k']"),
    ({"expiration_config": cfg(SINCE, -1)}, "expiration_config.ttl_days"),
    ({"expiration_config": cfg(SINCE, 3651)}, "expiration_config.ttl_days"),
    ({"expiration_config": cfg(5, 3)}, "expiration_config.expiration_policy"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_VALUES)
async def test_invalid_value_is_rejected_after_merge_and_changes_nothing(
    files: Files, fields: dict[str, Any], field: str
) -> None:
    file = await make_file(files)
    with pytest.raises(InvalidArgument) as e:
        await files.update(update_request(file.id, ["*"], **fields))
    assert field in [f for f, _ in e.value.violations]
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == file


@pytest.mark.parametrize(("fields", "field"), BAD_VALUES)
async def test_create_applies_the_same_validation(
    files: Files, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as e:
        await files.create(fs.CreateFileRequest(folder_id="f", content=b"x", **fields))
    assert field in [f for f, _ in e.value.violations]


async def test_a_merge_that_makes_65_labels_is_rejected_though_the_request_is_fine(
    files: Files,
) -> None:
    # The rules hold for the merged file, not for the request: one label is fine alone.
    full = {f"k{i}": "v" for i in range(64)}
    file = await files.create(fs.CreateFileRequest(folder_id="f", content=b"x", labels=full))
    with pytest.raises(InvalidArgument) as e:
        await files.update(update_request(file.id, ["labels.extra"], labels={"extra": "v"}))
    assert [field for field, _ in e.value.violations] == ["labels"]
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == file
    swapped = await files.update(
        update_request(file.id, ["labels.k0", "labels.extra"], labels={"extra": "v"})
    )
    del full["k0"]
    assert dict(swapped.labels) == {**full, "extra": "v"}  # 64 again: allowed


async def test_request_labels_outside_the_masked_keys_are_not_validated(files: Files) -> None:
    # The other way round: 66 request labels, one key invalid, but the merge takes only "a".
    labels = {"a": "9", "Upper": "v", **{f"k{i}": "v" for i in range(64)}}
    file = await make_file(files)
    updated = await files.update(update_request(file.id, ["labels.a"], labels=labels))
    assert summary(updated) == {**ORIGINAL, "labels": {**ORIGINAL["labels"], "a": "9"}}


async def test_invalid_value_outside_the_mask_is_ignored(files: Files) -> None:
    file = await make_file(files)
    updated = await files.update(
        update_request(file.id, ["name"], name="ok", description=LONG, expiration_config=cfg(9, -4))
    )
    assert summary(updated) == {**ORIGINAL, "name": "ok"}


BOUNDARY_VALUES: list[dict[str, Any]] = [
    {"name": "x" * 1024},
    {"name": "ж" * 512},
    {"name": "emoji 🙂 and RTL \u202e text"},
    {"description": "ж" * 1024},
    {"description": "line\nbreaks\tallowed"},
    {"labels": {f"k{i}": "v" for i in range(64)}},
    {"labels": {"k" + "-" * 62: "v" * 63, "a_b./\\@1": ""}},
    {"expiration_config": cfg(STATIC, 3650)},
    {"expiration_config": cfg(SINCE, 1)},
]


@pytest.mark.parametrize("fields", BOUNDARY_VALUES)
async def test_values_at_the_limits_are_accepted(files: Files, fields: dict[str, Any]) -> None:
    file = await make_file(files)
    updated = await files.update(update_request(file.id, ["*"], **fields))
    assert await files.get(fs.GetFileRequest(file_id=file.id)) == updated


async def test_empty_file_id_is_invalid_and_unknown_is_not_found(files: Files) -> None:
    with pytest.raises(InvalidArgument) as e:
        await files.update(update_request("", ["name"]))
    assert e.value.violations[0][0] == "file_id"
    with pytest.raises(NotFound):
        await files.update(update_request("nosuchfile", ["name"]))


async def test_bad_path_on_a_missing_file_is_invalid_argument(files: Files) -> None:
    with pytest.raises(InvalidArgument):
        await files.update(update_request("nosuchfile", ["id"]))


async def test_update_sets_updated_fields_and_keeps_the_immutable_ones(
    files: Files, clock: Clock
) -> None:
    file = await make_file(files)
    clock.advance(1_234_567_891)
    updated = await files.update(update_request(file.id, ["name"], name="n"), Caller("alice"))
    assert updated.updated_by == "alice"
    assert updated.updated_at.ToNanoseconds() == clock.now
    for field in ("id", "folder_id", "mime_type", "created_by", "created_at"):
        assert getattr(updated, field) == getattr(file, field)


async def test_update_recomputes_expiry_from_the_policy(files: Files, clock: Clock) -> None:
    file = await make_file(files)  # STATIC, 10 days
    created = file.created_at.ToNanoseconds()
    assert file.expires_at.ToNanoseconds() == created + 10 * NS_PER_DAY
    clock.advance(NS_PER_DAY)
    static = await files.update(update_request(file.id, ["name"], name="n"))
    assert static.expires_at.ToNanoseconds() == created + 10 * NS_PER_DAY
    since = await files.update(
        update_request(
            file.id, ["expiration_config.expiration_policy"], expiration_config=cfg(SINCE)
        )
    )
    assert since.expires_at.ToNanoseconds() == clock.now + 10 * NS_PER_DAY
    clock.advance(NS_PER_DAY)
    touched = await files.update(update_request(file.id, ["description"], description="d"))
    assert touched.expires_at.ToNanoseconds() == clock.now + 10 * NS_PER_DAY


async def test_concurrent_updates_with_disjoint_masks_lose_nothing(files: Files) -> None:
    file = await make_file(files)
    keys = [f"k{i}" for i in range(40)]
    await asyncio.gather(
        files.update(update_request(file.id, ["name"], name="concurrent")),
        files.update(update_request(file.id, ["description"], description="also")),
        *(files.update(update_request(file.id, [f"labels.{k}"], labels={k: k})) for k in keys),
    )
    final = await files.get(fs.GetFileRequest(file_id=file.id))
    assert final.name == "concurrent"
    assert final.description == "also"
    assert dict(final.labels) == {**ORIGINAL["labels"], **{k: k for k in keys}}
