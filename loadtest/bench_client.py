"""Client throughput: `VantaClient.iter_pages` against a bare aiohttp + orjson loop over the same pages.

Both walk the same cursor chain (every vulnerability, 100 a page) of a zero-latency simulator with no
rate limit, running in its own process; the runs alternate and the median of each is compared.
Run with `nox -s bench` (options after `--`, e.g. `-- --vulnerabilities 50000 --rounds 5`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import orjson

from vanta_vuln_sync.simulator.config import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from vanta_vuln_sync.vanta import InProcessTokenProvider, NoRateLimit, VantaClient, token_fetcher

PARAMS = {"includeVulnerabilitiesWithoutSlas": "true", "pageSize": "100"}


@contextlib.contextmanager
def simulator_process(vulnerabilities: int) -> Iterator[str]:
    """`python -m vanta_vuln_sync.simulator` on a free loopback port; yields its origin."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vanta_vuln_sync.simulator",
            "--port",
            str(port),
            "--vulnerabilities",
            str(vulnerabilities),
            "--rate-limit",
            "0",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the simulator did not start")
            time.sleep(0.1)
        yield origin
    finally:
        process.terminate()
        process.wait(timeout=10)


async def bare_loop(session: aiohttp.ClientSession, base_url: str, token: str) -> int:
    """The least code that walks the chain: GET, read, orjson.loads, follow endCursor."""
    url = f"{base_url}/vulnerabilities"
    headers = {"Authorization": f"Bearer {token}"}
    cursor: str | None = None
    pages = 0
    while True:
        params = dict(PARAMS)
        if cursor is not None:
            params["pageCursor"] = cursor
        async with session.get(url, params=params, headers=headers) as response:
            body = await response.read()
        info = orjson.loads(body)["results"]["pageInfo"]
        pages += 1
        if not info["hasNextPage"]:
            return pages
        cursor = info["endCursor"]


async def client_loop(client: VantaClient) -> int:
    pages = 0
    async for _ in client.iter_pages("vulnerabilities"):
        pages += 1
    return pages


async def timed(walk: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """(pages per second, client CPU milliseconds per page) of one walk."""
    wall, cpu = time.perf_counter(), time.process_time()
    pages = await walk()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return pages / wall, cpu * 1000 / pages


async def bench(origin: str, rounds: int) -> dict[str, Any]:
    base_url = f"{origin}/v1"
    async with aiohttp.ClientSession() as session:
        tokens = InProcessTokenProvider(
            token_fetcher(session, f"{origin}/oauth/token", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
        )
        client = VantaClient(session, base_url, tokens=tokens, limiter=NoRateLimit())
        token = await tokens.token()  # one token for both: a second one would revoke the first
        pages = await bare_loop(session, base_url, token)  # warm-up: connections, server caches
        await client_loop(client)
        bare: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        for _ in range(rounds):
            bare.append(await timed(lambda: bare_loop(session, base_url, token)))
            ours.append(await timed(lambda: client_loop(client)))
    return {
        "pages": pages,
        "bare_pages_per_s": statistics.median(r for r, _ in bare),
        "client_pages_per_s": statistics.median(r for r, _ in ours),
        "bare_cpu_ms_per_page": statistics.median(c for _, c in bare),
        "client_cpu_ms_per_page": statistics.median(c for _, c in ours),
        "client_requests": client.counters.requests,
        "client_retries": client.counters.retries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vulnerabilities", type=int, default=30000, help="dataset size (default 30000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of each loop (default 5)")
    args = parser.parse_args()
    with simulator_process(args.vulnerabilities) as origin:
        result = asyncio.run(bench(origin, args.rounds))
    ratio = result["client_pages_per_s"] / result["bare_pages_per_s"]
    print(f"walk of {result['pages']} pages x {args.rounds} rounds, zero-latency simulator, no rate limit")
    print(f"  bare aiohttp + orjson loop: {result['bare_pages_per_s']:8.1f} pages/s", end="")
    print(f"  ({result['bare_cpu_ms_per_page']:.2f} ms client CPU a page)")
    print(f"  VantaClient.iter_pages:     {result['client_pages_per_s']:8.1f} pages/s", end="")
    print(f"  ({result['client_cpu_ms_per_page']:.2f} ms client CPU a page)")
    print(
        f"  ratio (client / bare):      {ratio:8.2f}   target >= 0.80: {'met' if ratio >= 0.8 else 'NOT met'}"
    )
    if result["client_retries"]:
        print(f"  note: the client retried {result['client_retries']} requests")


if __name__ == "__main__":
    main()
