"""Concurrent writers on one file lose nothing; the sweeper never takes a file being extended.

The first test runs `python -m server` (SQLite and PostgreSQL) with the sweeper every 50 ms and
16 clients, each on a channel of its own, updating one file with disjoint masks. The second
needs to move time, so it runs the server in-process with the tests' clock on every backend.
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import TYPE_CHECKING

import grpc
import pytest
from files_api_stubs.yandex.cloud.ai.common import common_pb2
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2, file_service_pb2_grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_service_pb2 as fs
from google.protobuf import field_mask_pb2

from files_api.domain.limits import NS_PER_DAY
from files_api.errors import NotFound
from tests.support import server_process

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import Running

CLIENTS = 16
UPDATES_PER_CLIENT = 50
KEYS_PER_LABEL_CLIENT = 5  # 12 label clients x 5 keys + the file's own label: within 64
CALL_TIMEOUT = 30.0
JUMPS = 40
BOUNDARY_ROUNDS = 40

Policy = common_pb2.ExpirationConfig.ExpirationPolicy
Value = str | int | None  # None: the label is removed


def request_for(file_id: str, values: dict[str, Value]) -> fs.UpdateFileRequest:
    """An Update setting `values`: path -> value, with None removing a label."""
    request = fs.UpdateFileRequest(
        file_id=file_id, update_mask=field_mask_pb2.FieldMask(paths=list(values))
    )
    for path, value in values.items():
        if path.startswith("labels.") and value is not None:
            request.labels[path.removeprefix("labels.")] = str(value)
        elif path == "name":
            request.name = str(value)
        elif path == "description":
            request.description = str(value)
        elif path == "expiration_config.ttl_days":
            request.expiration_config.ttl_days = int(value or 0)
        elif path == "expiration_config.expiration_policy":
            request.expiration_config.expiration_policy = int(value or 0)  # type: ignore[assignment]
    return request


def value_of(file: file_pb2.File, path: str) -> Value:
    if path.startswith("labels."):
        return file.labels.get(path.removeprefix("labels."))
    if path.startswith("expiration_config."):
        return int(getattr(file.expiration_config, path.removeprefix("expiration_config.")))
    return str(getattr(file, path))


def plan(client: int, rng: random.Random) -> list[dict[str, Value]]:
    """The Updates one client sends, each over 1-3 paths no other client touches."""
    if client == 0:
        return [{"name": f"name {n}"} for n in range(UPDATES_PER_CLIENT)]
    if client == 1:
        return [{"description": f"description {n}"} for n in range(UPDATES_PER_CLIENT)]
    if client == 2:
        return [
            {"expiration_config.ttl_days": rng.randint(1, 3650)} for _ in range(UPDATES_PER_CLIENT)
        ]
    if client == 3:
        policies = [Policy.STATIC, Policy.SINCE_LAST_ACTIVE]
        return [
            {"expiration_config.expiration_policy": policies[n % 2]}
            for n in range(UPDATES_PER_CLIENT)
        ]
    own = [f"labels.c{client}_{k}" for k in range(KEYS_PER_LABEL_CLIENT)]
    return [
        {
            path: None if rng.random() < 0.2 else f"c{client}-{n}"
            for path in rng.sample(own, rng.randint(1, 3))
        }
        for n in range(UPDATES_PER_CLIENT)
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sixteen_clients_with_disjoint_masks_lose_no_update(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        store = f"sqlite:///{tmp_path / 'files.db'}"
    else:
        store = request.getfixturevalue("postgres_database")
    rng = random.Random(16)
    plans = [plan(client, rng) for client in range(CLIENTS)]
    with server_process("--store", store, "--sweep-interval", "0.1") as server:
        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            file = stub.Create(
                fs.CreateFileRequest(folder_id="f", content=b"x", labels={"keep": "me"})
            )
        start = threading.Barrier(CLIENTS, timeout=CALL_TIMEOUT)
        errors: list[BaseException] = []

        def client(updates: list[dict[str, Value]]) -> None:
            try:
                with grpc.insecure_channel(server.grpc_address) as channel:
                    stub = file_service_pb2_grpc.FileServiceStub(channel)
                    stub.Get(fs.GetFileRequest(file_id=file.id), timeout=CALL_TIMEOUT)
                    start.wait()
                    for values in updates:
                        answer = stub.Update(request_for(file.id, values), timeout=CALL_TIMEOUT)
                        for path, value in values.items():  # the answer shows its own change
                            assert value_of(answer, path) == value, (path, value)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=client, args=(p,), daemon=True) for p in plans]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
            assert not thread.is_alive()
        assert not errors, errors

        with grpc.insecure_channel(server.grpc_address) as channel:
            stub = file_service_pb2_grpc.FileServiceStub(channel)
            final = stub.Get(fs.GetFileRequest(file_id=file.id))
        expected: dict[str, Value] = {"labels.keep": "me"}
        for updates in plans:
            for values in updates:
                expected.update(values)
        for path, value in expected.items():
            assert value_of(final, path) == value, path
        labels = {p.removeprefix("labels."): v for p, v in expected.items() if "labels." in p}
        assert dict(final.labels) == {k: v for k, v in labels.items() if v is not None}
    assert "Traceback" not in server.log_text()
    assert "sweep failed" not in server.log_text()


async def test_sweeper_spares_a_file_whose_expiry_keeps_being_extended(running: Running) -> None:
    """Time jumps to one nanosecond before the file would expire, again and again, while the
    sweeper runs on its own every millisecond, more sweeps run alongside, and several Updates
    extend the file at once: it must never go. A file nobody extends goes once time has passed
    its expiry, and it is the only file any sweep purges."""
    one_day = common_pb2.ExpirationConfig(expiration_policy=Policy.SINCE_LAST_ACTIVE, ttl_days=1)
    extended = await running.stub.Create(
        fs.CreateFileRequest(folder_id="f", content=b"kept", expiration_config=one_day)
    )
    forgotten = await running.stub.Create(
        fs.CreateFileRequest(folder_id="f", content=b"gone", expiration_config=one_day)
    )
    files, store, clock = running.server.files, running.server.core.store, running.clock
    sweeps = purged = 0
    core = running.server.core
    real_sweep = core.sweep

    async def counted_sweep() -> int:
        nonlocal sweeps, purged
        sweeps += 1
        count = await real_sweep()
        purged += count
        return count

    core.sweep = counted_sweep  # type: ignore[method-assign]
    running.server.start_sweeper(interval_seconds=0.001)
    expires_at = extended.expires_at.ToNanoseconds()
    for jump in range(JUMPS):
        clock.now = expires_at - 1
        seen = sweeps
        await asyncio.gather(*(files.core.sweep() for _ in range(3)))
        answers, _ = await asyncio.gather(
            asyncio.gather(
                *(
                    running.stub.Update(
                        fs.UpdateFileRequest(
                            file_id=extended.id,
                            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.u{i}"]),
                            labels={f"u{i}": str(jump)},
                        )
                    )
                    for i in range(4)
                )
            ),
            asyncio.gather(*(files.core.sweep() for _ in range(3))),
        )
        for answer in answers:
            assert answer.expires_at.ToNanoseconds() == clock.now + NS_PER_DAY, jump
        expires_at = clock.now + NS_PER_DAY
        # The periodic sweeper, too, has looked at the file at this moment.
        for _ in range(1000):
            if sweeps > seen + 6:
                break
            await asyncio.sleep(0.001)
        assert sweeps > seen + 6
        assert await store.get(extended.id, 0) is not None, jump
    assert purged == 1  # the forgotten file, once
    assert await store.get(forgotten.id, 0) is None
    final = await running.stub.Get(fs.GetFileRequest(file_id=extended.id))
    assert dict(final.labels) == {f"u{i}": str(JUMPS - 1) for i in range(4)}


async def test_an_update_answered_at_the_moment_of_expiry_keeps_its_file(running: Running) -> None:
    """Updates, sweeps and the clock's step onto a file's expiry race, in a seeded order per
    round. Either side may win, but an Update answered OK extended the file, so the file must
    still be there with that Update's change: a sweep that chose its victims first and deleted
    them after the extension committed would lose an acknowledged write."""
    files, clock, rng = running.server.files, running.clock, random.Random(7)
    one_day = common_pb2.ExpirationConfig(expiration_policy=Policy.SINCE_LAST_ACTIVE, ttl_days=1)
    outcomes = {"kept": 0, "purged": 0}
    for round_number in range(BOUNDARY_ROUNDS):
        file = await files.create(
            fs.CreateFileRequest(folder_id="f", content=b"x", expiration_config=one_day)
        )
        expires_at = file.expires_at.ToNanoseconds()
        clock.now = expires_at - 1

        async def tick(at: int = expires_at) -> None:
            clock.now = at

        updates = [
            files.update(
                fs.UpdateFileRequest(
                    file_id=file.id,
                    update_mask=field_mask_pb2.FieldMask(paths=[f"labels.u{i}"]),
                    labels={f"u{i}": "set"},
                )
            )
            for i in range(3)
        ]
        racers = [*updates, tick(), *(files.core.sweep() for _ in range(3))]
        order = rng.sample(range(len(racers)), len(racers))
        results = await asyncio.gather(*(racers[i] for i in order), return_exceptions=True)
        answered = dict(zip(order, results, strict=True))
        acknowledged = [f"u{i}" for i in range(3) if not isinstance(answered[i], BaseException)]
        for i in range(3):
            assert isinstance(answered[i], (file_pb2.File, NotFound)), answered[i]
        survivor = await files.core.store.get(file.id, clock.now)
        if acknowledged:
            assert survivor is not None, f"round {round_number}: an acknowledged Update was swept"
            assert set(acknowledged) <= set(survivor.labels), round_number
            outcomes["kept"] += 1
        else:
            assert survivor is None, round_number
            outcomes["purged"] += 1
    assert outcomes["kept"] and outcomes["purged"], outcomes  # both orders really happened
