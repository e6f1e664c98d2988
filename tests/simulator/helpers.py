"""Helpers for talking to the simulator over loopback the way a Vanta client would."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from vanta_vuln_sync.simulator import Simulator


class FakeClock:
    """Monotonic seconds the test moves by hand (token expiry, rate windows)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def token_body(sim: Simulator, **changes: str) -> dict[str, str]:
    body = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "scope": "vanta-api.all:read",
        "grant_type": "client_credentials",
    }
    body.update(changes)
    return body


async def mint(http: aiohttp.ClientSession, sim: Simulator) -> str:
    async with http.post(sim.auth_url, json=token_body(sim)) as response:
        assert response.status == 200, await response.text()
        payload = await response.json()
    assert payload["token_type"] == "Bearer"
    token: str = payload["access_token"]
    return token


async def get(
    http: aiohttp.ClientSession, sim: Simulator, resource: str, token: str, **params: str
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One API request; returns (status, parsed JSON body or None when it does not parse, headers)."""
    async with http.get(
        f"{sim.base_url}/{resource}", params=params, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        body = await response.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        return response.status, payload, response.headers


async def fetch_all(
    http: aiohttp.ClientSession, sim: Simulator, resource: str, token: str, **filters: str
) -> list[dict[str, Any]]:
    """Every record of a filtered list, following endCursor until hasNextPage is false."""
    records: list[dict[str, Any]] = []
    params = {"pageSize": "100", **filters}
    while True:
        status, payload, _ = await get(http, sim, resource, token, **params)
        assert status == 200, payload
        records.extend(payload["results"]["data"])
        info = payload["results"]["pageInfo"]
        if not info["hasNextPage"]:
            return records
        params["pageCursor"] = info["endCursor"]
