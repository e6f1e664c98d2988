"""A 200 whose JSON lacks the page envelope is retried like a 5xx, and still fails cleanly if it persists.

Vanta here is a tiny aiohttp app on loopback (the simulator has no wrong-shape fault): it answers the
first requests with JSON that is not a page, then with a real page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

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


@pytest.fixture
async def flaky_vanta() -> AsyncIterator[tuple[str, list[int]]]:
    """Base URL of an API whose first `bad[0]` answers are `{"error": ...}` with status 200."""
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
    yield f"http://127.0.0.1:{server.port}/v1", bad
    await server.close()


def _client(http: aiohttp.ClientSession, base_url: str, attempts: int) -> VantaClient:
    retry = RetryPolicy(base=0.001, cap=0.01, attempts=attempts, total_seconds=10)
    return VantaClient(http, base_url, tokens=StaticToken(), limiter=NoRateLimit(), retry=retry, timeout=2.0)


async def test_page_without_envelope_is_retried_when_the_next_answer_is_a_page(
    http: aiohttp.ClientSession, flaky_vanta: tuple[str, list[int]]
) -> None:
    base_url, bad = flaky_vanta
    bad[0] = 2
    client = _client(http, base_url, attempts=5)

    page = await client.fetch_page("vulnerabilities", {})

    assert page.records == [{"id": "a"}]
    assert client.counters.requests == 3
    assert client.counters.retries == 2


async def test_page_without_envelope_fails_with_protocol_error_when_it_persists(
    http: aiohttp.ClientSession, flaky_vanta: tuple[str, list[int]]
) -> None:
    base_url, bad = flaky_vanta
    bad[0] = 100
    client = _client(http, base_url, attempts=3)

    with pytest.raises(ProtocolError, match=r"lacks results\.data.*gave up after 3 attempts"):
        await client.fetch_page("vulnerabilities", {})
