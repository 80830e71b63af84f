"""`python -m bench.big_creates HOST:PORT --content json|random --bytes N --calls 2`: the client
process of the stall part (bench/stall.py), which sends big Creates while the driver times small
calls of its own on another channel.

A process of its own because building 128 MiB, serializing it and grpcio's copies of it on the
way out all hold the GIL: in the driver's process they would stall the very calls it times.

It builds the content and serializes the request first, prints `ready`, and waits for a line on
stdin. Then it sends `--calls` Creates at once (a thread each, on one channel) and prints one
JSON line: the content's size, SHA-1 (upper-case hex, as PDS's `content_hash`) and MIME type,
and for each call its status code, seconds, and the answered File's id and mime_type.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import sys
import threading
import time
from typing import Any

import grpc
from files_api_stubs.yandex.cloud.ai.files.v1 import file_pb2

from bench import workload
from files_api.app import MAX_MESSAGE_BYTES
from files_api.domain.limits import MAX_CONTENT_BYTES

# What each kind of content is, and the type a server should find in it (no name extension
# says otherwise: the names have none).
CONTENTS = {
    "json": (workload.json_array, "application/json"),
    "random": (workload.random_content, "application/octet-stream"),
}
FOLDER_ID = "b1gbenchstallfolder"
TIMEOUT_S = 600.0


def _create(
    rpc: grpc.UnaryUnaryMultiCallable[bytes, file_pb2.File],
    payload: bytes,
    start: threading.Barrier,
) -> dict[str, Any]:
    start.wait()
    started = time.perf_counter()
    try:
        created = rpc(payload, timeout=TIMEOUT_S)
    except grpc.RpcError as e:
        return {
            "code": e.code().name,
            "details": e.details(),
            "seconds": time.perf_counter() - started,
        }
    return {
        "code": "OK",
        "seconds": time.perf_counter() - started,
        "id": created.id,
        "mime_type": created.mime_type,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.big_creates", description=__doc__)
    parser.add_argument("address", metavar="HOST:PORT")
    parser.add_argument("--content", choices=CONTENTS, required=True)
    parser.add_argument("--bytes", type=int, default=MAX_CONTENT_BYTES, metavar="N")
    parser.add_argument("--calls", type=int, default=2)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    make, mime_type = CONTENTS[args.content]
    content = make(args.bytes)
    request = workload.create_request(content, FOLDER_ID, f"stall-{args.content}")
    payload = request.SerializeToString()
    digest = hashlib.sha1(content).hexdigest().upper()
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    with grpc.insecure_channel(args.address, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=60)
        # The request goes out as the bytes serialized above: nothing is built after `go`.
        rpc: grpc.UnaryUnaryMultiCallable[bytes, file_pb2.File] = channel.unary_unary(
            f"/{workload.SERVICE}/Create",
            request_serializer=lambda b: b,
            response_deserializer=file_pb2.File.FromString,
        )
        start = threading.Barrier(args.calls)
        print("ready", flush=True)
        sys.stdin.readline()
        with concurrent.futures.ThreadPoolExecutor(args.calls) as pool:
            calls = list(pool.map(lambda _: _create(rpc, payload, start), range(args.calls)))
        outcome = {"bytes": len(content), "sha1": digest, "mime_type": mime_type, "calls": calls}
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
