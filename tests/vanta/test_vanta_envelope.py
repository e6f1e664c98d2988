"""A 200 whose JSON lacks the page envelope is retried like a 5xx, and still fails cleanly if it persists.

Vanta here is a tiny aiohttp app on loopback (the simulator has no wrong-shape fault): it answers the
first requests with JSON that is not a page, then with a real page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vanta_vuln_sync.vanta import ProtocolError, VantaClient
from vanta_vuln_sync.vanta.ratelimit import NoRateLimit
from vanta_vuln_sync.vanta.retry import RetryPolicy

PAGE = {"results": {"data": [{"id": "a"}], "pageInfo": {"hasNextPage": False, "endCursor": "x"}}}


class StaticToken:
    async def token(self) -> str:
        return "token"

    async def invalidate(self, failed: str) -> None:
        return None


FlakyVanta = Callable[..., VantaClient]


@pytest.fixture
async def flaky_vanta(http: aiohttp.ClientSession) -> AsyncIterator[FlakyVanta]:
    """Factory: `client = flaky_vanta(bad_answers=2, attempts=5)`, a client on an API whose next
    `bad_answers` answers are `{"error": ...}` with status 200, then a page; it tries `attempts` times."""
    bad = [0]

    async def vulnerabilities(request: web.Request) -> web.Response:
        if bad[0] > 0:
            bad[0] -= 1
            return web.json_response({"error": "upstream hiccup"})
        return web.json_response(PAGE)

    app = web.Application()
    app.router.add_get("/v1/vulnerabilities", vulnerabilities)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    def client(*, bad_answers: int, attempts: int) -> VantaClient:
        bad[0] = bad_answers
        retry = RetryPolicy(base=0.001, cap=0.01, attempts=attempts, total_seconds=10)
        base_url = f"http://127.0.0.1:{server.port}/v1"
        return VantaClient(
            http, base_url, tokens=StaticToken(), limiter=NoRateLimit(), retry=retry, timeout=2.0
        )

    yield client
    await server.close()


async def test_page_without_envelope_is_retried_when_the_next_answer_is_a_page(
    flaky_vanta: FlakyVanta,
) -> None:
    client = flaky_vanta(bad_answers=2, attempts=5)

    page = await client.fetch_page("vulnerabilities", {})

    assert page.records == [{"id": "a"}]
    assert client.counters.requests == 3
    assert client.counters.retries == 2


async def test_page_without_envelope_fails_with_protocol_error_when_it_persists(
    flaky_vanta: FlakyVanta,
) -> None:
    client = flaky_vanta(bad_answers=100, attempts=3)

    with pytest.raises(ProtocolError, match=r"lacks results\.data.*gave up after 3 attempts"):
        await client.fetch_page("vulnerabilities", {})
