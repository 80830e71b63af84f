"""`python -m bench.interceptor_cost`: the CPU a call costs through a bare grpc.aio echo
service with no interceptor, with our interceptor alone (`GrpcEdge` without metrics) and with
it and the Prometheus metrics, client and server in this one process, alternating rounds.

The difference is what the edges add to every gRPC call; h2load against whole servers (`make
bench ARGS="... --metrics"`) cannot resolve a few microseconds on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc

from files_api.metrics import process_metrics
from files_api.observe import GrpcEdge

STREAMS = 32
KINDS = ("no interceptor", "interceptor", "interceptor + metrics")


def _echo_service() -> grpc.GenericRpcHandler:
    async def echo(request: bytes, _: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(echo)
    return grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})


async def cpu_per_call(kind: str, calls: int) -> float:
    """Microseconds of this process's CPU per call, over `calls` calls on STREAMS streams."""
    interceptors = []
    if kind != KINDS[0]:
        metrics = process_metrics("bench") if kind == KINDS[2] else None
        interceptors.append(GrpcEdge(metrics, access=False))
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((_echo_service(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary("/bench.Echo/Echo")
    try:
        for _ in range(500):  # warm up
            await echo(b"x")

        async def stream() -> None:
            for _ in range(calls // STREAMS):
                await echo(b"x")

        started = time.process_time()
        await asyncio.gather(*(stream() for _ in range(STREAMS)))
        return (time.process_time() - started) / calls * 1e6
    finally:
        await channel.close()
        await server.stop(None)


async def measure(rounds: int, calls: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for number in range(rounds):
        # Each kind first, second and third in turn: whatever a run leaves behind (grpc's own
        # state, the collector's generations) must not always land on the same kind.
        for kind in KINDS[number % 3 :] + KINDS[: number % 3]:
            results[kind].append(await cpu_per_call(kind, calls))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.interceptor_cost")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    for kind, values in asyncio.run(measure(args.rounds, args.calls)).items():
        ordered = sorted(values)
        print(
            f"{kind:<22} us of CPU per call: median {ordered[len(ordered) // 2]:6.1f}"
            f"  (all: {', '.join(f'{v:.1f}' for v in ordered)})"
        )


if __name__ == "__main__":
    main()
