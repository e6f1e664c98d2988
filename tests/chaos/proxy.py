"""A loopback HTTP proxy in front of the simulator's API that garbles a seeded fraction of its 200
replies: well-formed JSON of the wrong shape, an HTML error page, an empty body. The simulator itself
only truncates bodies; these are what a misbehaving gateway or a changed API would send."""

from __future__ import annotations

import asyncio
import random
import threading

import aiohttp
from aiohttp import web

MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("application/json", b'{"results": {"data": null, "pageInfo": {"hasNextPage": true}}}'),
    ("application/json", b'{"results": {"data": "not a list", "pageInfo": {}}}'),
    ("application/json", b'{"data": [], "pageInfo": {"endCursor": null, "hasNextPage": false}}'),
    ("application/json", b"[]"),
    ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    ("application/json", b""),
)
_FORWARDED_HEADERS = ("Content-Type", "Retry-After")


class MalformingProxy:
    """Forwards every request to `upstream` (an origin, `http://host:port`); see the module doc."""

    def __init__(self, upstream: str, rate: float, seed: int) -> None:
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.malformed = 0
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.origin = ""

    def start(self) -> str:
        """Listen on a free loopback port; returns the proxy's origin."""
        self._thread.start()
        self.origin = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.origin

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read()
        ) as reply:
            body = await reply.read()
            kept = {k: reply.headers[k] for k in _FORWARDED_HEADERS if k in reply.headers}
            status = reply.status
        if status == 200 and self._rng.random() < self.rate:
            self.malformed += 1
            content_type, body = self._rng.choice(MALFORMED)
            kept["Content-Type"] = content_type
        return web.Response(status=status, body=body, headers=kept)
